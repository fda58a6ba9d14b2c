"""Evaluation metrics against hand-computed values: COCO mAP, P/R/F1 and semantic mIoU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pipeline.contracts import Detections
from pipeline.masks import InstanceMasks

from pipeline.errors import TridentError
from training.evaluate import (
    EvalResult,
    coco_map,
    confusion_matrix,
    evaluate,
    load_coco_gt,
    precision_recall_f1,
    semantic_iou,
)
from training.synthetic import SEMANTIC_CLASSES, SynthConfig, generate_dataset


def dets(boxes: list[list[float]], scores: list[float], classes: list[int], masks: np.ndarray | None = None) -> Detections:
    return Detections(
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        scores=np.array(scores, np.float32),
        class_ids=np.array(classes, np.int32),
        masks=None if masks is None else InstanceMasks.from_dense(masks),
    )


def gt_dict(anns: list[tuple[int, int, list[float]]], images: int = 2, size: tuple[int, int] = (200, 300)) -> dict:
    """COCO gt with categories 1 (cat), 2 (dog) and 5 (bird, never annotated); anns are (image_id, category_id, xywh)."""
    h, w = size
    rows = []
    for i, (image_id, cat, (x, y, bw, bh)) in enumerate(anns, start=1):
        m = np.zeros((h, w), np.uint8)
        m[int(y) : int(y + bh), int(x) : int(x + bw)] = 1
        rle = mask_utils.encode(np.asfortranarray(m))
        rows.append({"id": i, "image_id": image_id, "category_id": cat, "bbox": [x, y, bw, bh], "area": float(bw * bh),
                     "iscrowd": 0, "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")}})
    return {
        "images": [{"id": i, "file_name": f"{i}.jpg", "height": h, "width": w} for i in range(1, images + 1)],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 5, "name": "bird"}],
        "annotations": rows,
    }


def write_gt(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    return path


def gt_as_detections(gt_path: Path) -> dict[int, Detections]:
    coco = load_coco_gt(gt_path)
    cats = sorted(coco.getCatIds())
    out = {}
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        img = coco.imgs[image_id]
        boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
        masks = np.stack([coco.annToMask(a).astype(bool) for a in anns]) if anns else np.zeros((0, img["height"], img["width"]), bool)
        out[image_id] = dets(boxes, [1.0] * len(anns), [cats.index(a["category_id"]) for a in anns], masks)
    return out


def test_perfect_predictions_on_synthetic_val_score_one(tmp_path: Path) -> None:
    generate_dataset(SynthConfig(videos=2, frames=5, width=128, height=96, seed=2), tmp_path, workers=1)
    gt = tmp_path / "annotations" / "instances_val.json"
    preds = gt_as_detections(gt)
    assert sum(len(d) for d in preds.values()) > 0
    result = evaluate(gt, preds)
    assert result.box_map == pytest.approx(1.0) and result.box_map50 == pytest.approx(1.0)
    assert result.mask_map == pytest.approx(1.0) and result.mask_map50 == pytest.approx(1.0)
    assert result.precision == 1.0 and result.recall == 1.0 and result.f1 == 1.0
    assert result.num_images == 5


def test_run_length_encoded_detections_score_exactly_like_box_local_ones(tmp_path: Path) -> None:
    from training.evaluate import EncodedDetections

    generate_dataset(SynthConfig(videos=2, frames=5, width=128, height=96, seed=2), tmp_path, workers=1)
    gt = tmp_path / "annotations" / "instances_val.json"
    dense = gt_as_detections(gt)
    for k, d in dense.items():  # spoil the masks a little so the scores are not all 1
        if len(d):
            spoilt = d.masks.dense()
            spoilt[:, :, ::3] = False
            dense[k] = Detections(d.boxes, d.scores, d.class_ids, InstanceMasks.from_dense(spoilt))
    encoded = {k: EncodedDetections.from_detections(d) for k, d in dense.items()}
    a, b = evaluate(gt, dense), evaluate(gt, encoded)
    assert a.mask_map < 0.99 and a.to_dict() == b.to_dict()
    wrong = {k: EncodedDetections(d.boxes, d.scores, d.class_ids, d.rles, (48, 64)) for k, d in encoded.items()}
    with pytest.raises(TridentError, match="masks of image .* but the image is"):
        evaluate(gt, wrong)


def test_perfect_semantic_predictions_give_miou_one() -> None:
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, len(SEMANTIC_CLASSES), (12, 16), dtype=np.uint8) for _ in range(3)]
    result = evaluate(semantic_predictions=maps, semantic_targets=maps, semantic_class_names=SEMANTIC_CLASSES)
    assert result.miou == 1.0 and result.num_semantic_images == 3
    assert result.box_map is None


def test_class_absent_from_gt_is_none_and_left_out_of_the_mean(tmp_path: Path) -> None:
    gt = write_gt(tmp_path, gt_dict([(1, 1, [10, 10, 50, 40]), (2, 2, [100, 50, 60, 80])]))
    result = evaluate(gt, gt_as_detections(gt))
    assert list(result.box_ap_per_class) == ["cat", "dog", "bird"]
    assert result.box_ap_per_class["cat"] == pytest.approx(1.0) and result.box_ap_per_class["dog"] == pytest.approx(1.0)
    assert result.box_ap_per_class["bird"] is None and result.mask_ap_per_class["bird"] is None
    assert result.box_map == pytest.approx(1.0)


def test_shifted_box_gives_ap_only_below_its_iou(tmp_path: Path) -> None:
    # a 100x100 box shifted 20 px right: IoU = 80*100 / (120*100) = 2/3, so it is a true positive at
    # the thresholds 0.50, 0.55, 0.60, 0.65 (AP 1 each) and a false positive at 0.70..0.95 (AP 0):
    # AP@[.5:.95] = 4/10, AP@.5 = 1
    gt = write_gt(tmp_path, gt_dict([(1, 1, [50, 50, 100, 100])], images=1))
    result = coco_map(gt, {1: dets([[70, 50, 170, 150]], [0.9], [0])})
    assert result["box_map"] == pytest.approx(0.4)
    assert result["box_map50"] == pytest.approx(1.0)
    assert result["box_ap_per_class"]["cat"] == pytest.approx(0.4)
    assert result["mask_map"] is None  # the prediction carries no masks


def test_no_predictions_give_zero_not_a_crash(tmp_path: Path) -> None:
    gt = write_gt(tmp_path, gt_dict([(1, 1, [10, 10, 50, 40]), (2, 2, [100, 50, 60, 80])]))
    for preds in ({}, {1: Detections.empty((200, 300)), 2: Detections.empty((200, 300))}):
        result = evaluate(gt, preds)
        assert result.box_map == 0.0 and result.box_map50 == 0.0 and result.mask_map == 0.0
        assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)
        assert (result.tp, result.fp, result.fn) == (0, 0, 2)


def test_precision_recall_f1_on_a_hand_made_case(tmp_path: Path) -> None:
    gt = write_gt(tmp_path, gt_dict([(1, 1, [0, 0, 50, 50]), (1, 1, [100, 0, 50, 50]), (1, 1, [200, 0, 50, 50]), (2, 2, [0, 100, 50, 50])]))
    preds = {
        1: dets(
            [[0, 0, 50, 50], [100, 0, 150, 50], [200, 100, 250, 150], [2, 2, 50, 50], [200, 0, 248, 50]],
            [0.9, 0.3, 0.8, 0.7, 0.6],
            [0, 0, 0, 0, 0],
        ),
        2: dets([[0, 100, 50, 150]], [0.9], [0]),  # right place, wrong class
    }
    # score >= 0.5: TP gt1 (0.9) and gt3 (0.6, IoU 0.96); FP: empty area (0.8), duplicate of gt1 (0.7),
    # wrong class in image 2; gt2 is found only below the threshold, so gt2 and the dog are FN
    prf = precision_recall_f1(gt, preds, score_threshold=0.5)
    assert (prf["tp"], prf["fp"], prf["fn"]) == (2, 3, 2)
    assert prf["precision"] == pytest.approx(2 / 5) and prf["recall"] == pytest.approx(2 / 4)
    assert prf["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    low = precision_recall_f1(gt, preds, score_threshold=0.2)
    assert (low["tp"], low["fp"], low["fn"]) == (3, 3, 1)


def test_miou_on_a_hand_made_4x4_case() -> None:
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 0, 0], [2, 2, 2, 2]], np.uint8)
    cm = confusion_matrix([pred], [gt], num_classes=4)
    assert cm.sum() == 14  # the two ignored pixels are not counted
    miou, per = semantic_iou(cm)
    # class 0: inter 3, union 4 + 4 - 3 = 5; class 1: 4 / (4 + 5 - 4); class 2: 5 / (6 + 5 - 5); class 3 undefined
    assert per[0] == pytest.approx(3 / 5) and per[1] == pytest.approx(4 / 5) and per[2] == pytest.approx(5 / 6)
    assert per[3] is None
    assert miou == pytest.approx((3 / 5 + 4 / 5 + 5 / 6) / 3)


def test_eval_result_serialises_and_formats(tmp_path: Path) -> None:
    gt = write_gt(tmp_path, gt_dict([(1, 1, [10, 10, 50, 40])], images=1))
    result = evaluate(gt, gt_as_detections(gt), [np.zeros((2, 2), np.uint8)], [np.zeros((2, 2), np.uint8)], ("bg", "fg"))
    data = json.loads(result.to_json())
    assert data["box_map"] == pytest.approx(1.0) and data["box_ap_per_class"]["dog"] is None and data["iou_per_class"] == {"bg": 1.0, "fg": None}
    table = result.format_table()
    assert "box mAP@[.50:.95]" in table and "1.0000" in table and "bird" in table and "semantic mIoU" in table
    assert isinstance(result, EvalResult)


def test_bad_predictions_are_clear_errors(tmp_path: Path) -> None:
    gt = write_gt(tmp_path, gt_dict([(1, 1, [10, 10, 50, 40])], images=1))
    with pytest.raises(TridentError, match="class id 7 but the ground truth has 3 categories"):
        evaluate(gt, {1: dets([[0, 0, 5, 5]], [0.5], [7])})
    with pytest.raises(TridentError, match=r"image ids \[42\]"):
        evaluate(gt, {42: dets([[0, 0, 5, 5]], [0.5], [0])})
    with pytest.raises(TridentError, match="undo the letterbox"):
        evaluate(gt, {1: dets([[0, 0, 5, 5]], [0.5], [0], np.zeros((1, 20, 20), bool))})
    with pytest.raises(TridentError, match="not found"):
        evaluate(tmp_path / "missing.json", {})
