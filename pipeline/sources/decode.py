"""One timed PyAV decode loop for files and network streams.

`container.decode(stream)` is `demux` then `packet.decode()`; it is spelled out
here so the clock can run around the decoder and the conversion to BGR only.
Reading a packet is left out on purpose: on a network camera that read waits
for the camera's next frame, and counting the frame interval as decode cost
would make the `decode` stage say nothing about the decoder.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np


def timed_frames(container: Any, stream: Any) -> Iterator[tuple[np.ndarray, float | None, float]]:
    """(BGR image, frame time in seconds or None, decode seconds) for each frame of `stream`.

    Decode seconds of one packet go to its first frame (the decoder returns
    them together); the time the consumer holds a frame is not counted.
    """
    for packet in container.demux(stream):
        started = time.perf_counter()
        for frame in packet.decode():
            image = frame.to_ndarray(format="bgr24")
            yield image, frame.time, time.perf_counter() - started
            started = time.perf_counter()
