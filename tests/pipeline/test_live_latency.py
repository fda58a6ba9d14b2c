"""Live latency bounds: the batcher never holds a frame past max_wait_ms from its capture; live queues hold 2 frames."""

from __future__ import annotations

import threading
import time

import numpy as np

from pipeline.batcher import BatchConfig, Batcher
from pipeline.queues import BoundedQueue
from pipeline.sources import SourceConfig, make_source
from pipeline.sources.base import DecodedFrame


def _frame(age_s: float) -> DecodedFrame:
    return DecodedFrame("cam", 0, 0.0, np.zeros((8, 8, 3), np.uint8), time.time() - age_s)


def _batch_after(age_s: float, max_wait_ms: float) -> tuple[int, float]:
    wakeup = threading.Event()
    q = BoundedQueue(2, "drop_oldest", wakeup=wakeup)
    other = BoundedQueue(2, "drop_oldest", wakeup=wakeup)  # a second camera with nothing yet
    q.put(_frame(age_s))
    batcher = Batcher({"cam": q, "cam2": other}, BatchConfig(max_batch=4, max_wait_ms=max_wait_ms), wakeup)
    started = time.monotonic()
    frames, _ = batcher.next_batch()
    return len(frames), time.monotonic() - started


def test_a_frame_that_already_waited_its_max_wait_in_the_queue_is_not_held_again():
    n, held = _batch_after(age_s=1.0, max_wait_ms=2000)
    assert n == 1 and held < 1.5  # counted from capture: at most the 1 s left, not another 2 s


def test_a_fresh_frame_waits_for_company_at_most_max_wait():
    n, held = _batch_after(age_s=0.0, max_wait_ms=300)
    assert n == 1 and 0.2 <= held < 2.0


def test_live_sources_queue_two_frames_and_drop_the_oldest():
    stop = threading.Event()
    src = make_source(SourceConfig("rtsp://127.0.0.1:9/stream"), stop, stream_id="cam")
    assert (src.queue.maxsize, src.queue.policy) == (2, "drop_oldest")
    for i in range(5):
        src.queue.put(i)
    assert len(src.queue) == 2 and src.queue.dropped == 3 and src.queue.get(timeout=0) == 3
    files = make_source(SourceConfig("clip.mp4"), stop, stream_id="f")
    assert (files.queue.maxsize, files.queue.policy) == (16, "block")
