"""`trident autolabel`: the dataset it writes is one `trident train` / `trident eval` read, identities hold,
motion masks sit inside their boxes, a stopped run resumes to the same dataset, and bad input is one error.

Teacher: the bundled checkpoint's ONNX (det + inst + sem) on the first frames of the bundled clip (a fixed
camera over moving objects), so the tests need nothing outside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.errors import TridentError
from training.autolabel.options import AutolabelOptions, parse_class_map, parse_frames
from training.autolabel.writer import autolabel

ASSETS = Path(__file__).resolve().parents[2] / "pipeline" / "assets"
TEACHER = ASSETS / "trident_n_synth.onnx"
CLIP = ASSETS / "demo_clip.mp4"
FRAMES = 20


def _opts(**kw) -> AutolabelOptions:
    base = dict(teacher=str(TEACHER), sources=(str(CLIP),), frames=parse_frames(f"0:{FRAMES}"), masks="motion", val_fraction=0.25)
    base.update(kw)
    return AutolabelOptions(**base)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    out = tmp_path_factory.mktemp("autolabel") / "ds"
    summary = autolabel(_opts(), out)
    return out, summary


def _coco(out: Path, split: str) -> dict:
    return json.loads((out / "annotations" / f"instances_{split}.json").read_text())


def _decode(seg: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode("ascii")}).astype(bool)


def test_dataset_loads_with_the_training_dataset_and_holds_the_teacher_boxes(labelled):
    from training.autolabel.teacher import Teacher
    from training.data import SyntheticVideoDataset

    out, summary = labelled
    train, val = SyntheticVideoDataset(out, "train"), SyntheticVideoDataset(out, "val")
    assert (len(train), len(val)) == (15, 5)  # the last quarter of the frames, held out in time
    assert train.thing_classes == ("person", "car", "truck", "ball") and train.has_masks
    assert not train.problems and not val.problems
    teacher = Teacher(TEACHER, None, 0.35, need_masks=False)
    dets, _ = teacher(train.frame(3))
    teacher.close()
    sample = train.load_sample(3)
    assert sample.masks.shape == (len(dets), 384, 640)
    np.testing.assert_allclose(np.sort(sample.boxes, axis=0), np.sort(dets.boxes, axis=0), atol=0.51)  # JPEG vs decoded frame
    assert sample.semantic is not None and sample.semantic.max() < len(train.semantic_classes)
    assert summary.frames == FRAMES and summary.annotations == len(_coco(out, "train")["annotations"]) + len(_coco(out, "val")["annotations"])


def test_trident_eval_reads_it_and_the_teacher_agrees_with_its_own_labels(labelled, tmp_path):
    out, _ = labelled
    result = tmp_path / "eval.json"
    assert main(["eval", "--weights", str(TEACHER), "--data", str(out), "--split", "val", "--json", str(result)]) == 0
    metrics = json.loads(result.read_text())
    assert metrics["box_map50"] > 0.9  # its own boxes, scored against themselves


def test_track_ids_follow_objects_from_frame_to_frame(labelled):
    out, _ = labelled
    coco = _coco(out, "train")
    by_track: dict[int, list[tuple[int, list[float]]]] = {}
    frame_of = {img["id"]: img["frame_id"] for img in coco["images"]}
    for ann in coco["annotations"]:
        if ann["track_id"] > 0:
            by_track.setdefault(ann["track_id"], []).append((frame_of[ann["image_id"]], ann["bbox"]))
    assert by_track, "no tracked boxes"
    for tid, rows in by_track.items():
        frames = [f for f, _ in rows]
        assert len(frames) == len(set(frames)), f"track {tid} twice in one frame"
        rows.sort()
        for (f0, a), (f1, b) in zip(rows, rows[1:]):
            if f1 == f0 + 1:  # consecutive frames: the same object barely moves at 30 fps
                assert abs(a[0] - b[0]) < 0.5 * a[2] + 8 and abs(a[1] - b[1]) < 0.5 * a[3] + 8, (tid, f0, a, b)
    longest = max(len(r) for r in by_track.values())
    assert longest >= 12  # identities last across the clip instead of restarting every frame
    gt = (out / "mot" / "demo_clip" / "gt" / "gt.txt").read_text().splitlines()
    assert len(gt) == sum(1 for a in coco["annotations"] + _coco(out, "val")["annotations"] if a["track_id"] > 0)


def test_motion_masks_lie_inside_their_boxes_and_come_from_motion(labelled):
    out, summary = labelled
    for ann in _coco(out, "train")["annotations"]:
        mask = _decode(ann["segmentation"])
        x, y, w, h = ann["bbox"]
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0
        assert xs.min() >= np.floor(x) and xs.max() < np.ceil(x + w) and ys.min() >= np.floor(y) and ys.max() < np.ceil(y + h)
    assert summary.mask_sources.get("motion", 0) > summary.mask_sources.get("ellipse", 0)


def test_motion_mask_of_a_moving_square_is_the_square():
    from training.autolabel.motion import MotionMasker

    rng = np.random.default_rng(0)
    background = rng.integers(60, 200, (120, 160, 3), dtype=np.uint8)
    texture = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)  # textured like clothing: a flat patch would melt into
    masker = MotionMasker()                                         # the background where it overlaps its last position
    for t in range(30):
        image = background.copy()
        x = 10 + 3 * t
        image[40:80, x : x + 30] = texture
        fg = masker.observe(image)
    box = np.array([[x - 5, 35, x + 35, 85]], np.float32)
    crops, sources = masker.masks(fg, box, np.array([1]))
    truth = np.zeros((50, 40), bool)
    truth[5:45, 5:35] = True
    iou = (crops[0] & truth).sum() / (crops[0] | truth).sum()
    assert sources == ["motion"] and iou > 0.8
    still = masker.observe(background)  # the square gone: nothing moves in the box, the track's last mask is reused
    crops, sources = masker.masks(np.zeros_like(still), box + np.array([10, 0, 20, 0], np.float32), np.array([1]))
    assert sources == ["track"] and crops[0].shape == (50, 50)


def test_interrupted_run_resumes_to_the_same_dataset(labelled, tmp_path):
    out_full, _ = labelled
    out = tmp_path / "ds"
    seen = []

    def stop_after_8() -> None:
        seen.append(1)
        if len(seen) == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        autolabel(_opts(), out, on_frame=stop_after_8)
    assert not (out / "dataset.yaml").exists()
    assert len(list((out / "images" / "demo_clip").glob("*.jpg"))) == 8  # the frames done are kept
    log = out / "autolabel" / "demo_clip.jsonl"
    assert len(log.read_text().splitlines()) == 8
    with log.open("a") as f:  # a kill in the middle of the next line leaves half of it
        f.write('{"frame": 8, "boxes": [[1.0, 2')
    summary = autolabel(_opts(), out)
    assert summary.teacher_frames == FRAMES - 8
    for split in ("train", "val"):
        assert _coco(out, split)["annotations"] == _coco(out_full, split)["annotations"]
        assert _coco(out, split)["images"] == _coco(out_full, split)["images"]
    gt = Path("mot") / "demo_clip" / "gt" / "gt.txt"
    assert (out / gt).read_text() == (out_full / gt).read_text()


def test_boxes_only_dataset_trains_from_the_bundled_checkpoint_with_renamed_classes(tmp_path):
    from training.config import load_train_config
    from training.data import SyntheticVideoDataset
    from training.train import train

    out = tmp_path / "ds"
    opts = _opts(masks="none", class_map=parse_class_map("person=human,car=vehicle,truck=vehicle"),
                 frames=parse_frames("0:12", every=2), val_fraction=0.34)
    autolabel(opts, out)
    ds = SyntheticVideoDataset(out, "train")
    assert ds.thing_classes == ("human", "vehicle") and not ds.has_masks and ds.load_sample(0).masks is None
    assert [e.row["frame_id"] for e in ds.entries] == [0, 2, 4, 6]
    cfg = load_train_config(None, [
        f"data.synthetic={out}", f"out={tmp_path / 'run'}", "epochs=1", "max_iters=1", "batch_size=2", "eval_batches=1",
        "model.num_classes=2", "model.class_names=[human,vehicle]", "model.input_hw=[192,320]",
        f"init={ASSETS / 'trident_n_synth.pt'}",  # renamed classes have no rows there and start fresh; the rest loads
    ])
    assert ds.semantic_classes == cfg.model.sem_class_names  # the teacher's own semantic head labelled the frames
    result = train(cfg, progress=False)
    losses = {k: v for k, v in result.history[-1].items() if k.startswith("loss_")}
    assert losses["loss_det_cls"] > 0 and losses["loss_inst_mask"] == 0.0  # boxes only: no mask loss
    assert all(np.isfinite(list(losses.values())))


def test_bad_input_is_one_clear_error(labelled, tmp_path, capsys):
    out, _ = labelled
    with pytest.raises(TridentError, match=r"'cat'.*its classes are: person, car, truck, ball"):
        autolabel(_opts(class_map=parse_class_map("person,cat")), tmp_path / "a")
    with pytest.raises(TridentError, match="empty range"):
        parse_frames("5:5")
    with pytest.raises(TridentError, match="selects no frame of .* which has 150 frames"):
        autolabel(_opts(frames=parse_frames("400:")), tmp_path / "b")
    with pytest.raises(TridentError, match="already holds a dataset"):
        autolabel(_opts(), out)
    with pytest.raises(TridentError, match="does not exist"):
        autolabel(_opts(sources=(str(tmp_path / "missing.mp4"),)), tmp_path / "c")
    # the CLI: one readable line, non-zero exit
    assert main(["autolabel", "--teacher", str(TEACHER), "--source", str(CLIP), "--out", str(tmp_path / "d"), "--frames", "9:3"]) != 0
    assert "empty range" in capsys.readouterr().err


def test_a_changed_setting_does_not_resume_someone_elses_run(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        autolabel(_opts(), out, on_frame=lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(TridentError, match="different score"):
        autolabel(_opts(score=0.5), out)


def _checkpoint(tmp_path: Path, heads: tuple[str, ...]) -> Path:
    from training.model.checkpoint import save_checkpoint
    from training.model.config import ModelConfig, build_model

    cfg = ModelConfig(heads=heads, input_hw=(64, 64))
    return save_checkpoint(tmp_path / f"{'_'.join(heads)}.pt", build_model(cfg), cfg)


def test_a_teacher_that_is_not_a_detector_or_has_no_masks_is_refused(tmp_path):
    with pytest.raises(TridentError, match="is not a detector"):
        autolabel(_opts(teacher=str(_checkpoint(tmp_path, ("sem",)))), tmp_path / "a")
    with pytest.raises(TridentError, match="has no instance-mask head"):
        autolabel(_opts(teacher=str(_checkpoint(tmp_path, ("det",))), masks="teacher"), tmp_path / "b")
