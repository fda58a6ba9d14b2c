"""Semantic segmentation dataset from an image folder and a parallel folder of label PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pipeline.errors import TridentError
from training.data import base as kinds
from training.data.base import LabelledDataset, clean_semantic, image_size, read_image, read_label_png
from training.data.sample import IGNORE_INDEX, Sample

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class SemanticFolder(LabelledDataset):
    """Images under ``image_dir`` paired with uint8 label PNGs under ``label_dir`` by relative path and stem.

    ``image_dir/a/b.jpg`` pairs with ``label_dir/a/b.png``. Label values index
    ``class_names``; ``ignore_value`` (e.g. 0 for an "unlabelled" class, or
    255) becomes 255, and so do values beyond the class list (counted).
    Images without a label PNG, or whose label PNG has another size, are
    skipped and counted; both are checked from the file headers at start.
    Boxes, labels and masks are None: this dataset teaches the semantic head
    only. ``image_id`` is the position in the sorted file list.
    """

    def __init__(
        self,
        image_dir: str | Path,
        label_dir: str | Path,
        class_names: Sequence[str],
        ignore_value: int | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        super().__init__(transforms)
        self.image_dir, self.label_dir = Path(image_dir), Path(label_dir)
        for what, folder in (("image", self.image_dir), ("label", self.label_dir)):
            if not folder.is_dir():
                raise TridentError(f"{what} folder not found: {folder}; pass an existing directory")
        if not class_names:
            raise TridentError("SemanticFolder needs the list of class names (label value k is class_names[k])")
        if len(class_names) > IGNORE_INDEX:
            raise TridentError(f"{len(class_names)} semantic classes do not fit uint8 labels with 255 as ignore; use at most 255")
        self.semantic_classes = tuple(str(c) for c in class_names)
        self.ignore_value = ignore_value
        images = sorted(p for p in self.image_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not images:
            raise TridentError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {self.image_dir}")
        self.pairs: list[tuple[Path, Path]] = []
        for image in images:
            label = (self.label_dir / image.relative_to(self.image_dir)).with_suffix(".png")
            if not label.is_file():
                self.problems[kinds.MISSING_LABEL] += 1
            elif image_size(image) != image_size(label):
                self.problems[kinds.SEMANTIC_SIZE] += 1
            else:
                self.pairs.append((image, label))
        self.report_problems(self.label_dir)

    def __len__(self) -> int:
        return len(self.pairs)

    def load_sample(self, index: int) -> Sample:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        labels = read_label_png(label_path)
        if labels.shape != image.shape[:2]:
            raise TridentError(f"label PNG {label_path} is {labels.shape[::-1]} but image {image_path} is {image.shape[1::-1]}")
        semantic = clean_semantic(labels, len(self.semantic_classes), self.ignore_value, self.problems)
        return Sample(image=image, image_id=index, orig_size=image.shape[:2], semantic=semantic.astype(np.uint8))
