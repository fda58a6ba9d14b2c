"""Letterbox frames into the engine input: the one resize every path uses.

Training, evaluation, the pipeline, the benchmarks and the INT8 calibrators
all call this module, so a model sees the same pixels in training,
validation, calibration, benchmarking and production. Geometry is
`pipeline.letterbox.Letterbox.fit`; the pixels are resized here only. One
interpolation: bilinear (OpenCV INTER_LINEAR on the CPU, torch bilinear
without antialiasing on CUDA, which agree to one grey level), also when
shrinking, because the GPU path has no INTER_AREA and a model validated on
other pixels than it is deployed on reports numbers nobody gets. Label maps
(instance masks, semantic classes) follow the same geometry with nearest
neighbour, so they never invent a class. Padding value 114 (mid grey), the
common choice for letterboxed detectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.errors import TridentError

from pipeline.letterbox import RESIZE_MODES, Letterbox

if TYPE_CHECKING:
    from engines.spec import ModelSpec

PAD_VALUE = 114
STRIDE = 32  # the network's largest stride: a rect input is padded up to a multiple of it


def _ceil_to_stride(n: int) -> int:
    return -(-max(1, n) // STRIDE) * STRIDE


def batch_input_hw(frame_hws: Sequence[tuple[int, int]], spec: "ModelSpec") -> tuple[int, int]:
    """The network input (height, width) for one batch of frames of these (height, width) sizes.

    "Rect" inference: a model whose spec says `dynamic_hw` (and that is
    letterboxed) gets each frame at the nominal letterbox scale,
    min(ih/h, iw/w), padded only up to the next multiple of 32 instead of to
    input_hw, so a 768x576 camera runs at 384x512 instead of 384x640 (a
    fifth of that inference was grey padding). One tensor per batch: the
    element-wise maximum over its frames, never above input_hw. Pass the
    result to `letterbox_batch`; its Letterbox records carry it, so the
    post-process undo stays exact. (Where round(w * scale) is itself a
    multiple of 32 and was rounded down, `Letterbox.fit` into that size
    scales by a hair less, under half a pixel across the frame, and records
    it.) A fixed-size model (TensorRT, Triton, foreign imports, older files)
    or a "stretch" model gets input_hw.
    """
    nominal = (int(spec.input_hw[0]), int(spec.input_hw[1]))
    if not spec.dynamic_hw or spec.resize != "letterbox":
        return nominal
    if not frame_hws:
        raise TridentError("batch_input_hw got no frames")
    ih, iw = nominal
    h_out = w_out = 0
    for h, w in frame_hws:
        if h <= 0 or w <= 0:
            raise TridentError(f"frame size must be positive, got {h}x{w}")
        scale = min(ih / h, iw / w)  # Letterbox.fit's scale at the nominal size
        h_out = max(h_out, min(ih, _ceil_to_stride(int(round(h * scale)))))
        w_out = max(w_out, min(iw, _ceil_to_stride(int(round(w * scale)))))
    return h_out, w_out


def _resized_hw(lb: Letterbox) -> tuple[int, int]:
    # a frame thinner than 1/scale pixels would round to 0 rows; keep one
    nh, nw = lb.resized_hw
    return max(1, nh), max(1, nw)


def resize_image(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """uint8[H,W,C] (or [H,W]) -> the same resized to hw with the project's one interpolation (bilinear)."""
    import cv2

    if tuple(hw) == image.shape[:2]:
        return image
    out = cv2.resize(image, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_LINEAR)
    return out[:, :, None] if image.ndim == 3 and out.ndim == 2 else out  # OpenCV drops a single channel axis


def _place(resized: np.ndarray, lb: Letterbox, fill: int) -> np.ndarray:
    """Put a resized_hw array at (pad_x, pad_y) inside input_hw, the rest `fill`."""
    ih, iw = lb.input_hw
    nh, nw = resized.shape[:2]
    out = np.full((ih, iw, *resized.shape[2:]), fill, resized.dtype)
    y, x = int(lb.pad_y), int(lb.pad_x)
    out[y : y + nh, x : x + nw] = resized
    return out


def letterbox_image(image: np.ndarray, lb: Letterbox, fill: int = PAD_VALUE) -> np.ndarray:
    """uint8[H,W,3] frame -> uint8[ih,iw,3] input, resized by lb.scale (bilinear) and padded with `fill`."""
    return _place(resize_image(image, _resized_hw(lb)), lb, fill)


def resize_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Label map [H,W] or label planes [H,W,C] (C <= 128) resized to hw by nearest neighbour on pixel centres.

    INTER_NEAREST_EXACT samples where the bilinear image is centred, so a label
    edge lands on the image's edge; plain INTER_NEAREST samples pixel corners
    and shifts labels right/down by up to one source pixel when enlarging.
    """
    import cv2

    if tuple(hw) == labels.shape[:2]:
        return labels
    out = cv2.resize(labels, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_NEAREST_EXACT)
    return out[:, :, None] if labels.ndim == 3 and out.ndim == 2 else out


def letterbox_labels(labels: np.ndarray, lb: Letterbox, fill: int) -> np.ndarray:
    """Label map [H,W] or label planes [H,W,C] -> [ih,iw(,C)] on the image's geometry, nearest neighbour.

    Training uses it for instance masks (fill 0) and semantic labels (fill
    255, ignore), so labels land exactly where `letterbox_image` puts the pixels.
    """
    return _place(resize_labels(labels, _resized_hw(lb)), lb, fill)


def letterbox_batch(
    images: Sequence[np.ndarray], input_hw: tuple[int, int], device: str = "cpu", resize: str = "letterbox"
) -> tuple[Any, list[Letterbox]]:
    """Frames (any sizes) -> (uint8 [B,3,ih,iw] batch, one Letterbox per frame).

    device "cpu" returns a numpy array; "cuda" (or "cuda:N") returns a torch CUDA
    tensor, resized on the GPU so only the small uint8 frames cross the bus.
    `resize` is the model's ModelSpec.resize: "letterbox" (aspect kept, padded)
    or "stretch" (each axis resized to the input, for models trained so).
    """
    if not images:
        raise TridentError("letterbox_batch got no frames")
    if resize not in RESIZE_MODES:
        raise TridentError(f"unknown resize mode '{resize}'; expected one of {', '.join(RESIZE_MODES)}")
    lbs = [Letterbox.for_mode(resize, im.shape[:2], input_hw) for im in images]
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
        nh, nw = _resized_hw(lb)
        resized = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
        y, x = int(lb.pad_y), int(lb.pad_x)
        batch[i, :, y : y + nh, x : x + nw] = resized[0].round().clamp(0, 255).to(torch.uint8)
    return batch, lbs
