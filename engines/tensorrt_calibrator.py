"""INT8 entropy calibrator for TensorRT 10, fed by letterboxed dataset images.

The class is made inside a function because it must subclass a TensorRT type
and TensorRT is optional: importing this module does not import tensorrt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np


def make_entropy_calibrator(batches: Iterator[np.ndarray], batch_size: int, cache_path: Path):
    import tensorrt as trt
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self._batches = batches
            self._device_batch: torch.Tensor | None = None  # kept alive while TensorRT reads it

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None  # tells TensorRT calibration data is exhausted
            self._device_batch = torch.from_numpy(batch).cuda().contiguous()
            return [int(self._device_batch.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.exists() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_bytes(bytes(cache))

    return EntropyCalibrator()
