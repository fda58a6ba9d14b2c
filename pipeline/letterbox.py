"""Letterbox geometry: how a frame is fitted into the network input, and how outputs map back.

The one convention of the project (scale = min(H/h, W/w), centred, integer
padding). The pixels themselves are resized by `engines.preprocess`, the one
letterbox implementation every path (training, evaluation, calibration,
deployment) calls. A model trained on plainly resized frames (NanoDet: no
letterbox) declares `resize: stretch` in its ModelSpec and gets
`Letterbox.stretch`: the same record with its own vertical scale and no
padding, so every consumer maps boxes back the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import ContractError

__all__ = ["Letterbox", "RESIZE_MODES"]

# How a frame is fitted into the network input: `letterbox` keeps the aspect (Trident's own models,
# Ultralytics YOLO), `stretch` resizes each axis on its own (models trained without letterbox, NanoDet).
RESIZE_MODES = ("letterbox", "stretch")


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the network input, so outputs can be mapped back.

    The frame (orig_hw) was resized by `scale` (same on both axes, aspect kept)
    and placed at (pad_x, pad_y) inside an input of input_hw; the rest is padding.
    """

    scale: float
    pad_x: float
    pad_y: float
    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]
    scale_y: float | None = None  # vertical scale when it is not `scale` (a stretch); None: the same

    @classmethod
    def fit(cls, orig_hw: tuple[int, int], input_hw: tuple[int, int]) -> "Letterbox":
        """The one letterbox convention of the project: centred, integer padding."""
        (h, w), (ih, iw) = orig_hw, input_hw
        if h <= 0 or w <= 0 or ih <= 0 or iw <= 0:
            raise ContractError(f"Letterbox sizes must be positive, got frame {orig_hw} into input {input_hw}")
        scale = min(ih / h, iw / w)
        nh, nw = int(round(h * scale)), int(round(w * scale))
        return cls(scale, float((iw - nw) // 2), float((ih - nh) // 2), (int(h), int(w)), (int(ih), int(iw)))

    @classmethod
    def stretch(cls, orig_hw: tuple[int, int], input_hw: tuple[int, int]) -> "Letterbox":
        """Plain resize of each axis to the input, no padding: for models trained on stretched frames."""
        (h, w), (ih, iw) = orig_hw, input_hw
        if h <= 0 or w <= 0 or ih <= 0 or iw <= 0:
            raise ContractError(f"Letterbox sizes must be positive, got frame {orig_hw} into input {input_hw}")
        return cls(iw / w, 0.0, 0.0, (int(h), int(w)), (int(ih), int(iw)), ih / h)

    @classmethod
    def for_mode(cls, mode: str, orig_hw: tuple[int, int], input_hw: tuple[int, int]) -> "Letterbox":
        """The record of resize mode `mode` (one of RESIZE_MODES, a ModelSpec's `resize`)."""
        if mode == "letterbox":
            return cls.fit(orig_hw, input_hw)
        if mode == "stretch":
            return cls.stretch(orig_hw, input_hw)
        raise ContractError(f"unknown resize mode '{mode}'; expected one of {', '.join(RESIZE_MODES)}")

    @property
    def sy(self) -> float:
        """Vertical scale (the same as `scale` unless stretched)."""
        return self.scale if self.scale_y is None else self.scale_y

    @property
    def resized_hw(self) -> tuple[int, int]:
        return int(round(self.orig_hw[0] * self.sy)), int(round(self.orig_hw[1] * self.scale))

    def boxes_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy in input pixels -> xyxy in frame pixels, clipped to the frame."""
        out = np.asarray(boxes, np.float32).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.sy
        h, w = self.orig_hw
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
        return out

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy in frame pixels -> xyxy in input pixels."""
        out = np.asarray(boxes, np.float32).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.sy + self.pad_y
        return out
