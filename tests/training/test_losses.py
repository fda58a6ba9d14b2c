"""Losses, label assignment, partial labels, a tiny overfit, and loss balancing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.errors import TridentError
from training.balancing import AlternatingSchedule, DynamicWeightAverage, FixedWeights, JointSchedule, UncertaintyWeighting
from training.losses import MaskLoss, SemanticLoss, TargetBatch, TaskAlignedAssigner, quality_focal_loss
from training.losses.assigner import Assignment
from training.losses.detection_loss import distribution_focal_loss
from training.model import ModelConfig, build_model

HW = (64, 64)
THING_TO_SEMANTIC = 3  # semantic ids of things follow the 3 stuff classes (training/synthetic/shapes.py)


def _scene(seed: int, hw: tuple[int, int] = HW) -> tuple[np.ndarray, dict]:
    """A flat grey image with one red square (class 0) and one blue disc (class 1), fully labelled."""
    h, w = hw
    rng = np.random.default_rng(seed)
    image = np.full((h, w, 3), 40, np.uint8)
    semantic = np.zeros((h, w), np.int64)
    yy, xx = np.mgrid[:h, :w]
    boxes, labels, masks = [], [], []
    for cls, colour in ((0, (0, 0, 230)), (1, (230, 120, 0))):
        s = int(rng.integers(14, 26))
        x0, y0 = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        if cls == 0:
            m = (yy >= y0) & (yy < y0 + s) & (xx >= x0) & (xx < x0 + s)
        else:
            m = (yy - (y0 + s / 2)) ** 2 + (xx - (x0 + s / 2)) ** 2 <= (s / 2) ** 2
        image[m] = colour
        semantic[m] = THING_TO_SEMANTIC + cls
        for earlier in masks:
            earlier[m] = 0  # the later shape occludes
        masks.append(m.astype(np.uint8))
        boxes.append([x0, y0, x0 + s, y0 + s])
        labels.append(cls)
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": torch.from_numpy(np.stack(masks)),
        "semantic": torch.from_numpy(semantic),
    }
    return image, target


def _batch(n: int, seed: int = 0) -> tuple[torch.Tensor, list[dict]]:
    scenes = [_scene(seed + i) for i in range(n)]
    images = torch.from_numpy(np.stack([s[0] for s in scenes])).permute(0, 3, 1, 2).contiguous()
    return images, [s[1] for s in scenes]


def _unlabelled() -> dict:
    return {"boxes": None, "labels": None, "masks": None, "semantic": None}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(input_hw=HW))


def test_every_loss_key_starts_with_loss_names_its_task_and_is_finite(model):
    images, targets = _batch(2)
    _, losses = model.train()(images, targets)
    assert tuple(losses) == model.loss_keys == (
        "loss_det_cls", "loss_det_box", "loss_det_dfl", "loss_inst_mask", "loss_sem_seg"
    )
    for key, value in losses.items():
        assert key.startswith("loss_") and value.dim() == 0 and math.isfinite(float(value.detach())), key
        assert float(value.detach()) > 0, key


@pytest.mark.parametrize(
    "keep, nonzero",
    [
        ({"boxes", "labels"}, {"loss_det_cls", "loss_det_box", "loss_det_dfl"}),
        ({"boxes", "labels", "masks"}, {"loss_det_cls", "loss_det_box", "loss_det_dfl", "loss_inst_mask"}),
        ({"semantic"}, {"loss_sem_seg"}),
        (set(), set()),
    ],
)
def test_partial_labels_give_every_key_but_nonzero_values_only_where_labels_exist(model, keep, nonzero):
    images, targets = _batch(2)
    partial = [{k: (v if k in keep else None) for k, v in t.items()} for t in targets]
    model.train().zero_grad()
    _, losses = model(images, partial)
    assert tuple(losses) == model.loss_keys
    assert {k for k, v in losses.items() if float(v.detach()) != 0.0} == nonzero
    total = sum(losses.values())
    total.backward()  # zeros stay attached to the graph, so one backward over all terms works
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


def test_under_bfloat16_autocast_every_head_loss_sees_float32_outputs_with_autocast_off(monkeypatch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_hw=HW)).eval()  # eval: BN uses running stats in both passes
    images, targets = _batch(2)
    _, reference = model(images, targets)
    seen = {}
    for name, head in model.heads.items():
        def spy(raw, batch, shared, _name=name, _loss=head.loss):
            seen[_name] = ({t.dtype for t in raw.values()}, torch.is_autocast_enabled("cpu"))
            return _loss(raw, batch, shared)

        monkeypatch.setattr(head, "loss", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, mixed = model(images, targets)
    assert seen == {name: ({torch.float32}, False) for name in model.heads}
    for key, value in mixed.items():
        assert value.dtype == torch.float32, key
        assert abs(float(value.detach()) - float(reference[key].detach())) <= 0.05 * abs(float(reference[key].detach())) + 1e-3, key


def test_an_unlabelled_image_contributes_nothing_to_any_term(model):
    images, targets = _batch(1)
    model.eval()  # batch-independent BN, so the extra image cannot leak in through the features
    with torch.no_grad():
        _, alone = model(images, targets)
        _, with_unlabelled = model(torch.cat([images, images.flip(-1)]), [targets[0], _unlabelled()])
    for key in alone:
        assert float(with_unlabelled[key]) == pytest.approx(float(alone[key]), rel=1e-5), key


def test_empty_boxes_mean_labelled_background_but_none_means_unlabelled(model):
    images, _ = _batch(1)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "masks": None, "semantic": None}
    with torch.no_grad():
        _, labelled_empty = model.train()(images, [empty])
        _, unlabelled = model(images, [_unlabelled()])
    assert float(labelled_empty["loss_det_cls"]) > 0  # every anchor is a negative to learn from
    assert float(labelled_empty["loss_det_box"]) == 0.0
    assert float(unlabelled["loss_det_cls"]) == 0.0


@pytest.mark.parametrize(
    "target, message",
    [
        ({"boxes": torch.tensor([[1.0, 1, 9, 9]]), "labels": torch.tensor([7])}, r"label 7, but the model has 4 classes"),
        ({"boxes": torch.tensor([[1.0, 1, 9, 9]]), "labels": None}, r"has boxes but not the other"),
        ({"boxes": torch.tensor([[1.0, 1, 9, 9]]), "labels": torch.tensor([0, 1])}, r"1 boxes but 2 labels"),
        ({"boxes": None, "labels": None, "masks": torch.zeros(1, *HW, dtype=torch.uint8)}, r"'masks' but no 'boxes'"),
        ({"semantic": torch.zeros(32, 32, dtype=torch.int64)}, r"'semantic' must be an int64 tensor \[64,64\]"),
        ({"boxes": None, "labels": None, "depth": 1}, r"unknown key 'depth'"),
    ],
)
def test_malformed_targets_are_rejected_naming_image_and_field(model, target, message):
    images, _ = _batch(1)
    with pytest.raises(TridentError, match=message):
        model(images, [target])


def test_semantic_label_outside_the_class_range_is_rejected(model):
    images, targets = _batch(1)
    targets[0]["semantic"][0, 0] = 9
    with pytest.raises(TridentError, match=r"semantic label 9 is outside 0..6"):
        model(images, targets)


def test_tiny_overfit_cuts_the_total_loss_at_least_4x_within_150_steps():
    torch.manual_seed(0)
    images, targets = _batch(4, seed=10)
    net = build_model(ModelConfig(input_hw=HW)).train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0)
    history = []
    for _ in range(150):
        _, losses = net(images, targets)
        total = sum(losses.values())
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        history.append({k: float(v.detach()) for k, v in losses.items()} | {"total": float(total.detach())})
    first, last = history[0], np.mean([h["total"] for h in history[-10:]])
    # Measured on this setup: total 5.4x, box 28x, mask 4.7x, semantic 4.5x.
    assert last < first["total"] / 4, (first, history[-1])
    # Every task learns, not just the easiest one.
    assert history[-1]["loss_sem_seg"] < first["loss_sem_seg"] / 3
    assert history[-1]["loss_inst_mask"] < first["loss_inst_mask"] / 3
    assert history[-1]["loss_det_box"] < first["loss_det_box"] / 5


def test_tal_picks_the_best_aligned_anchor_inside_the_gt_box():
    # One gt box; four anchors: two inside, two outside. The outside anchor at
    # (50, 50) predicts the gt perfectly but must never be chosen.
    gt = torch.tensor([[[10.0, 10.0, 40.0, 40.0]]])
    points = torch.tensor([[20.0, 20.0], [30.0, 30.0], [50.0, 50.0], [5.0, 5.0]])
    pred_boxes = torch.tensor([[[12.0, 12.0, 38.0, 38.0], [0.0, 0.0, 30.0, 30.0], [10.0, 10.0, 40.0, 40.0], [0, 0, 10, 10]]])
    scores = torch.tensor([[[0.1, 0.6], [0.1, 0.9], [0.1, 0.99], [0.1, 0.99]]])
    assign = TaskAlignedAssigner(topk=1, alpha=1.0, beta=6.0)(
        scores, pred_boxes, points, torch.tensor([[1]]), gt, torch.tensor([[True]])
    )
    assert assign.fg_mask.tolist() == [[True, False, False, False]]
    assert assign.target_labels[0, 0] == 1 and assign.target_boxes[0, 0].tolist() == [10.0, 10.0, 40.0, 40.0]
    iou = (26 * 26) / (30 * 30)
    # The best anchor's soft target equals the best IoU reached for that gt.
    assert float(assign.target_scores[0, 0, 1]) == pytest.approx(iou, rel=1e-5)
    assert float(assign.target_scores[0, 0, 0]) == 0.0

    two = TaskAlignedAssigner(topk=2)(scores, pred_boxes, points, torch.tensor([[1]]), gt, torch.tensor([[True]]))
    assert two.fg_mask.tolist() == [[True, True, False, False]]


def test_tal_gives_an_anchor_claimed_by_two_gts_to_the_one_it_overlaps_most():
    gts = torch.tensor([[[0.0, 0.0, 40.0, 40.0], [10.0, 10.0, 30.0, 30.0]]])
    points = torch.tensor([[20.0, 20.0]])
    pred = torch.tensor([[[11.0, 11.0, 29.0, 29.0]]])  # IoU 0.81 with the small gt, 0.2 with the big one
    assign = TaskAlignedAssigner(topk=1)(
        torch.full((1, 1, 2), 0.5), pred, points, torch.tensor([[0, 1]]), gts, torch.tensor([[True, True]])
    )
    assert assign.gt_index.tolist() == [[1]] and assign.target_labels.tolist() == [[1]]


def test_quality_focal_loss_vanishes_when_the_score_equals_the_quality_target():
    target = torch.tensor([[0.0, 0.7]])
    exact = quality_focal_loss(torch.logit(torch.tensor([[1e-6, 0.7]])), target)
    off = quality_focal_loss(torch.logit(torch.tensor([[0.5, 0.2]])), target)
    assert float(exact) < 1e-6 and float(off) > 0.1


def test_distribution_focal_loss_is_lowest_for_mass_on_the_two_neighbouring_bins():
    target = torch.tensor([2.25])
    right = torch.log(torch.tensor([[1e-6, 1e-6, 0.75, 0.25, 1e-6]]))
    wrong = torch.log(torch.tensor([[0.25, 0.75, 1e-6, 1e-6, 1e-6]]))
    best = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))  # entropy of the split
    assert float(distribution_focal_loss(right, target)) == pytest.approx(best, abs=1e-4)
    assert float(distribution_focal_loss(wrong, target)) > 5.0


def _mask_case(coeff: float) -> float:
    """One 16x16 gt disc, one positive anchor whose mask is coeff * (a prototype equal to +-10 on the disc)."""
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    disc = ((yy - 8) ** 2 + (xx - 8) ** 2 <= 25).to(torch.uint8)
    protos = (disc.float() * 20 - 10)[None, None]  # [B=1,K=1,16,16]
    targets = TargetBatch.from_list(
        [{"boxes": torch.tensor([[3.0, 3.0, 14.0, 14.0]]), "labels": torch.tensor([0]), "masks": disc[None]}],
        1, (16, 16), 1, torch.device("cpu"),
    )
    assignment = Assignment(
        fg_mask=torch.tensor([[True]]), gt_index=torch.tensor([[0]]), target_labels=torch.tensor([[0]]),
        target_boxes=targets.boxes, target_scores=torch.ones(1, 1, 1),
    )
    return float(MaskLoss()(torch.tensor([[[coeff]]]), protos, assignment, targets)["mask"])


def test_mask_loss_is_near_zero_for_the_right_mask_and_large_for_its_inverse():
    assert _mask_case(1.0) < 0.01
    assert _mask_case(-1.0) > 5.0


def test_semantic_loss_ignores_255_pixels_and_is_near_zero_for_perfect_logits():
    labels = torch.randint(0, 3, (1, 8, 8))
    perfect = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 30
    with_ignore = labels.clone()
    with_ignore[0, :4] = 255
    wrong_where_ignored = perfect.clone()
    wrong_where_ignored[:, :, :4] = perfect[:, :, :4].roll(1, dims=1)
    loss = SemanticLoss(3)

    def run(logits, sem):
        targets = TargetBatch.from_list([{"semantic": sem[0]}], 1, (8, 8), 1, torch.device("cpu"))
        return float(loss(logits, targets)["seg"])

    assert run(perfect, labels) < 0.01
    assert run(wrong_where_ignored, with_ignore) == pytest.approx(run(perfect, with_ignore), abs=1e-6)


def _losses(**values: float) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, requires_grad=True) for k, v in values.items()}


def test_fixed_weights_return_exactly_the_weighted_sum_with_task_and_key_weights():
    losses = _losses(loss_det_box=2.0, loss_det_cls=3.0, loss_sem_seg=5.0)
    total, weights = FixedWeights({"det": 0.5, "loss_det_box": 4.0}, default=2.0)(losses, step=0)
    assert weights == {"loss_det_box": 4.0, "loss_det_cls": 0.5, "loss_sem_seg": 2.0}
    assert float(total.detach()) == 4.0 * 2.0 + 0.5 * 3.0 + 2.0 * 5.0


def test_uncertainty_weights_move_after_an_optimiser_step_and_skip_unlabelled_terms():
    balancer = UncertaintyWeighting(["loss_det_box", "loss_sem_seg", "loss_inst_mask"])
    optimiser = torch.optim.SGD(balancer.parameters(), lr=0.1)
    losses = _losses(loss_det_box=4.0, loss_sem_seg=0.25, loss_inst_mask=0.0)
    total, before = balancer(losses, step=0)
    assert before == {"loss_det_box": 1.0, "loss_sem_seg": 1.0, "loss_inst_mask": 1.0}
    assert float(total.detach()) == pytest.approx(4.25)
    optimiser.zero_grad()
    total.backward()
    optimiser.step()
    _, after = balancer(losses, step=1)
    # d/ds (e^-s L + s) = 1 - L: the big loss's weight drops, the small one's rises.
    assert after["loss_det_box"] == pytest.approx(math.exp(-0.1 * 3.0), rel=1e-5)
    assert after["loss_sem_seg"] == pytest.approx(math.exp(0.1 * 0.75), rel=1e-5)
    assert after["loss_inst_mask"] == 1.0  # no labels, no regulariser pull
    with pytest.raises(TridentError, match="no weight for 'loss_new_term'"):
        balancer(_losses(loss_new_term=1.0), step=2)


def test_dwa_weights_follow_the_ratio_of_the_last_two_losses():
    dwa = DynamicWeightAverage(temperature=2.0)
    _, w0 = dwa(_losses(loss_a_x=1.0, loss_b_x=1.0), step=0)
    _, w1 = dwa(_losses(loss_a_x=0.5, loss_b_x=1.0), step=1)
    assert w0 == w1 == {"loss_a_x": 1.0, "loss_b_x": 1.0}  # no history yet
    total, w2 = dwa(_losses(loss_a_x=0.4, loss_b_x=0.9), step=2)
    ea, eb = math.exp(0.5 / 2.0), math.exp(1.0 / 2.0)
    assert w2["loss_a_x"] == pytest.approx(2 * ea / (ea + eb))
    assert w2["loss_b_x"] == pytest.approx(2 * eb / (ea + eb))
    assert w2["loss_b_x"] > w2["loss_a_x"]  # b stalled, so b gets more weight
    assert float(total.detach()) == pytest.approx(w2["loss_a_x"] * 0.4 + w2["loss_b_x"] * 0.9, rel=1e-6)


def test_schedules_pick_active_tasks_and_select_their_loss_terms():
    losses = _losses(loss_det_cls=1.0, loss_det_box=1.0, loss_inst_mask=1.0, loss_sem_seg=1.0)
    joint = JointSchedule(["det", "inst", "sem"])
    assert joint.active(7) == {"det", "inst", "sem"} and set(joint.select(losses, 7)) == set(losses)
    alt = AlternatingSchedule([("det", "inst"), ("sem",)], steps_per_group=2)
    assert [sorted(alt.active(s)) for s in range(5)] == [
        ["det", "inst"], ["det", "inst"], ["sem"], ["sem"], ["det", "inst"]
    ]
    assert set(alt.select(losses, 2)) == {"loss_sem_seg"}
    assert set(alt.select(losses, 0)) == {"loss_det_cls", "loss_det_box", "loss_inst_mask"}


def test_varifocal_loss_weights_positives_by_quality_and_suppresses_easy_negatives():
    from training.losses import varifocal_loss

    logit = torch.logit(torch.tensor([[0.3]]))
    positive = varifocal_loss(logit, torch.tensor([[0.8]]))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.tensor([[0.8]]))
    assert float(positive) == pytest.approx(0.8 * float(bce), rel=1e-5)
    easy_negative = varifocal_loss(torch.logit(torch.tensor([[0.01]])), torch.tensor([[0.0]]))
    assert float(easy_negative) < 1e-5


def test_model_without_dfl_regresses_distances_directly_and_has_no_dfl_term():
    torch.manual_seed(0)
    net = build_model(ModelConfig(input_hw=HW, heads=("det",), reg_max=1))
    images, targets = _batch(2)
    outputs, losses = net(images, targets)
    assert tuple(losses) == ("loss_det_cls", "loss_det_box")
    assert outputs["boxes"].shape == (2, 84, 4) and float(losses["loss_det_box"].detach()) > 0
