"""COCO instances JSON: validated per-image records, mask decoding, and the CocoInstances dataset.

The index is shared with :class:`SyntheticVideoDataset`. Every annotation is
checked once when the file is read; each one that is dropped or changed is
counted under a problem kind (see ``training.data.base``), so the dataset can
report exactly what it did to the labels.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.errors import TridentError
from training.data import base as kinds
from training.data.base import LabelledDataset, read_image
from training.data.sample import Sample

Segmentation = Any  # a COCO polygon list or an RLE dict, already validated


@dataclass(frozen=True, eq=False)
class ImageEntry:
    """One image row and its kept annotations: boxes float32[N,4] xyxy (clipped), labels int64[N] 0-based."""

    image_id: int
    file_name: str
    height: int
    width: int
    boxes: np.ndarray
    labels: np.ndarray
    segmentations: tuple[Segmentation, ...]  # one per box when the file has masks, else empty
    row: dict = field(default_factory=dict)  # the raw image row (video_file, frame_id, sem_file, ...)


@dataclass(frozen=True, eq=False)
class CocoIndex:
    images: list[ImageEntry]
    category_ids: tuple[int, ...]  # COCO id of contiguous class k, sorted ascending
    class_names: tuple[str, ...]
    has_masks: bool  # any annotation carries a non-empty segmentation


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise TridentError(f"annotation file not found: {path}; pass the path of a COCO instances JSON")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TridentError(f"cannot read annotation file {path}: {exc}; it must be a COCO instances JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("categories"), list):
        raise TridentError(f"annotation file {path} has no 'images' and 'categories' lists; it must be a COCO instances JSON")
    return data


def _polygon_area(flat: list[float]) -> float:
    pts = np.asarray(flat, np.float64).reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _check_segmentation(seg: Any, h: int, w: int, problems: Counter[str]) -> Segmentation | None:
    """The usable part of a segmentation, or None (counted) when nothing usable is left."""
    if isinstance(seg, list):
        parts = []
        for part in seg:
            ok = isinstance(part, list) and len(part) >= 6 and len(part) % 2 == 0
            if ok and np.isfinite(np.asarray(part, np.float64)).all() and _polygon_area(part) > 0:
                parts.append([float(v) for v in part])
        if not parts:
            problems[kinds.BAD_POLYGON] += 1
            return None
        if len(parts) < len(seg):
            problems[kinds.BAD_POLYGON_PART] += len(seg) - len(parts)
        return parts
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if [int(v) for v in seg["size"]] != [h, w]:
            problems[kinds.BAD_RLE] += 1
            return None
        return seg
    problems[kinds.NO_SEGMENTATION] += 1
    return None


def load_coco_index(path: str | Path, problems: Counter[str]) -> CocoIndex:
    """Parse and validate a COCO instances JSON; dropped or clipped annotations are counted in ``problems``."""
    path = Path(path)
    data = _load_json(path)
    try:
        cats = sorted(data["categories"], key=lambda c: int(c["id"]))
        rows = {int(img["id"]): img for img in data["images"]}
        for img in rows.values():
            if int(img["height"]) <= 0 or int(img["width"]) <= 0:
                raise ValueError(f"image {img['id']} has size {img['width']}x{img['height']}")
    except (KeyError, TypeError, ValueError) as exc:
        raise TridentError(
            f"malformed COCO file {path}: {type(exc).__name__} {exc}; every category needs an integer 'id' "
            "and every image 'id', 'width' and 'height'"
        ) from None
    category_ids = tuple(int(c["id"]) for c in cats)
    to_label = {cid: k for k, cid in enumerate(category_ids)}
    anns = data.get("annotations") or []
    has_masks = any(a.get("segmentation") for a in anns)

    per_image: dict[int, list[tuple[list[float], int, Segmentation]]] = {i: [] for i in rows}
    for ann in anns:
        img = rows.get(int(ann.get("image_id", -1)))
        if img is None:
            problems[kinds.UNKNOWN_IMAGE] += 1
            continue
        if int(ann.get("category_id", -1)) not in to_label:
            problems[kinds.UNKNOWN_CATEGORY] += 1
            continue
        if ann.get("iscrowd", 0):
            problems[kinds.CROWD] += 1
            continue
        h, w = int(img["height"]), int(img["width"])
        bbox = ann.get("bbox")
        x, y, bw, bh = (float(v) for v in bbox) if isinstance(bbox, (list, tuple)) and len(bbox) == 4 else (0.0,) * 4
        if not (np.isfinite([x, y, bw, bh]).all() and bw > 0 and bh > 0):
            problems[kinds.BOX_ZERO_AREA] += 1
            continue
        seg = None
        if has_masks:
            seg = _check_segmentation(ann.get("segmentation"), h, w, problems)
            if seg is None:
                continue
        box = [max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h))]
        if box[2] <= box[0] or box[3] <= box[1]:
            problems[kinds.BOX_OUTSIDE] += 1
            continue
        if box != [x, y, x + bw, y + bh]:
            problems[kinds.BOX_CLIPPED] += 1
        per_image[int(img["id"])].append((box, to_label[int(ann["category_id"])], seg))

    images = []
    for image_id, img in rows.items():
        kept = per_image[image_id]
        images.append(
            ImageEntry(
                image_id=image_id,
                file_name=str(img.get("file_name", "")),
                height=int(img["height"]),
                width=int(img["width"]),
                boxes=np.array([k[0] for k in kept], np.float32).reshape(-1, 4),
                labels=np.array([k[1] for k in kept], np.int64),
                segmentations=tuple(k[2] for k in kept) if has_masks else (),
                row=img,
            )
        )
    names = tuple(str(c.get("name", c["id"])) for c in cats)
    return CocoIndex(images, category_ids, names, has_masks)


def decode_masks(entry: ImageEntry) -> np.ndarray:
    """uint8[N,H,W] masks of an entry's annotations (polygons, compressed or uncompressed RLE)."""
    from pycocotools import mask as mask_utils

    h, w = entry.height, entry.width
    masks = np.zeros((len(entry.segmentations), h, w), np.uint8)
    for i, seg in enumerate(entry.segmentations):
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            counts = seg["counts"]
            rle = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        masks[i] = mask_utils.decode(rle)
    return masks


class CocoInstances(LabelledDataset):
    """Boxes and instance masks from a COCO instances JSON; images from ``image_dir/file_name``.

    Category ids map to contiguous 0-based labels in ascending id order
    (``category_ids[k]`` is the COCO id of label ``k``). Polygons, compressed
    and uncompressed RLE are all decoded to masks. A file whose annotations have
    no segmentations gives ``masks=None`` (box-only labels); images whose file
    is missing are skipped and counted. No semantic labels (``semantic=None``).
    """

    def __init__(
        self,
        annotations: str | Path,
        image_dir: str | Path,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        super().__init__(transforms)
        self.annotation_file = Path(annotations)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise TridentError(f"image folder not found: {self.image_dir}; pass the folder the JSON's file_name entries are relative to")
        index = load_coco_index(self.annotation_file, self.problems)
        self.category_ids = index.category_ids
        self.thing_classes = index.class_names
        self.has_masks = index.has_masks
        self.entries = []
        for entry in index.images:
            if (self.image_dir / entry.file_name).is_file():
                self.entries.append(entry)
            else:
                self.problems[kinds.MISSING_IMAGE] += 1
        self.report_problems(self.annotation_file)

    def __len__(self) -> int:
        return len(self.entries)

    def load_sample(self, index: int) -> Sample:
        entry = self.entries[index]
        path = self.image_dir / entry.file_name
        image = read_image(path)
        if image.shape[:2] != (entry.height, entry.width):
            raise TridentError(
                f"image {path} is {image.shape[1]}x{image.shape[0]} but {self.annotation_file} says "
                f"{entry.width}x{entry.height}; fix the JSON's width/height or replace the image"
            )
        return Sample(
            image=image,
            image_id=entry.image_id,
            orig_size=(entry.height, entry.width),
            boxes=entry.boxes.copy(),
            labels=entry.labels.copy(),
            masks=decode_masks(entry) if self.has_masks else None,
        )
