"""Calibration images for INT8: picked from a folder and letterboxed exactly as the pipeline does.

Shared by the TensorRT entropy calibrator and the ONNX Runtime INT8 export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.errors import TridentError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def list_calibration_images(folder: Path, limit: int) -> list[Path]:
    """Up to `limit` image files under `folder` (recursively), evenly spread over the sorted list."""
    if not folder.is_dir():
        raise TridentError(f"--calib-data {folder} is not a directory; pass a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TridentError(f"--calib-data {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); `trident synth --save-frames` writes some")
    if len(files) > limit:
        # spread over the whole set: consecutive video frames are near duplicates
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def read_calibration_image(path: Path) -> np.ndarray:
    """BGR uint8 image; an unreadable file is an error naming it (never a silent None)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise TridentError(f"calibration image {path} cannot be read; remove it or replace it")
    return image


def calibration_batches(files: list[Path], input_hw: tuple[int, int], batch: int, resize: str = "letterbox") -> Iterator[np.ndarray]:
    """uint8 [B,3,H,W] BGR batches, letterboxed by the pipeline's own `letterbox_batch`; the last partial batch
    is dropped because the calibrator must hand TensorRT full batches."""
    from engines.preprocess import letterbox_batch

    for start in range(0, len(files) - batch + 1, batch):
        images = [read_calibration_image(path) for path in files[start : start + batch]]
        yield letterbox_batch(images, input_hw, resize=resize)[0]
