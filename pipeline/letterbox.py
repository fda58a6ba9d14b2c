"""Letterbox geometry: how a frame is fitted into the network input, and how outputs map back.

The one convention of the project (scale = min(H/h, W/w), centred, integer
padding). The pixels themselves are resized by `engines.preprocess`, the one
letterbox implementation every path (training, evaluation, calibration,
deployment) calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import ContractError

__all__ = ["Letterbox"]


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

    @classmethod
    def fit(cls, orig_hw: tuple[int, int], input_hw: tuple[int, int]) -> "Letterbox":
        """The one letterbox convention of the project: centred, integer padding."""
        (h, w), (ih, iw) = orig_hw, input_hw
        if h <= 0 or w <= 0 or ih <= 0 or iw <= 0:
            raise ContractError(f"Letterbox sizes must be positive, got frame {orig_hw} into input {input_hw}")
        scale = min(ih / h, iw / w)
        nh, nw = int(round(h * scale)), int(round(w * scale))
        return cls(scale, float((iw - nw) // 2), float((ih - nh) // 2), (int(h), int(w)), (int(ih), int(iw)))

    @property
    def resized_hw(self) -> tuple[int, int]:
        return int(round(self.orig_hw[0] * self.scale)), int(round(self.orig_hw[1] * self.scale))

    def boxes_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy in input pixels -> xyxy in frame pixels, clipped to the frame."""
        out = np.asarray(boxes, np.float32).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        h, w = self.orig_hw
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
        return out

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy in frame pixels -> xyxy in input pixels."""
        out = np.asarray(boxes, np.float32).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale + self.pad_y
        return out
