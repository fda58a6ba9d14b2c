"""Letterbox frames into the engine input: the one resize every path uses.

The pipeline, the benchmarks and the INT8 calibrator all call this module, so
a model sees the same pixels in calibration, benchmarking and production.
CPU path: OpenCV (INTER_LINEAR), GPU path: torch bilinear on CUDA, used when
the frames should go straight into a CUDA engine. Padding value 114 (mid
grey), the common choice for letterboxed detectors, and what training uses.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipeline.errors import TridentError

from pipeline.letterbox import Letterbox

PAD_VALUE = 114


def letterbox_image(image: np.ndarray, lb: Letterbox) -> np.ndarray:
    """uint8[H,W,3] frame -> uint8[ih,iw,3] input, resized by lb.scale and padded."""
    import cv2

    ih, iw = lb.input_hw
    nh, nw = lb.resized_hw
    out = np.full((ih, iw, 3), PAD_VALUE, np.uint8)
    resized = image if (nh, nw) == image.shape[:2] else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    y, x = int(lb.pad_y), int(lb.pad_x)
    out[y : y + nh, x : x + nw] = resized
    return out


def letterbox_batch(images: Sequence[np.ndarray], input_hw: tuple[int, int], device: str = "cpu") -> tuple[Any, list[Letterbox]]:
    """Frames (any sizes) -> (uint8 [B,3,ih,iw] batch, one Letterbox per frame).

    device "cpu" returns a numpy array; "cuda" (or "cuda:N") returns a torch CUDA
    tensor, resized on the GPU so only the small uint8 frames cross the bus.
    """
    if not images:
        raise TridentError("letterbox_batch got no frames")
    lbs = [Letterbox.fit(im.shape[:2], input_hw) for im in images]
    if device == "cpu":
        batch = np.empty((len(images), 3, *input_hw), np.uint8)
        for i, (im, lb) in enumerate(zip(images, lbs)):
            batch[i] = letterbox_image(im, lb).transpose(2, 0, 1)
        return batch, lbs
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        raise TridentError(f"preprocess device '{device}' asked for but CUDA is not available; use device 'cpu'")
    batch = torch.full((len(images), 3, *input_hw), PAD_VALUE, dtype=torch.uint8, device=device)
    for i, (im, lb) in enumerate(zip(images, lbs)):
        t = torch.from_numpy(np.ascontiguousarray(im)).to(device, non_blocking=True).permute(2, 0, 1)[None].float()
        nh, nw = lb.resized_hw
        resized = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
        y, x = int(lb.pad_y), int(lb.pad_x)
        batch[i, :, y : y + nh, x : x + nw] = resized[0].round().clamp(0, 255).to(torch.uint8)
    return batch, lbs
