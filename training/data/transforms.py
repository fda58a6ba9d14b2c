"""Geometric and photometric augmentations that keep image, boxes, masks and semantic labels aligned.

Each transform is a small callable ``Sample -> Sample``; the random ones take a
seeded ``np.random.Generator`` so a run is reproducible, and expose
``reseed(seed)`` so DataLoader workers can be given distinct streams
(see ``training.data.sample.seed_worker``).

Border fill: image 114 grey, instance masks 0, semantic 255 (ignore), so
padding never teaches a class. Transforms that can crop objects recompute
boxes from the transformed masks and drop instances that end up smaller than
``min_area`` pixels, with their masks and labels.
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

from engines.preprocess import letterbox_image, letterbox_labels, resize_labels
from pipeline.letterbox import Letterbox
from training.data.sample import IGNORE_INDEX, PAD_VALUE, Sample, refit_boxes

DEFAULT_INPUT_HW: tuple[int, int] = (384, 640)
_CV_MAX_CHANNELS = 128  # OpenCV's limit on channels per resize/warp call (512 in 4.x, 128 in 5.x)

Transform = Callable[[Sample], Sample]


def letterbox(
    image: np.ndarray, new_hw: tuple[int, int], pad_value: int = PAD_VALUE, nearest: bool = False
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to ``new_hw``; returns (image, scale, (pad_x, pad_y)).

    Works on [H,W] and [H,W,C] arrays. ``x_new = x * scale + pad_x``; undo boxes
    with :func:`unletterbox_boxes`. ``nearest`` is for label maps. The pixels
    come from ``engines.preprocess``, the letterbox deployment uses.
    """
    fit = Letterbox.fit(image.shape[:2], new_hw)
    out = letterbox_labels(image, fit, pad_value) if nearest else letterbox_image(image, fit, pad_value)
    return out, float(fit.scale), (int(fit.pad_x), int(fit.pad_y))


def unletterbox_boxes(
    boxes: np.ndarray, scale: float, pad: tuple[float, float], orig_hw: tuple[int, int] | None = None
) -> np.ndarray:
    """Map xyxy boxes from letterboxed input pixels back to original pixels (clipped to ``orig_hw`` if given)."""
    out = np.asarray(boxes, np.float32).copy()
    out[:, 0::2] = (out[:, 0::2] - pad[0]) / scale
    out[:, 1::2] = (out[:, 1::2] - pad[1]) / scale
    if orig_hw is not None:
        np.clip(out[:, 0::2], 0, orig_hw[1], out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, orig_hw[0], out=out[:, 1::2])
    return out


def unletterbox_masks(masks: np.ndarray, scale: float, pad: tuple[float, float], orig_hw: tuple[int, int]) -> np.ndarray:
    """Map masks [N,h,w] from letterboxed input pixels back to bool[N,H,W] in original pixels."""
    oh, ow = int(orig_hw[0]), int(orig_hw[1])
    x0, y0 = int(round(pad[0])), int(round(pad[1]))
    x1, y1 = x0 + max(1, int(round(ow * scale))), y0 + max(1, int(round(oh * scale)))
    cropped = np.ascontiguousarray(masks[:, y0:y1, x0:x1]).astype(np.uint8)
    return _map_planes(cropped, lambda p: resize_labels(p, (oh, ow)), (oh, ow)).astype(bool)


def _map_planes(planes: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], out_hw: tuple[int, int]) -> np.ndarray:
    """Apply an OpenCV image function to each plane of [N,H,W], in channel chunks OpenCV accepts."""
    n = len(planes)
    out = np.zeros((n, *out_hw), planes.dtype)
    for start in range(0, n, _CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(planes[start : start + _CV_MAX_CHANNELS].transpose(1, 2, 0))
        res = fn(chunk)
        out[start : start + chunk.shape[2]] = res.reshape(*out_hw, -1).transpose(2, 0, 1)
    return out


def _seeded(seed: int | np.random.SeedSequence) -> np.random.Generator:
    return np.random.default_rng(seed)


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def reseed(self, seed: int) -> None:
        """Give each random transform its own stream derived from ``seed``."""
        children = np.random.SeedSequence(seed).spawn(len(self.transforms))
        for t, child in zip(self.transforms, children):
            if hasattr(t, "reseed"):
                t.reseed(child)

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(type(t).__name__ for t in self.transforms) + ")"


class LetterboxTransform:
    """Fit a sample into ``input_hw`` as deployment does, and record scale/pad in the sample.

    Geometry is ``Letterbox.fit``, the image pixels are ``engines.preprocess.letterbox_image``
    (what the pipeline, the benchmarks and the INT8 calibrators feed the
    network), so validation numbers are deployment numbers; boxes map with
    ``Letterbox.boxes_to_input``, masks and semantic labels with the same
    geometry by nearest neighbour.
    """

    def __init__(self, input_hw: tuple[int, int] = DEFAULT_INPUT_HW, resize: str = "letterbox") -> None:
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        # "stretch" evaluates a model trained on plainly resized frames (an imported NanoDet) on the
        # pixels it is deployed on; `scale` then records the horizontal factor only, and
        # training.validate.letterbox_of rebuilds the stretch from orig_size
        self.resize = resize

    def __repr__(self) -> str:
        return f"LetterboxTransform({self.input_hw}, {self.resize})"

    def __call__(self, sample: Sample) -> Sample:
        fit = Letterbox.for_mode(self.resize, sample.hw, self.input_hw)
        image = letterbox_image(sample.image, fit)
        boxes = None if sample.boxes is None else fit.boxes_to_input(sample.boxes)
        masks = semantic = None
        if sample.masks is not None:
            masks = _map_planes(sample.masks, lambda p: letterbox_labels(p, fit, 0), self.input_hw)
        if sample.semantic is not None:
            semantic = letterbox_labels(sample.semantic, fit, IGNORE_INDEX)
        # compose with any earlier letterbox so scale/pad always map original pixels to these
        scale, pad = fit.scale, (fit.pad_x, fit.pad_y)
        new_pad = (sample.pad[0] * scale + pad[0], sample.pad[1] * scale + pad[1])
        out = sample.with_(image=image, boxes=boxes, masks=masks, semantic=semantic, scale=sample.scale * scale, pad=new_pad)
        # a thin object can vanish when shrunk; a box without mask pixels would train the mask head on nothing
        return refit_boxes(out, 0.0, from_masks=False)


class RandomAffine:
    """Random zoom about the image centre plus a random shift, output the same size as the input.

    ``scale`` is the (min, max) zoom factor; ``translate`` the largest shift as
    a fraction of width/height. Only zoom and shift, so scale/pad stay an exact
    mapping to original pixels and evaluation-style undo still works.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        scale: tuple[float, float] = (0.5, 1.5),
        translate: float = 0.1,
        min_area: float = 4.0,
        p: float = 1.0,
        boxes_from_masks: bool = True,
    ) -> None:
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"RandomAffine scale must be 0 < min <= max, got {scale}")
        self.rng, self.scale, self.translate, self.min_area, self.p = rng, scale, translate, min_area, p
        self.boxes_from_masks = boxes_from_masks

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        self.rng = _seeded(seed)

    def __call__(self, sample: Sample) -> Sample:
        if self.rng.random() >= self.p:
            return sample
        s = float(self.rng.uniform(*self.scale))
        h, w = sample.hw
        tx = float(self.rng.uniform(-self.translate, self.translate)) * w
        ty = float(self.rng.uniform(-self.translate, self.translate)) * h
        return affine(sample, s, (tx, ty), self.min_area, self.boxes_from_masks)


def affine(sample: Sample, s: float, shift: tuple[float, float], min_area: float = 4.0, boxes_from_masks: bool = True) -> Sample:
    """Zoom by ``s`` about the image centre and shift by ``shift`` pixels (deterministic core of RandomAffine);
    boxes are then refitted to their masks, or (``boxes_from_masks=False``) only clipped to the image."""
    h, w = sample.hw
    ox = (1 - s) * w / 2 + shift[0]
    oy = (1 - s) * h / 2 + shift[1]
    mat = np.array([[s, 0, ox], [0, s, oy]], np.float32)

    def warp(arr: np.ndarray, fill: int, nearest: bool) -> np.ndarray:
        flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        border = (fill,) * 4
        return cv2.warpAffine(arr, mat, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=border)

    image = warp(sample.image, PAD_VALUE, nearest=False)
    boxes = None
    if sample.boxes is not None:
        boxes = sample.boxes * np.float32(s) + np.array([ox, oy, ox, oy], np.float32)
    masks = None if sample.masks is None else _map_planes(sample.masks, lambda p: warp(p, 0, True), (h, w))
    semantic = None if sample.semantic is None else warp(sample.semantic, IGNORE_INDEX, nearest=True)
    out = sample.with_(
        image=image,
        boxes=boxes,
        masks=masks,
        semantic=semantic,
        scale=sample.scale * s,
        pad=(sample.pad[0] * s + ox, sample.pad[1] * s + oy),
    )
    return refit_boxes(out, min_area, from_masks=boxes_from_masks)


class HorizontalFlip:
    """Mirror left-right with probability ``p``. Afterwards scale/pad no longer undo the mapping (training only)."""

    def __init__(self, rng: np.random.Generator, p: float = 0.5) -> None:
        self.rng, self.p = rng, p

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        self.rng = _seeded(seed)

    def __call__(self, sample: Sample) -> Sample:
        if self.rng.random() >= self.p:
            return sample
        return hflip(sample)


def hflip(sample: Sample) -> Sample:
    """Mirror a sample left-right; box x-coordinates become ``W - x`` with left and right swapped."""
    w = sample.hw[1]
    boxes = None
    if sample.boxes is not None:
        boxes = sample.boxes.copy()
        boxes[:, 0] = w - sample.boxes[:, 2]
        boxes[:, 2] = w - sample.boxes[:, 0]
    return sample.with_(
        image=np.ascontiguousarray(sample.image[:, ::-1]),
        boxes=boxes,
        masks=None if sample.masks is None else np.ascontiguousarray(sample.masks[:, :, ::-1]),
        semantic=None if sample.semantic is None else np.ascontiguousarray(sample.semantic[:, ::-1]),
    )


class HSVJitter:
    """Random multiplicative gains on hue, saturation and value (image only; labels unchanged).

    Gains are drawn in [1 - g, 1 + g] per channel; lookup tables keep it cheap
    on large frames.
    """

    def __init__(self, rng: np.random.Generator, hue: float = 0.015, saturation: float = 0.7, value: float = 0.4) -> None:
        self.rng, self.gains = rng, np.array([hue, saturation, value], np.float64)

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        self.rng = _seeded(seed)

    def __call__(self, sample: Sample) -> Sample:
        if not self.gains.any():
            return sample
        g = 1.0 + self.rng.uniform(-1.0, 1.0, 3) * self.gains
        hue, sat, val = cv2.split(cv2.cvtColor(sample.image, cv2.COLOR_BGR2HSV))
        x = np.arange(256, dtype=np.float64)
        lut_h = np.mod(x * g[0], 180).astype(np.uint8)  # OpenCV's 8-bit hue wraps at 180
        lut_s = np.clip(x * g[1], 0, 255).astype(np.uint8)
        lut_v = np.clip(x * g[2], 0, 255).astype(np.uint8)
        hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
        return sample.with_(image=cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def eval_transforms(input_hw: tuple[int, int] = DEFAULT_INPUT_HW, resize: str = "letterbox") -> Compose:
    """Letterbox (or the model's `resize` mode) only: scale/pad in the target undo it exactly for evaluation."""
    return Compose([LetterboxTransform(input_hw, resize)])


def train_transforms(
    input_hw: tuple[int, int] = DEFAULT_INPUT_HW,
    seed: int = 0,
    scale: tuple[float, float] = (0.5, 1.5),
    translate: float = 0.1,
    flip_p: float = 0.5,
    min_area: float = 4.0,
    boxes_from_masks: bool = True,
) -> Compose:
    """Letterbox, random zoom/shift, HSV jitter and horizontal flip, each with its own seeded stream."""
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    return Compose(
        [
            LetterboxTransform(input_hw),
            RandomAffine(rngs[0], scale=scale, translate=translate, min_area=min_area, boxes_from_masks=boxes_from_masks),
            HSVJitter(rngs[1]),
            HorizontalFlip(rngs[2], p=flip_p),
        ]
    )
