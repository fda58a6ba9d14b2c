"""Evaluation metrics: COCO box and mask mAP, precision/recall/F1, and semantic mIoU.

Pure functions over numpy and pycocotools (no torch). Detections are
``pipeline.contracts.Detections`` in *original image pixels*, keyed by COCO image
id; class id ``k`` is the k-th category id of the ground truth in ascending
order (the datasets' ``category_ids``). An image id that is evaluated but
absent from the predictions counts as "predicted nothing". Evaluations over
many images should hold ``EncodedDetections`` (masks already run-length
encoded): the box-local masks of 100 detections on a 640x384 synthetic frame
hold ~160 KB, their COCO RLE ~8 KB, and COCO-sized splits have thousands of
images with larger boxes.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from pipeline.boxes import box_iou
from pipeline.contracts import Detections
from pipeline.errors import TridentError

if TYPE_CHECKING:
    from pycocotools.coco import COCO

IGNORE_INDEX = 255


@dataclass(frozen=True, eq=False)
class EncodedDetections:
    """One image's detections as evaluation keeps them: boxes, scores, classes and COCO RLE masks.

    Accepted wherever the metrics take ``Detections``; ``rles`` is None when
    the model predicts no masks.
    """

    boxes: np.ndarray  # float32[N,4] xyxy, original image pixels
    scores: np.ndarray  # float32[N]
    class_ids: np.ndarray  # int64[N]
    rles: list[dict] | None
    mask_hw: tuple[int, int] | None

    @classmethod
    def from_detections(cls, det: Detections) -> "EncodedDetections":
        if det.masks is None:
            return cls(det.boxes, det.scores, det.class_ids, None, None)
        return cls(det.boxes, det.scores, det.class_ids, det.masks.rle(), det.masks.frame_hw)

    def __len__(self) -> int:
        return len(self.scores)

    def masks_rle(self) -> list[dict]:
        if self.rles is None:
            raise TridentError("these detections carry no instance masks: the model or engine produced none")
        return self.rles


def _mask_hw(det: "Detections | EncodedDetections") -> tuple[int, int] | None:
    if isinstance(det, EncodedDetections):
        return det.mask_hw
    return None if det.masks is None else det.masks.frame_hw


@dataclass(frozen=True)
class EvalResult:
    """All numbers of one evaluation; a field is None when that part was not evaluated or is undefined.

    Per-class dicts map class name to AP or IoU; None marks a class absent
    from the ground truth (and, for IoU, never predicted), which COCO and the
    means leave out.
    """

    box_map: float | None = None  # AP averaged over IoU 0.50:0.05:0.95, all areas, 100 detections
    box_map50: float | None = None
    mask_map: float | None = None
    mask_map50: float | None = None
    box_ap_per_class: dict[str, float | None] = field(default_factory=dict)
    mask_ap_per_class: dict[str, float | None] = field(default_factory=dict)
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    tp: int | None = None
    fp: int | None = None
    fn: int | None = None
    score_threshold: float | None = None
    miou: float | None = None
    iou_per_class: dict[str, float | None] = field(default_factory=dict)
    num_images: int = 0  # images in the detection evaluation
    num_semantic_images: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def format_table(self) -> str:
        """A plain-text table: the headline numbers, then per-class AP and IoU."""

        def fmt(v: float | int | None) -> str:
            return "-" if v is None else (str(v) if isinstance(v, int) else f"{v:.4f}")

        thr = "" if self.score_threshold is None else f"@{self.score_threshold:.2f}"
        rows = [
            ("box mAP@[.50:.95]", self.box_map),
            ("box mAP@.50", self.box_map50),
            ("mask mAP@[.50:.95]", self.mask_map),
            ("mask mAP@.50", self.mask_map50),
            (f"precision{thr}", self.precision),
            (f"recall{thr}", self.recall),
            (f"F1{thr}", self.f1),
            ("TP / FP / FN", None if self.tp is None else f"{self.tp} / {self.fp} / {self.fn}"),
            ("semantic mIoU", self.miou),
        ]
        lines = [f"images: {self.num_images} detection, {self.num_semantic_images} semantic", f"{'metric':<22}{'value':>14}"]
        lines += [f"{name:<22}{v if isinstance(v, str) else fmt(v):>14}" for name, v in rows]
        classes = list(dict.fromkeys([*self.box_ap_per_class, *self.mask_ap_per_class]))
        if classes:
            lines += ["", f"{'class':<22}{'box AP':>10}{'mask AP':>10}"]
            for c in classes:
                lines.append(f"{c:<22}{fmt(self.box_ap_per_class.get(c)):>10}{fmt(self.mask_ap_per_class.get(c)):>10}")
        if self.iou_per_class:
            lines += ["", f"{'semantic class':<22}{'IoU':>10}"]
            lines += [f"{c:<22}{fmt(v):>10}" for c, v in self.iou_per_class.items()]
        return "\n".join(lines)


def load_coco_gt(gt: "COCO | str | Path") -> "COCO":
    """A pycocotools COCO object; fills in ``iscrowd`` (0) and ``area`` (box area) where a row lacks them,
    since COCOeval needs both."""
    from pycocotools.coco import COCO

    if not isinstance(gt, COCO):
        path = Path(gt)
        if not path.is_file():
            raise TridentError(f"ground-truth file not found: {path}; pass a COCO instances JSON")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TridentError(f"cannot read ground truth {path}: {exc}; it must be a COCO instances JSON") from None
        gt = COCO()
        gt.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            gt.createIndex()
    for ann in gt.anns.values():
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
    return gt


def _category_ids(gt: "COCO", category_ids: Sequence[int] | None) -> list[int]:
    return list(category_ids) if category_ids is not None else sorted(gt.getCatIds())


def _image_ids(gt: "COCO", predictions: Mapping[int, "Detections | EncodedDetections"], image_ids: Iterable[int] | None) -> list[int]:
    known = set(gt.getImgIds())
    unknown = sorted(set(int(i) for i in predictions) - known)
    if unknown:
        raise TridentError(f"predictions for image ids {unknown[:5]} that are not in the ground truth; evaluate on the same split")
    return sorted(known) if image_ids is None else sorted(int(i) for i in image_ids)


def _to_category(class_ids: np.ndarray, cats: list[int]) -> list[int]:
    if len(class_ids) and (class_ids.min() < 0 or class_ids.max() >= len(cats)):
        raise TridentError(
            f"prediction class id {int(class_ids.max())} but the ground truth has {len(cats)} categories; "
            "the model and the dataset class lists disagree"
        )
    return [cats[int(k)] for k in class_ids]


def _coco_results(gt: "COCO", predictions: Mapping[int, "Detections | EncodedDetections"], cats: list[int], masks: bool) -> list[dict]:
    results = []
    for image_id, det in predictions.items():
        if len(det) == 0:
            continue
        cat = _to_category(det.class_ids, cats)
        if masks:
            img = gt.imgs[int(image_id)]
            if _mask_hw(det) != (img["height"], img["width"]):
                raise TridentError(
                    f"masks of image {image_id} are {_mask_hw(det)} but the image is {(img['height'], img['width'])}; "
                    "undo the letterbox (training.data.unletterbox_masks) before evaluating"
                )
            for rle, c, s in zip(det.masks_rle(), cat, det.scores):
                results.append({"image_id": int(image_id), "category_id": c, "segmentation": rle, "score": float(s)})
        else:
            for (x0, y0, x1, y1), c, s in zip(det.boxes.tolist(), cat, det.scores):
                results.append({"image_id": int(image_id), "category_id": c, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(s)})
    return results


def _coco_eval(gt: "COCO", results: list[dict], iou_type: str, image_ids: list[int], cats: list[int]) -> tuple[float | None, float | None, dict[int, float | None]]:
    """(mAP@[.5:.95], mAP@.5, {category id: AP}) from COCOeval, without its console output."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes rejects an empty list; an empty result set is a valid answer worth 0 AP
            dt = COCO()
            dt.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]), "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, iou_type)
        ev.params.imgIds = image_ids
        ev.params.catIds = sorted(set(cats) | set(gt.getCatIds()))
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # [IoU thr, recall, class] at area "all", maxDets 100
    valid = prec > -1  # -1: class has no ground truth in these images

    def mean(x: np.ndarray, ok: np.ndarray) -> float | None:
        return float(x[ok].mean()) if ok.any() else None

    per_class = {cid: mean(prec[:, :, k], valid[:, :, k]) for k, cid in enumerate(ev.params.catIds)}
    return mean(prec, valid), mean(prec[0], valid[0]), per_class


def coco_map(
    gt: "COCO | str | Path",
    predictions: Mapping[int, "Detections | EncodedDetections"],
    category_ids: Sequence[int] | None = None,
    image_ids: Iterable[int] | None = None,
) -> dict[str, Any]:
    """Box (and, when every non-empty prediction has masks and the gt has segmentations, mask) mAP.

    Returns keys box_map, box_map50, box_ap_per_class and the mask_*
    counterparts (None when masks are not evaluated), per-class dicts keyed by
    category name.
    """
    gt = load_coco_gt(gt)
    cats = _category_ids(gt, category_ids)
    ids = _image_ids(gt, predictions, image_ids)
    names = {cid: str(gt.cats[cid].get("name", cid)) if cid in gt.cats else str(cid) for cid in cats}
    out: dict[str, Any] = {"mask_map": None, "mask_map50": None, "mask_ap_per_class": {}}
    m, m50, per = _coco_eval(gt, _coco_results(gt, predictions, cats, masks=False), "bbox", ids, cats)
    out.update(box_map=m, box_map50=m50, box_ap_per_class={names.get(c, str(c)): v for c, v in per.items()})
    gt_has_segm = any("segmentation" in a for a in gt.anns.values())
    preds_have_masks = all(_mask_hw(d) is not None for d in predictions.values() if len(d))
    if gt_has_segm and preds_have_masks:
        m, m50, per = _coco_eval(gt, _coco_results(gt, predictions, cats, masks=True), "segm", ids, cats)
        out.update(mask_map=m, mask_map50=m50, mask_ap_per_class={names.get(c, str(c)): v for c, v in per.items()})
    return out


def precision_recall_f1(
    gt: "COCO | str | Path",
    predictions: Mapping[int, "Detections | EncodedDetections"],
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    category_ids: Sequence[int] | None = None,
    image_ids: Iterable[int] | None = None,
) -> dict[str, float | int]:
    """Greedy one-to-one matching of same-class boxes (highest score first) at ``iou_threshold``.

    Only detections with score >= ``score_threshold`` count. A detection
    matching no object but covering a crowd region (intersection over its own
    area >= ``iou_threshold``) is ignored, as in COCO. A ratio with a zero
    denominator is 0.
    """
    gt = load_coco_gt(gt)
    cats = _category_ids(gt, category_ids)
    tp = fp = fn = 0
    for image_id in _image_ids(gt, predictions, image_ids):
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[image_id]))
        det = predictions.get(image_id)
        keep = det.scores >= score_threshold if det is not None else np.zeros(0, bool)
        det_cats = np.array(_to_category(det.class_ids[keep], cats) if det is not None else [], np.int64)
        det_boxes = det.boxes[keep] if det is not None else np.zeros((0, 4), np.float32)
        det_scores = det.scores[keep] if det is not None else np.zeros(0, np.float32)
        for cid in set(det_cats.tolist()) | {a["category_id"] for a in anns}:
            g, crowd = _gt_boxes(anns, cid, crowd=False), _gt_boxes(anns, cid, crowd=True)
            sel = det_cats == cid
            d = det_boxes[sel].astype(np.float64)[np.argsort(-det_scores[sel], kind="stable")]
            iou = box_iou(d, g)
            taken = np.zeros(len(g), bool)
            for i in range(len(d)):
                cand = np.where(~taken & (iou[i] >= iou_threshold))[0]
                if len(cand):
                    taken[cand[np.argmax(iou[i, cand])]] = True
                    tp += 1
                elif not (len(crowd) and _covered_by_crowd(d[i], crowd, iou_threshold)):
                    fp += 1
            fn += int((~taken).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def _gt_boxes(anns: list[dict], cid: int, crowd: bool) -> np.ndarray:
    rows = [a["bbox"] for a in anns if a["category_id"] == cid and bool(a.get("iscrowd", 0)) == crowd]
    xywh = np.array(rows, np.float64).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _covered_by_crowd(box: np.ndarray, crowd: np.ndarray, thr: float) -> bool:
    lt = np.maximum(box[:2], crowd[:, :2])
    rb = np.minimum(box[2:], crowd[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=1)
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)
    return bool((inter / area >= thr).any())


def confusion_matrix(
    predictions: Iterable[np.ndarray], targets: Iterable[np.ndarray], num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """int64[C,C] counts, rows = ground truth, columns = prediction; gt pixels equal to ``ignore_index`` are skipped."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    for pred, target in zip(predictions, targets, strict=True):
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape:
            raise TridentError(f"semantic prediction {pred.shape} and label {target.shape} differ in size; undo the letterbox first")
        valid = target != ignore_index
        t, p = target[valid].astype(np.int64), pred[valid].astype(np.int64)
        if t.size and (t.max() >= num_classes or p.max() >= num_classes or p.min() < 0):
            raise TridentError(f"semantic labels beyond the {num_classes} classes; the model and the dataset class lists disagree")
        cm += np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    return cm


def semantic_iou(confusion: np.ndarray) -> tuple[float | None, list[float | None]]:
    """(mIoU, per-class IoU) from a confusion matrix; a class neither present nor predicted has IoU None and is left out of the mean."""
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - inter
    per = [float(i / u) if u > 0 else None for i, u in zip(inter, union)]
    defined = [v for v in per if v is not None]
    return (float(np.mean(defined)) if defined else None), per


def evaluate(
    gt: "COCO | str | Path | None" = None,
    predictions: Mapping[int, "Detections | EncodedDetections"] | None = None,
    semantic_predictions: Iterable[np.ndarray] | None = None,
    semantic_targets: Iterable[np.ndarray] | None = None,
    semantic_class_names: Sequence[str] = (),
    score_threshold: float = 0.5,
    category_ids: Sequence[int] | None = None,
    image_ids: Iterable[int] | None = None,
) -> EvalResult:
    """Every metric whose inputs are given: detection metrics need ``gt`` (and ``predictions``, which may
    be empty), semantic metrics need paired label maps and the class names."""
    fields: dict[str, Any] = {}
    if gt is not None:
        gt = load_coco_gt(gt)
        predictions = predictions or {}
        ids = _image_ids(gt, predictions, image_ids)
        fields.update(coco_map(gt, predictions, category_ids, ids))
        prf = precision_recall_f1(gt, predictions, score_threshold, 0.5, category_ids, ids)
        fields.update(prf, score_threshold=score_threshold, num_images=len(ids))
    if semantic_predictions is not None and semantic_targets is not None:
        if not semantic_class_names:
            raise TridentError("semantic evaluation needs semantic_class_names (label k is class k)")
        counted = [0]

        def count(maps: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
            for m in maps:  # label maps may be a generator over a whole split: count without holding them
                counted[0] += 1
                yield m

        cm = confusion_matrix(count(semantic_predictions), semantic_targets, len(semantic_class_names))
        miou, per = semantic_iou(cm)
        fields.update(miou=miou, iou_per_class=dict(zip(map(str, semantic_class_names), per)), num_semantic_images=counted[0])
    return EvalResult(**{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in fields.items()})
