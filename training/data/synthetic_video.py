"""The synthetic video dataset written by ``trident synth``: frames, boxes, masks and semantic labels."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.errors import TridentError
from training.data import base as kinds
from training.data.base import LabelledDataset, clean_semantic, image_size, read_image, read_label_png
from training.data.coco import ImageEntry, decode_masks, load_coco_index
from training.data.sample import Sample

_REGENERATE = "regenerate it with `trident synth --out DIR`"


def read_dataset_yaml(root: Path) -> dict:
    """The dataset's metadata; a missing or unreadable file is one clear error."""
    import yaml

    path = root / "dataset.yaml"
    if not path.is_file():
        raise TridentError(f"dataset description not found: {path}; point at a folder made by `trident synth --out DIR`")
    try:
        meta = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TridentError(f"cannot read {path}: {str(exc).splitlines()[0]}; {_REGENERATE}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("splits"), dict) or not meta.get("semantic"):
        raise TridentError(f"{path} lacks 'splits' or 'semantic'; it is not a Trident synthetic dataset, {_REGENERATE}")
    return meta


class SyntheticVideoDataset(LabelledDataset):
    """One split of a synthetic dataset: every annotated frame of its videos is a sample.

    Frames come from ``images/`` JPEGs when the dataset was made with
    ``--save-frames``, else from the MP4: each video is decoded once, on
    first use, and all its frames are kept in memory (``frames x H x W x 3``
    bytes per video, per DataLoader worker), since seeking H.264 per sample
    would decode a whole group of pictures each time. Boxes and masks come
    from the split's COCO JSON, semantic labels from the per-frame PNGs.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        super().__init__(transforms)
        self.root = Path(root)
        meta = read_dataset_yaml(self.root)
        splits = meta["splits"]
        if split not in splits:
            raise TridentError(f"split {split!r} not in {self.root / 'dataset.yaml'}; choose one of {sorted(splits)}")
        ann_path = self.root / splits[split]["annotations"]
        if not ann_path.is_file():
            raise TridentError(f"annotation file not found: {ann_path}; the dataset is incomplete, {_REGENERATE}")
        index = load_coco_index(ann_path, self.problems)
        self.annotation_file = ann_path
        self.split = split
        self.category_ids = index.category_ids
        self.thing_classes = tuple(meta.get("things") or index.class_names)
        self.semantic_classes = tuple(str(c) for c in meta["semantic"])
        self.has_masks = index.has_masks
        self.entries: list[ImageEntry] = []
        self._frame_files: list[Path | None] = []  # JPEG when present, else None (decode the video)
        self._semantic_files: list[Path | None] = []
        for entry in index.images:
            jpeg = self.root / "images" / entry.file_name
            video = self.root / str(entry.row.get("video_file", ""))
            if not jpeg.is_file() and not video.is_file():
                self.problems[kinds.MISSING_VIDEO] += 1
                continue
            self.entries.append(entry)
            self._frame_files.append(jpeg if jpeg.is_file() else None)
            self._semantic_files.append(self._check_semantic(entry))
        self._videos: dict[Path, list[np.ndarray]] = {}
        self.report_problems(self.root / "dataset.yaml")

    def _check_semantic(self, entry: ImageEntry) -> Path | None:
        sem = entry.row.get("sem_file")
        if not sem:
            return None
        path = self.root / str(sem)
        if not path.is_file():
            self.problems[kinds.MISSING_SEMANTIC] += 1
            return None
        if image_size(path) != (entry.height, entry.width):
            self.problems[kinds.SEMANTIC_SIZE] += 1
            return None
        return path

    def __len__(self) -> int:
        return len(self.entries)

    def _video_frames(self, video: Path) -> list[np.ndarray]:
        frames = self._videos.get(video)
        if frames is None:
            frames = decode_video(video)
            self._videos[video] = frames
        return frames

    def frame(self, index: int) -> np.ndarray:
        """The BGR frame of sample ``index`` at original size."""
        entry = self.entries[index]
        jpeg = self._frame_files[index]
        if jpeg is not None:
            image = read_image(jpeg)
        else:
            video = self.root / str(entry.row["video_file"])
            frames = self._video_frames(video)
            frame_id = int(entry.row.get("frame_id", -1))
            if not 0 <= frame_id < len(frames):
                raise TridentError(
                    f"{video} has {len(frames)} frames but {self.annotation_file} annotates frame {frame_id}; "
                    f"the video is truncated, {_REGENERATE}"
                )
            image = frames[frame_id]
        if image.shape[:2] != (entry.height, entry.width):
            raise TridentError(
                f"frame {entry.file_name} is {image.shape[1]}x{image.shape[0]} but {self.annotation_file} says "
                f"{entry.width}x{entry.height}; {_REGENERATE}"
            )
        return image

    def load_sample(self, index: int) -> Sample:
        entry = self.entries[index]
        semantic = None
        sem_path = self._semantic_files[index]
        if sem_path is not None:
            semantic = clean_semantic(read_label_png(sem_path), len(self.semantic_classes), None, self.problems)
        return Sample(
            image=self.frame(index),
            image_id=entry.image_id,
            orig_size=(entry.height, entry.width),
            boxes=entry.boxes.copy(),
            labels=entry.labels.copy(),
            masks=decode_masks(entry) if self.has_masks else None,
            semantic=semantic,
        )


def decode_video(path: Path) -> list[np.ndarray]:
    """Every frame of a video as BGR uint8 arrays, in presentation order."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threads: whole-video decode is the slow step on first use
            return [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError) as exc:
        raise TridentError(f"cannot decode video {path}: {exc}; the file is corrupt, {_REGENERATE}") from None
