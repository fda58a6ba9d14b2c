"""What every Trident dataset shares: raw loading, transforms, and problem reporting.

A dataset subclass implements ``__len__`` and ``load_sample(i)`` (a
:class:`Sample` in original pixels); this base applies the transforms and
converts to the model's ``(image, target)`` pair. Bad annotations are counted
in ``problems`` while the dataset is indexed and reported once, as a single
warning listing every kind of problem and its count, so a broken dataset is
never trained on silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from pipeline.errors import TridentError
from training.data.sample import IGNORE_INDEX, Sample, to_model_input
from training.data.transforms import DEFAULT_INPUT_HW, LetterboxTransform

log = logging.getLogger("trident.data")

# the problem kinds, worded for the summary line; datasets count with these keys
BOX_CLIPPED = "box partly outside the image (clipped)"
BOX_OUTSIDE = "box entirely outside the image (dropped)"
BOX_ZERO_AREA = "zero-area box (dropped)"
BAD_POLYGON = "empty or degenerate polygon (annotation dropped)"
BAD_POLYGON_PART = "degenerate polygon part (removed, rest of the annotation kept)"
BAD_RLE = "RLE size differs from the image (annotation dropped)"
NO_SEGMENTATION = "annotation without segmentation in a mask dataset (dropped)"
UNKNOWN_CATEGORY = "unknown category id (annotation dropped)"
UNKNOWN_IMAGE = "annotation for an image id not in the file (dropped)"
CROWD = "crowd annotation (not trained on)"
MISSING_IMAGE = "missing image file (image skipped)"
MISSING_LABEL = "missing label PNG (image skipped)"
MISSING_SEMANTIC = "missing semantic PNG (semantic labels off for that frame)"
SEMANTIC_SIZE = "label PNG size differs from the image"
SEMANTIC_RANGE = "label map with values outside the class list (those pixels set to ignore)"
MISSING_VIDEO = "missing video file (its frames skipped)"


class LabelledDataset(torch.utils.data.Dataset):
    """Base of the Trident datasets; see the module docstring.

    ``transforms`` maps a Sample to a Sample; None means letterbox to the
    default model input (384x640). ``category_ids[k]`` is the COCO category id
    of contiguous class ``k`` (empty for datasets without things).
    """

    thing_classes: tuple[str, ...] = ()
    category_ids: tuple[int, ...] = ()
    semantic_classes: tuple[str, ...] = ()

    def __init__(self, transforms: Callable[[Sample], Sample] | None = None) -> None:
        self.transforms = transforms if transforms is not None else LetterboxTransform(DEFAULT_INPUT_HW)
        self.problems: Counter[str] = Counter()

    def load_sample(self, index: int) -> Sample:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        if not 0 <= index < len(self):
            raise IndexError(f"{type(self).__name__} index {index} out of range [0, {len(self)})")
        return to_model_input(self.transforms(self.load_sample(index)))

    def report_problems(self, source: str | Path) -> None:
        """Log one warning that lists every problem kind with its count (nothing when clean)."""
        if not self.problems:
            return
        parts = "; ".join(f"{kind}: {n}" for kind, n in sorted(self.problems.items(), key=lambda kv: -kv[1]))
        log.warning("%s: %d annotation problem(s) in %s — %s", type(self).__name__, sum(self.problems.values()), source, parts)


def clean_semantic(labels: np.ndarray, num_classes: int, ignore_value: int | None, problems: Counter[str]) -> np.ndarray:
    """Map the dataset's ignore value and out-of-range labels to 255; label maps with the latter are counted.

    Counted when the sample is loaded, so the count covers the samples seen so
    far (in this process); a warning is logged the first time it happens.
    """
    out = labels.copy()
    if ignore_value is not None and ignore_value != IGNORE_INDEX:
        out[labels == ignore_value] = IGNORE_INDEX
    bad = (out >= num_classes) & (out != IGNORE_INDEX)
    if bad.any():
        if SEMANTIC_RANGE not in problems:
            log.warning("semantic labels >= %d (the number of classes) found; those pixels are set to 255 (ignore)", num_classes)
        problems[SEMANTIC_RANGE] += 1
        out[bad] = IGNORE_INDEX
    return out


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 image; a file that exists but cannot be decoded is a user-fixable error naming it."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise TridentError(f"cannot decode image {path}; the file is corrupt or not an image, replace or remove it")
    return image


def read_label_png(path: Path) -> np.ndarray:
    """uint8 label map from a single-channel PNG (a colour PNG is rejected: palette colours are not labels)."""
    import cv2

    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise TridentError(f"cannot decode label PNG {path}; the file is corrupt, regenerate it")
    if labels.ndim != 2:
        raise TridentError(f"label PNG {path} has {labels.shape[2]} channels; labels must be one uint8 channel of class indices")
    if labels.dtype != np.uint8:
        raise TridentError(f"label PNG {path} is {labels.dtype}; labels must be uint8 class indices")
    return labels


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header only, without decoding the pixels."""
    from PIL import Image  # torchvision's dependency; reads headers lazily

    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError as exc:
        raise TridentError(f"cannot read image header of {path}: {exc}; replace or remove the file") from None
    return int(h), int(w)
