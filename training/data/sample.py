"""One training sample as numpy arrays, its conversion to the model's target dict, and batching.

Every dataset loads a :class:`Sample` in original pixels, the transforms work on
samples (numpy, OpenCV), and only the last step turns it into the
``(image, target)`` pair the model consumes. ``None`` in a label field means
"this sample has no labels of that kind" (no loss for that task), while an
empty array means "labelled, and there is nothing there".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import TridentError

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = 255  # semantic label that contributes no loss and no metric
PAD_VALUE = 114  # image border grey: neutral for the network, as in most one-stage detectors


@dataclass(frozen=True, eq=False)
class Sample:
    """An image and its labels in the pixels of ``image``.

    image uint8[H,W,3] BGR; boxes float32[N,4] xyxy (right/bottom exclusive);
    labels int64[N] 0-based thing classes; masks uint8[N,H,W] in {0,1};
    semantic uint8[H,W] with 255 = ignore. ``scale`` and ``pad`` are the
    letterbox that maps original pixels to these: ``x_in = x_orig * scale + pad_x``.
    """

    image: np.ndarray
    image_id: int
    orig_size: tuple[int, int]
    boxes: np.ndarray | None = None
    labels: np.ndarray | None = None
    masks: np.ndarray | None = None
    semantic: np.ndarray | None = None
    scale: float = 1.0
    pad: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if __debug__:
            h, w = self.image.shape[:2]
            if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
                raise ValueError(f"Sample.image must be uint8[H,W,3], got {self.image.dtype}{list(self.image.shape)}")
            if (self.boxes is None) != (self.labels is None):
                raise ValueError("Sample.boxes and Sample.labels must both be None or both be arrays")
            n = None if self.boxes is None else len(self.boxes)
            if self.masks is not None:
                if self.masks.shape[1:] != (h, w) or (n is not None and len(self.masks) != n):
                    raise ValueError(f"Sample.masks {list(self.masks.shape)} must be [N={n},{h},{w}]")
            if self.semantic is not None and self.semantic.shape != (h, w):
                raise ValueError(f"Sample.semantic {list(self.semantic.shape)} must be [{h},{w}]")

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def with_(self, **changes: Any) -> "Sample":
        """A copy with some fields replaced (the sample itself is immutable)."""
        return replace(self, **changes)


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes (right/bottom exclusive) of uint8/bool masks [N,H,W]; an empty mask gives a zero box."""
    n = len(masks)
    boxes = np.zeros((n, 4), np.float32)
    if n == 0:
        return boxes
    cols = masks.any(axis=1)  # [N,W]
    rows = masks.any(axis=2)  # [N,H]
    has = cols.any(axis=1)
    w, h = masks.shape[2], masks.shape[1]
    x0 = cols.argmax(axis=1)
    x1 = w - cols[:, ::-1].argmax(axis=1)
    y0 = rows.argmax(axis=1)
    y1 = h - rows[:, ::-1].argmax(axis=1)
    boxes[has] = np.stack([x0, y0, x1, y1], axis=1)[has].astype(np.float32)
    return boxes


def keep_instances(sample: Sample, keep: np.ndarray) -> Sample:
    """Drop the instances where ``keep`` is False from boxes, labels and masks together."""
    if sample.boxes is None or keep.all():
        return sample
    return sample.with_(
        boxes=sample.boxes[keep],
        labels=sample.labels[keep] if sample.labels is not None else None,
        masks=sample.masks[keep] if sample.masks is not None else None,
    )


def refit_boxes(sample: Sample, min_area: float, from_masks: bool) -> Sample:
    """Recompute boxes from masks (when asked and present), clip them, and drop instances below ``min_area``.

    Boxes from masks are tighter than transformed boxes once an object is
    cropped at the border or resampled, and they keep box and mask consistent.
    """
    if sample.boxes is None:
        return sample
    h, w = sample.hw
    if from_masks and sample.masks is not None:
        boxes = boxes_from_masks(sample.masks)
    else:
        boxes = sample.boxes.copy()
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = area >= max(min_area, 1e-6)
    if sample.masks is not None:
        keep &= sample.masks.reshape(len(sample.masks), -1).any(axis=1)
    return keep_instances(sample.with_(boxes=boxes.astype(np.float32)), keep)


def to_model_input(sample: Sample) -> tuple["torch.Tensor", dict[str, Any]]:
    """The (image, target) pair the model consumes; see the package docstring for the target keys."""
    import torch

    image = torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1)))
    target: dict[str, Any] = {
        "boxes": None if sample.boxes is None else torch.from_numpy(np.ascontiguousarray(sample.boxes, np.float32)),
        "labels": None if sample.labels is None else torch.from_numpy(np.ascontiguousarray(sample.labels, np.int64)),
        "masks": None if sample.masks is None else torch.from_numpy(np.ascontiguousarray(sample.masks, np.uint8)),
        "semantic": None if sample.semantic is None else torch.from_numpy(sample.semantic.astype(np.int64)),
        "image_id": int(sample.image_id),
        "orig_size": (int(sample.orig_size[0]), int(sample.orig_size[1])),
        "scale": float(sample.scale),
        "pad": (float(sample.pad[0]), float(sample.pad[1])),
    }
    return image, target


def collate(batch: list[tuple["torch.Tensor", dict[str, Any]]]) -> tuple["torch.Tensor", list[dict[str, Any]]]:
    """Stack images into uint8[B,3,H,W]; targets stay a list because their label kinds and counts differ."""
    import torch

    if not batch:
        raise ValueError("collate got an empty batch")
    shapes = {tuple(img.shape) for img, _ in batch}
    if len(shapes) > 1:
        raise TridentError(
            f"collate got images of different sizes {sorted(shapes)}; "
            "give every dataset the same Letterbox input size"
        )
    images = torch.stack([img for img, _ in batch])
    return images, [t for _, t in batch]


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker's transforms their own random stream.

    Forked workers inherit identical generator states, so without this every
    worker would apply the same augmentations to its samples.
    """
    import torch

    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    stack = [info.dataset]
    while stack:
        ds = stack.pop()
        stack.extend(getattr(ds, "datasets", []))  # ConcatDataset
        if getattr(ds, "dataset", None) is not None:  # Subset, MosaicDataset
            stack.append(ds.dataset)
        transforms = getattr(ds, "transforms", None)
        if hasattr(transforms, "reseed"):
            transforms.reseed(info.seed)
        if hasattr(ds, "reseed"):
            ds.reseed(info.seed)
