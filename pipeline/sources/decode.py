"""One timed PyAV decode loop for files and network streams.

`container.decode(stream)` is `demux` then `packet.decode()`; it is spelled out
here so the clock can run around the decoder and the conversion to BGR only.
Reading a packet is left out on purpose: on a network camera that read waits
for the camera's next frame, and counting the frame interval as decode cost
would make the `decode` stage say nothing about the decoder.

Given a `DecodeHealth`, the loop also keeps the evidence of damage: a packet
the decoder rejects is counted and skipped (the next keyframe decodes again)
instead of ending the stream, and corrupt flags on packets and frames are
counted. Only a long run of rejected packets with no frame between them ends
it, by raising the decoder's error: that is a stream nothing can be read from.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Iterator

import numpy as np

from pipeline.sources.integrity import DecodeHealth

# rejected packets in a row, no frame between them, before the stream counts as undecodable
# (a damaged stretch of a file spans a few dozen packets; a wrong codec, every one)
MAX_REJECTED_IN_A_ROW = 300

def to_bgr(frame: Any) -> np.ndarray:
    """A decoded PyAV frame as a BGR uint8 [H,W,3] array, converted on the calling thread.

    PyAV 17 made libswscale's conversion multithreaded by default: every
    `to_ndarray` builds a converter with its own thread pool, so each frame
    started and stopped two threads (strace: 401 clones for 200 frames). One
    thread is the right count where each stream already has its own decode
    thread: on the 2-core AMD EPYC 0.36-0.40 -> 0.14-0.17 ms of CPU a 768x576
    frame, 0.29 -> 0.08 ms at 640x384, pixels identical. PyAV before 17 has
    no `threads` argument and converts on one thread anyway.
    """
    return frame.to_ndarray(format="bgr24", **_one_thread())


@functools.cache
def _one_thread() -> dict[str, int]:
    import av

    return {"threads": 1} if int(av.__version__.split(".")[0]) >= 17 else {}


def timed_frames(container: Any, stream: Any, health: DecodeHealth | None = None) -> Iterator[tuple[np.ndarray, float | None, float]]:
    """(BGR image, frame time in seconds or None, decode seconds) for each frame of `stream`.

    Decode seconds of one packet go to its first frame (the decoder returns
    them together); the time the consumer holds a frame is not counted.
    """
    import av

    in_a_row = 0
    for packet in container.demux(stream):
        started = time.perf_counter()
        if health is not None:
            if packet.is_corrupt:
                health.corrupt_packets += 1
                health.trouble()
            if packet.is_discard:
                health.discarded_packets += 1
            if packet.size:  # the last, empty one only flushes the decoder
                health.packets += 1
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            if health is None:
                raise
            in_a_row += 1
            health.rejected_packets += 1
            health.trouble(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            if in_a_row >= MAX_REJECTED_IN_A_ROW:
                raise
            continue
        for frame in frames:
            in_a_row = 0
            if health is not None and frame.is_corrupt:
                health.corrupt_frames += 1
                health.trouble()
            image = to_bgr(frame)
            yield image, frame.time, time.perf_counter() - started
            started = time.perf_counter()
