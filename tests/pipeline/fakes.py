"""A fake engine for pipeline tests: fixed detections, optional delay, no model."""

from __future__ import annotations

import time

import numpy as np

from engines.postprocess import RawOutputs
from engines.spec import ModelSpec


class FakeEngine:
    """One confident box per image in the middle of the input; `delay_s` per call simulates a slow model."""

    def __init__(self, input_hw=(64, 96), delay_s: float = 0.0, max_batch: int = 8):
        self.spec = ModelSpec(input_hw=input_hw, class_names=("thing",), output_names=("boxes", "scores"), batch_range=(1, 1, max_batch))
        self.delay_s = delay_s
        self.calls = 0
        self.batch_sizes: list[int] = []

    def infer(self, images) -> RawOutputs:
        self.calls += 1
        b = images.shape[0]
        self.batch_sizes.append(b)
        if self.delay_s:
            time.sleep(self.delay_s)
        h, w = self.spec.input_hw
        boxes = np.tile(np.array([[w * 0.25, h * 0.25, w * 0.75, h * 0.75]], np.float32), (b, 1, 1))
        scores = np.full((b, 1, 1), 0.9, np.float32)
        return RawOutputs(boxes=boxes, scores=scores)

    def close(self) -> None:
        pass
