"""Validate per-image training targets once and pad them into batch tensors.

The dataset hands the model one dict per image (see `TargetBatch.from_list`).
Any field may be None for an image that lacks that kind of label, so every
loss reads the `has_*` masks and skips images without its labels instead of
treating "unlabelled" as "no objects".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.errors import TridentError

__all__ = ["TargetBatch", "SEMANTIC_IGNORE"]

SEMANTIC_IGNORE = 255
_KEYS = ("boxes", "labels", "masks", "semantic")


@dataclass(frozen=True)
class TargetBatch:
    """Targets of one batch on the model's device.

    boxes/labels/valid: [B,M,4] float32 xyxy pixels / [B,M] int64 / [B,M] bool,
    padded to the largest box count; rows of images without box labels are
    all invalid and `has_boxes` is False for them.
    masks: per image uint8 [N,H,W] or None. semantic: [B,H,W] int64 with
    SEMANTIC_IGNORE wherever an image has no semantic labels.
    """

    image_hw: tuple[int, int]
    boxes: torch.Tensor
    labels: torch.Tensor
    valid: torch.Tensor
    has_boxes: torch.Tensor
    masks: tuple[torch.Tensor | None, ...]
    has_masks: torch.Tensor
    semantic: torch.Tensor
    has_semantic: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.has_boxes.numel())

    @classmethod
    def from_list(
        cls,
        targets: Sequence[Mapping[str, Any]],
        batch_size: int,
        image_hw: tuple[int, int],
        num_classes: int,
        device: torch.device,
    ) -> TargetBatch:
        """Check every field against the contract and pad; errors name image and field."""
        if len(targets) != batch_size:
            raise TridentError(f"got {len(targets)} target dicts for a batch of {batch_size} images; pass one per image")
        h, w = image_hw
        boxes_l, labels_l, masks_l, sem_l = [], [], [], []
        for i, t in enumerate(targets):
            unknown = set(t) - set(_KEYS)
            if unknown:
                raise TridentError(f"target {i} has unknown key {sorted(unknown)[0]!r}; valid keys are {', '.join(_KEYS)}")
            boxes, labels = _check_boxes(i, t.get("boxes"), t.get("labels"), num_classes)
            masks = _check_masks(i, t.get("masks"), boxes, h, w)
            boxes_l.append(boxes)
            labels_l.append(labels)
            masks_l.append(None if masks is None else masks.to(device))
            sem_l.append(_check_semantic(i, t.get("semantic"), h, w))

        m = max([0] + [len(b) for b in boxes_l if b is not None])
        boxes_t = torch.zeros(batch_size, m, 4, dtype=torch.float32)
        labels_t = torch.zeros(batch_size, m, dtype=torch.int64)
        valid_t = torch.zeros(batch_size, m, dtype=torch.bool)
        for i, (b, lab) in enumerate(zip(boxes_l, labels_l)):
            if b is not None and len(b):
                boxes_t[i, : len(b)] = b
                labels_t[i, : len(b)] = lab
                valid_t[i, : len(b)] = True
        semantic_t = torch.full((batch_size, h, w), SEMANTIC_IGNORE, dtype=torch.int64)
        for i, s in enumerate(sem_l):
            if s is not None:
                semantic_t[i] = s
        return cls(
            image_hw=(h, w),
            boxes=boxes_t.to(device),
            labels=labels_t.to(device),
            valid=valid_t.to(device),
            has_boxes=torch.tensor([b is not None for b in boxes_l], device=device),
            masks=tuple(masks_l),
            has_masks=torch.tensor([mk is not None for mk in masks_l], device=device),
            semantic=semantic_t.to(device),
            has_semantic=torch.tensor([s is not None for s in sem_l], device=device),
        )


def _check_boxes(
    i: int, boxes: Any, labels: Any, num_classes: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if boxes is None or labels is None:
        if (boxes is None) != (labels is None):
            present = "boxes" if labels is None else "labels"
            raise TridentError(f"target {i} has {present} but not the other; give both or set both to None")
        return None, None
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4 or not boxes.is_floating_point():
        raise TridentError(f"target {i} 'boxes' must be a float tensor [N,4] xyxy, got {_describe(boxes)}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise TridentError(f"target {i} 'labels' must be an int64 tensor [N], got {_describe(labels)}")
    if len(labels) != len(boxes):
        raise TridentError(f"target {i} has {len(boxes)} boxes but {len(labels)} labels; give one label per box")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = int(labels.max()) if int(labels.max()) >= num_classes else int(labels.min())
        raise TridentError(f"target {i} has label {bad}, but the model has {num_classes} classes (ids 0..{num_classes - 1})")
    boxes = boxes.detach().float().cpu()
    if len(boxes) and not bool(torch.isfinite(boxes).all()):
        raise TridentError(f"target {i} 'boxes' contains NaN or inf")
    return boxes, labels.detach().long().cpu()


def _check_masks(i: int, masks: Any, boxes: torch.Tensor | None, h: int, w: int) -> torch.Tensor | None:
    if masks is None:
        return None
    if boxes is None:
        raise TridentError(f"target {i} has 'masks' but no 'boxes'; instance masks need their boxes and labels")
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3 or tuple(masks.shape[1:]) != (h, w):
        raise TridentError(f"target {i} 'masks' must be a uint8 tensor [N,{h},{w}], got {_describe(masks)}")
    if len(masks) != len(boxes):
        raise TridentError(f"target {i} has {len(boxes)} boxes but {len(masks)} masks; give one mask per box")
    return masks


def _check_semantic(i: int, sem: Any, h: int, w: int) -> torch.Tensor | None:
    if sem is None:
        return None
    if not isinstance(sem, torch.Tensor) or tuple(sem.shape) != (h, w) or sem.is_floating_point():
        raise TridentError(f"target {i} 'semantic' must be an int64 tensor [{h},{w}], got {_describe(sem)}")
    return sem.detach().long().cpu()


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"{str(x.dtype).replace('torch.', '')} {list(x.shape)}"
    return type(x).__name__
