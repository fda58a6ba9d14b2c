"""Hand-written reference decoders: the foreign ONNX run as its own documentation says, in numpy.

Nothing here uses Trident's importer, pre-process or post-process: frames are
resized with OpenCV as the foreign model expects (NanoDet: plain resize, BGR,
mean/std; Ultralytics: letterbox with grey 114, RGB / 255), the foreign file
runs in ONNX Runtime, the head is decoded from the layout's definition and
greedy class-wise NMS is written out. The import tests compare `trident run`'s
detections against these.
"""

from __future__ import annotations

import cv2
import numpy as np

NANODET_MEAN = np.array([103.53, 116.28, 123.675], np.float32)
NANODET_STD = np.array([57.375, 57.12, 58.395], np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS: indices kept, highest score first."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        if not order:
            break
        rest = np.array(order)
        x0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        overlap = inter / (area(boxes[i]) + area(boxes[rest]) - inter)
        order = [j for j, o in zip(order, overlap) if o <= iou]
    return keep


def select(boxes: np.ndarray, scores: np.ndarray, score_thr: float, iou: float, max_det: int = 100):
    """Best class per point above the threshold, class-wise NMS: (boxes, scores, classes) in input pixels."""
    cls = scores.argmax(1)
    best = scores[np.arange(len(scores)), cls]
    idx = np.flatnonzero(best > score_thr)
    kept = []
    for c in np.unique(cls[idx]):
        sel = idx[cls[idx] == c]
        kept.extend(sel[k] for k in nms(boxes[sel], best[sel], iou))
    kept = sorted(kept, key=lambda i: -best[i])[:max_det]
    kept = np.array(kept, int)
    return boxes[kept], best[kept], cls[kept]


def nanodet_reference(session, frame: np.ndarray, score_thr: float = 0.35, iou: float = 0.6):
    """NanoDet per ../shared/teachers/NOTICE.md: (boxes in frame pixels, scores, classes)."""
    ih, iw = session.get_inputs()[0].shape[2:]
    fh, fw = frame.shape[:2]
    x = cv2.resize(frame, (iw, ih), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    x = ((x - NANODET_MEAN) / NANODET_STD).transpose(2, 0, 1)[None]
    outs = session.run(None, {session.get_inputs()[0].name: x})
    levels = {}
    for o in outs:
        levels.setdefault(o.shape[1], []).append(o[0])
    all_boxes, all_scores = [], []
    for n in sorted(levels, reverse=True):
        a, b = levels[n]
        score, dist = (a, b) if a.shape[1] == 80 else (b, a)
        stride = next(s for s in (8, 16, 32, 64) if -(-ih // s) * -(-iw // s) == n)
        gw = -(-iw // stride)
        bins = dist.shape[1] // 4
        logits = dist.reshape(n, 4, bins)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        d = (p * np.arange(bins)).sum(-1) * stride  # l, t, r, b
        i = np.arange(n)
        cx, cy = (i % gw) * stride, (i // gw) * stride
        all_boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1))
        all_scores.append(score)
    boxes, scores, classes = select(np.concatenate(all_boxes), np.concatenate(all_scores), score_thr, iou)
    boxes = boxes * np.array([fw / iw, fh / ih, fw / iw, fh / ih])
    return _clip(boxes, scores, classes, fh, fw)


def ultralytics_letterbox(frame: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, float, float, float]:
    """Ultralytics' published letterbox: scale to fit, centre, pad grey 114 -> (image, r, pad_x, pad_y)."""
    fh, fw = frame.shape[:2]
    r = min(hw[0] / fh, hw[1] / fw)
    nw, nh = int(round(fw * r)), int(round(fh * r))
    dw, dh = (hw[1] - nw) / 2, (hw[0] - nh) / 2
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    out = np.full((*hw, 3), 114, np.uint8)
    out[top : top + nh, left : left + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, r, float(left), float(top)


def ultralytics_reference(session, frame: np.ndarray, score_thr: float, iou: float = 0.6):
    """An Ultralytics detect/segment export: (boxes in frame pixels, scores, classes)."""
    ih, iw = session.get_inputs()[0].shape[2:]
    image, r, px, py = ultralytics_letterbox(frame, (ih, iw))
    x = image[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    outs = session.run(None, {session.get_inputs()[0].name: x})
    preds = outs[0][0].T  # [A, 4+nc(+nm)]
    nc = preds.shape[1] - 4 - (outs[1].shape[1] if len(outs) > 1 else 0)
    cx, cy, w, h = preds[:, :4].T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    boxes, scores, classes = select(boxes, preds[:, 4 : 4 + nc], score_thr, iou)
    boxes = (boxes - np.array([px, py, px, py])) / r
    return _clip(boxes, scores, classes, *frame.shape[:2])


def _clip(boxes, scores, classes, fh: int, fw: int):
    boxes = boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, fw)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, fh)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[ok].astype(np.float32), scores[ok].astype(np.float32), classes[ok].astype(int)


def unmatched(ours: list[tuple[list[float], int]], ref: list[tuple[np.ndarray, int]], tol: float = 1.0) -> tuple[list, list]:
    """Detections of each side with no partner of the same class whose box is within `tol` px on every side."""
    left = list(range(len(ref)))
    lonely = []
    for box, cls in ours:
        hit = next((j for j in left if ref[j][1] == cls and np.abs(np.asarray(box) - ref[j][0]).max() <= tol), None)
        if hit is None:
            lonely.append((box, cls))
        else:
            left.remove(hit)
    return lonely, [ref[j] for j in left]
