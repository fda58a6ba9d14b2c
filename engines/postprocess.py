"""The one post-process every engine uses: raw network outputs -> Detections + SemanticMap.

Score filter and top-k, class-aware NMS (torchvision.ops.batched_nms), mask
assembly from prototypes, semantic argmax, and letterbox undo back to frame
pixels. Masks and semantic maps are resampled with `torchvision.ops.roi_align`
straight from the stride-4 network resolution to each box (or the whole
frame) in frame pixels, so there is never a full-frame float tensor per
detection; semantic logits are upsampled once to the input, cropped to the
frame's content and argmaxed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from engines.spec import OUTPUT_NAMES, ModelSpec
from pipeline.contracts import Detections, SemanticMap
from pipeline.errors import TridentError
from pipeline.letterbox import Letterbox

PROTO_STRIDE = 4  # protos and sem_logits are at 1/4 of the input resolution


@dataclass(frozen=True)
class PostprocessConfig:
    score_threshold: float = 0.25  # lower finds more faint objects and feeds ByteTrack's second stage; costs FPs
    iou_threshold: float = 0.6  # NMS overlap; higher keeps more of a crowd, and more duplicates
    max_detections: int = 100  # per frame, after NMS
    pre_nms_topk: int = 1000  # candidates entering NMS; bounds its cost on cluttered frames
    class_agnostic: bool = False  # True suppresses overlapping boxes of different classes too
    mask_threshold: float = 0.5  # mask probability above which a pixel belongs to the instance

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise TridentError(f"score_threshold must be in [0, 1), got {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise TridentError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise TridentError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")
        if self.max_detections < 1 or self.pre_nms_topk < 1:
            raise TridentError("max_detections and pre_nms_topk must be >= 1")


@dataclass(frozen=True)
class RawOutputs:
    """The export tuple of MultiTaskNet, by name. Arrays are numpy or torch tensors."""

    boxes: Any = None  # [B,A,4] xyxy, input pixels
    scores: Any = None  # [B,A,C] probabilities
    mask_coeffs: Any = None  # [B,A,K]
    protos: Any = None  # [B,K,H/4,W/4]
    sem_logits: Any = None  # [B,S,H/4,W/4]

    @classmethod
    def from_sequence(cls, names: Sequence[str], values: Sequence[Any]) -> "RawOutputs":
        if len(names) != len(values):
            raise TridentError(f"engine returned {len(values)} outputs but its spec names {len(names)}: {list(names)}")
        unknown = set(names) - set(OUTPUT_NAMES)
        if unknown:
            raise TridentError(f"unknown engine outputs {sorted(unknown)}; expected names from {OUTPUT_NAMES}")
        return cls(**dict(zip(names, values)))

    def as_tuple(self, names: Sequence[str]) -> tuple:
        return tuple(getattr(self, n) for n in names)

    @property
    def batch(self) -> int:
        first = self.boxes if self.boxes is not None else self.sem_logits
        return int(first.shape[0])


def _torch(x: Any):
    import torch

    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)).float()
    return x.detach().float()


def postprocess(
    raw: RawOutputs,
    spec: ModelSpec,
    letterboxes: Sequence[Letterbox],
    cfg: PostprocessConfig = PostprocessConfig(),
) -> list[tuple[Detections, SemanticMap | None]]:
    """One (Detections, SemanticMap or None) per image of the batch, in frame pixels."""
    import torch

    if raw.batch != len(letterboxes):
        raise TridentError(f"{raw.batch} images in the batch but {len(letterboxes)} letterbox records; pass one per frame")
    boxes, scores = _torch(raw.boxes), _torch(raw.scores)
    coeffs, protos, sem = _torch(raw.mask_coeffs), _torch(raw.protos), _torch(raw.sem_logits)
    if scores is not None and scores.shape[-1] != len(spec.class_names):
        raise TridentError(
            f"model outputs {scores.shape[-1]} classes but its spec names {len(spec.class_names)}; "
            "the weights and the class list disagree - re-export the model"
        )
    results = []
    with torch.inference_mode():
        for b, lb in enumerate(letterboxes):
            dets = _detections(boxes, scores, coeffs, protos, b, lb, cfg) if boxes is not None else None
            sem_map = _semantic(sem[b], lb, spec) if sem is not None else None
            if dets is None:
                dets = Detections.empty(lb.orig_hw if spec.has_masks else None)
            results.append((dets, sem_map))
    return results


def _detections(boxes, scores, coeffs, protos, b: int, lb: Letterbox, cfg: PostprocessConfig) -> Detections:
    import torch
    from torchvision.ops import batched_nms

    best, cls = scores[b].max(dim=1)
    keep = torch.nonzero(best > cfg.score_threshold).squeeze(1)
    if keep.numel() > cfg.pre_nms_topk:
        keep = keep[best[keep].topk(cfg.pre_nms_topk).indices]
    box_in, conf, label = boxes[b, keep], best[keep], cls[keep]
    groups = torch.zeros_like(label) if cfg.class_agnostic else label
    order = batched_nms(box_in, conf, groups, cfg.iou_threshold)[: cfg.max_detections]
    box_in, conf, label, anchors = box_in[order], conf[order], label[order], keep[order]
    frame_boxes = lb.boxes_to_frame(box_in.numpy())
    masks = None
    if coeffs is not None and protos is not None:
        masks = _masks(coeffs[b, anchors], protos[b], frame_boxes, lb, cfg.mask_threshold)
    valid = (frame_boxes[:, 2] > frame_boxes[:, 0]) & (frame_boxes[:, 3] > frame_boxes[:, 1])  # boxes wholly in the padding
    dets = Detections(
        boxes=frame_boxes,
        scores=conf.numpy().astype(np.float32),
        class_ids=label.numpy().astype(np.int32),
        masks=masks,
    )
    return dets if valid.all() else dets.select(valid)


def _masks(coeffs, protos, frame_boxes: np.ndarray, lb: Letterbox, threshold: float) -> np.ndarray:
    """bool[N,H,W]: each instance mask resampled inside its own box only."""
    import torch
    from torchvision.ops import roi_align

    h, w = lb.orig_hw
    out = np.zeros((len(frame_boxes), h, w), bool)
    if len(frame_boxes) == 0:
        return out
    k, ph, pw = protos.shape
    logits = (coeffs @ protos.reshape(k, -1)).reshape(-1, 1, ph, pw)
    cut = math.log(threshold / (1.0 - threshold))
    ints = np.stack([np.floor(frame_boxes[:, 0]), np.floor(frame_boxes[:, 1]), np.ceil(frame_boxes[:, 2]), np.ceil(frame_boxes[:, 3])], 1)
    ints = ints.clip([0, 0, 0, 0], [w, h, w, h]).astype(np.int64)
    rois = lb.boxes_to_input(ints.astype(np.float32))
    for i, (x0, y0, x1, y1) in enumerate(ints):
        if x1 <= x0 or y1 <= y0:
            continue
        roi = torch.tensor([[0.0, *rois[i]]], dtype=logits.dtype)
        patch = roi_align(logits[i : i + 1], roi, (int(y1 - y0), int(x1 - x0)), spatial_scale=1.0 / PROTO_STRIDE, sampling_ratio=1, aligned=True)
        out[i, y0:y1, x0:x1] = (patch[0, 0] > cut).numpy()
    return out


def _semantic(logits, lb: Letterbox, spec: ModelSpec) -> SemanticMap:
    """Bilinear upsample to the input, crop the letterbox padding, argmax, nearest-resize to the frame."""
    import torch
    import torch.nn.functional as F

    ih, iw = lb.input_hw
    nh, nw = lb.resized_hw
    y, x = int(lb.pad_y), int(lb.pad_x)
    up = F.interpolate(logits[None], size=(ih, iw), mode="bilinear", align_corners=False)[0, :, y : y + nh, x : x + nw]
    # argmax over a short leading axis is a slow strided reduction in torch; a running max is 10x faster
    best, labels = up[0].clone(), torch.zeros((nh, nw), dtype=torch.uint8)
    for c in range(1, up.shape[0]):
        labels.masked_fill_(up[c] > best, c)
        best = torch.maximum(best, up[c])
    labels = labels.numpy()
    h, w = lb.orig_hw
    if (nh, nw) != (h, w):
        import cv2

        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return SemanticMap(labels=labels, class_names=tuple(spec.sem_class_names))
