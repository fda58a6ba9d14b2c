"""A clip and a fake engine whose one box moves on a schedule, so zone events happen at known places.

The engine sees frames at their own size (the clip is as large as its input),
so its box is in frame pixels; the tracker follows it like any detection.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from engines.postprocess import RawOutputs
from engines.spec import ModelSpec

W, H = 96, 64
LINE_X = 48  # a vertical line across the middle: {"lines": [{"name": "door", "points": [[48, 0], [48, 64]]}]}
DOOR = {"lines": [{"name": "door", "points": [[LINE_X, 0], [LINE_X, H]]}]}


def oscillate(frame: int, period: int = 40) -> float:
    """Box centre x: swings 30 px either side of the line, crossing it twice per period."""
    return LINE_X + 30 * math.sin(2 * math.pi * frame / period)


def write_clip(path: Path, frames: int, fps: int = 30) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(frames):
            image = np.full((H, W, 3), 90, np.uint8)
            image[:, (i * 3) % W] = 200  # something changes per frame: each is encoded, none dropped
            image += rng.integers(0, 8, image.shape, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class MovingBoxEngine:
    def __init__(self, schedule: Callable[[int], float] = oscillate, delay_s: float = 0.0):
        self.spec = ModelSpec(input_hw=(H, W), class_names=("person",), output_names=("boxes", "scores"), batch_range=(1, 1, 8))
        self.schedule, self.delay_s = schedule, delay_s
        self.images = 0

    def infer(self, images) -> RawOutputs:
        b = images.shape[0]
        if self.delay_s:
            time.sleep(self.delay_s * b)
        boxes = np.zeros((b, 1, 4), np.float32)
        for i in range(b):
            x = self.schedule(self.images)
            self.images += 1
            boxes[i, 0] = (x - 8, 20, x + 8, 50)
        return RawOutputs(boxes=boxes, scores=np.full((b, 1, 1), 0.9, np.float32))

    def close(self) -> None:
        pass
