"""Datasets, augmentations and batching for training the multi-task model.

Every dataset yields ``(image, target)``: ``image`` is uint8[3,H,W] BGR and
``target`` is a dict with

- ``boxes``: float32[N,4] xyxy in input pixels, or None when the sample has no
  box labels (an empty [0,4] tensor means "labelled, no objects");
- ``labels``: int64[N] 0-based thing classes (None iff boxes is None);
- ``masks``: uint8[N,H,W] instance masks, or None when the sample has none;
- ``semantic``: int64[H,W] class per pixel, 255 = ignore, or None;
- ``image_id`` (int), ``orig_size`` ((h, w) of the original image), and the
  letterbox ``scale`` and ``pad`` ((pad_x, pad_y)): ``x_in = x_orig * scale + pad_x``.

Datasets with different label kinds mix with ``torch.utils.data.ConcatDataset``;
batch them with ``collate`` (and ``seed_worker`` as ``worker_init_fn``).
"""

from training.data.base import LabelledDataset
from training.data.coco import CocoInstances
from training.data.mosaic import Mosaic, MosaicDataset
from training.data.sample import IGNORE_INDEX, PAD_VALUE, Sample, boxes_from_masks, collate, seed_worker, to_model_input
from training.data.semantic_folder import SemanticFolder
from training.data.synthetic_video import SyntheticVideoDataset
from training.data.transforms import (
    DEFAULT_INPUT_HW,
    Compose,
    HorizontalFlip,
    HSVJitter,
    LetterboxTransform,
    RandomAffine,
    eval_transforms,
    letterbox,
    train_transforms,
    unletterbox_boxes,
    unletterbox_masks,
)

__all__ = [
    "CocoInstances",
    "Compose",
    "DEFAULT_INPUT_HW",
    "HSVJitter",
    "HorizontalFlip",
    "IGNORE_INDEX",
    "LabelledDataset",
    "LetterboxTransform",
    "Mosaic",
    "MosaicDataset",
    "PAD_VALUE",
    "RandomAffine",
    "Sample",
    "SemanticFolder",
    "SyntheticVideoDataset",
    "boxes_from_masks",
    "collate",
    "eval_transforms",
    "letterbox",
    "seed_worker",
    "to_model_input",
    "train_transforms",
    "unletterbox_boxes",
    "unletterbox_masks",
]
