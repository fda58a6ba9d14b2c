"""Bounded queues with named policies, and the cross-stream batcher."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pipeline.batcher import BatchConfig, Batcher
from pipeline.queues import BoundedQueue, Closed
from pipeline.sources.base import EndOfStream
from pipeline.contracts import Frame
from pipeline.errors import TridentError


def _frame(sid: str, i: int) -> Frame:
    return Frame(sid, i, i / 30, np.zeros((4, 4, 3), np.uint8), time.time())


def test_drop_oldest_keeps_the_newest_items_and_counts_drops():
    q = BoundedQueue(3, "drop_oldest")
    for i in range(10):
        assert q.put(i)
    assert [q.get(timeout=0) for _ in range(3)] == [7, 8, 9]
    assert q.dropped == 7 and q.max_depth == 3


def test_block_policy_loses_nothing_and_times_out_when_full():
    q = BoundedQueue(2, "block")
    q.put(1)
    q.put(2)
    with pytest.raises(TimeoutError):
        q.put(3, timeout=0.2)
    got = []
    consumer = threading.Thread(target=lambda: got.extend(q.get(timeout=2) for _ in range(3)))
    consumer.start()
    q.put(3, timeout=2)
    consumer.join(2)
    assert got == [1, 2, 3] and q.dropped == 0


def test_a_blocked_producer_sees_stop_and_close():
    q = BoundedQueue(1, "block")
    q.put(0)
    stop = threading.Event()
    result = []
    t = threading.Thread(target=lambda: result.append(q.put(1, stop=stop)))
    t.start()
    time.sleep(0.15)
    stop.set()
    t.join(1)
    assert result == [False] and not t.is_alive()
    q.close()
    assert q.get(timeout=0) == 0
    with pytest.raises(Closed):
        q.get(timeout=0)
    assert q.put(5) is False


def test_bad_queue_settings_are_errors():
    with pytest.raises(TridentError, match="unknown queue policy 'drop_newest'"):
        BoundedQueue(2, "drop_newest")
    with pytest.raises(TridentError, match="queue size must be >= 1"):
        BoundedQueue(0)


def test_batcher_fills_batches_across_streams_in_per_stream_order():
    wake = threading.Event()
    qa, qb = BoundedQueue(16, wakeup=wake), BoundedQueue(16, wakeup=wake)
    for i in range(5):
        qa.put(_frame("a", i))
    for i in range(3):
        qb.put(_frame("b", i))
    qa.put(EndOfStream("a"))
    qb.put(EndOfStream("b", error="boom"))
    batcher = Batcher({"a": qa, "b": qb}, BatchConfig(max_batch=3, max_wait_ms=1), wake)
    seen, ended, sizes = {"a": [], "b": []}, [], []
    while batcher.active:
        frames, eos = batcher.next_batch()
        sizes.append(len(frames))
        ended += eos
        for f in frames:
            seen[f.stream_id].append(f.index)
    assert seen == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2]}
    assert max(sizes) == 3 and sum(sizes) == 8
    assert sorted((e.stream_id, e.error) for e in ended) == [("a", None), ("b", "boom")]


def test_batcher_closes_a_partial_batch_after_max_wait():
    wake = threading.Event()
    q = BoundedQueue(4, wakeup=wake)
    q.put(_frame("a", 0))
    batcher = Batcher({"a": q}, BatchConfig(max_batch=4, max_wait_ms=50), wake)
    t0 = time.monotonic()
    frames, _ = batcher.next_batch()
    waited = time.monotonic() - t0
    assert len(frames) == 1 and 0.04 <= waited < 1.0


def test_batch_config_rejects_nonsense():
    with pytest.raises(TridentError, match=r"max_batch must be >= 1 \(or 0 = auto\), got -1"):
        BatchConfig(max_batch=-1)
