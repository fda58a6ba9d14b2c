"""Streams added to and removed from a running Pipeline (what `trident serve` is built on): the loop
runs with no stream at all, a stream added from another thread is processed, a removed one has its
outputs flushed and closed while the others go on, and an unreachable camera fails alone."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.errors import TridentError
from pipeline.runtime import Pipeline
from pipeline.sinks.base import Sink
from pipeline.sources import SourceConfig
from tests.pipeline.fakes import FakeEngine
from tests.support.rtsp import free_port


class Recorder(Sink):
    """Counts what reaches it and whether it was closed (after everything handed to it)."""

    def __init__(self, sid: str, log: dict):
        self.name = f"rec:{sid}"
        self.sid, self.log = sid, log
        log.setdefault(sid, {"frames": [], "closed": 0})

    def write(self, result) -> None:
        self.log[self.sid]["frames"].append(result.frame.index)

    def close(self) -> None:
        self.log[self.sid]["closed"] += 1


def _serving(**kwargs):
    log: dict = {}
    pipe = Pipeline([], FakeEngine(), serve=True, sinks=lambda src: [Recorder(src.stream_id, log)], **kwargs)
    thread = threading.Thread(target=pipe.drain, daemon=True)
    thread.start()
    return pipe, thread, log


def _wait(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_serving_pipeline_waits_with_no_stream_and_processes_one_added_later(clips):
    pipe, thread, log = _serving()
    time.sleep(0.4)
    assert thread.is_alive(), "a serving pipeline with no stream must wait, not end"
    sid = pipe.add_source(SourceConfig(str(clips[1]), stream_id="late"))
    assert sid == "late"
    assert _wait(lambda: log.get("late", {}).get("closed") == 1), "the added file did not play to its end"
    assert log["late"]["frames"] == list(range(15))  # every frame of the 15-frame clip, in order
    assert thread.is_alive()  # the file ended; the service goes on
    pipe.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_removing_a_stream_closes_its_outputs_and_leaves_the_other_running(clips):
    pipe, thread, log = _serving()
    try:
        # `block` on a file plays at the engine's pace: slow it so both are still running when one goes
        keep = pipe.add_source(SourceConfig(str(clips[0]), stream_id="keep", max_frames=0))
        gone = pipe.add_source(SourceConfig(str(clips[0]), stream_id="gone"))
        pipe.engine.delay_s = 0.02
        assert _wait(lambda: len(log.get("gone", {}).get("frames", [])) >= 3)
        pipe.remove_source(gone)
        got = list(log["gone"]["frames"])
        assert log["gone"]["closed"] == 1  # closed before remove_source returned
        assert got == list(range(len(got)))  # what it had was written, in order, no gap
        assert "gone" not in pipe.sources and "gone" not in pipe.metrics.summary()["streams"]
        time.sleep(0.2)
        assert log["gone"]["frames"] == got  # nothing reaches it after the removal
        assert _wait(lambda: log["keep"]["closed"] == 1)
        assert log["keep"]["frames"] == list(range(24))  # the other stream lost nothing
        with pytest.raises(TridentError, match="no stream 'gone'"):
            pipe.remove_source("gone")
    finally:
        pipe.stop()
        thread.join(10)


def test_a_name_taken_is_made_unique_and_an_unusable_one_is_refused(clips):
    pipe, thread, _ = _serving()
    try:
        pipe.engine.delay_s = 0.05
        assert pipe.add_source(SourceConfig(str(clips[0]), stream_id="cam")) == "cam"
        assert pipe.add_source(SourceConfig(str(clips[0]), stream_id="CAM")) == "CAM-2"  # case-insensitive disks
        with pytest.raises(TridentError, match="no character usable in a file name"):
            pipe.add_source(SourceConfig(str(clips[0]), stream_id="///"))
    finally:
        pipe.stop()
        thread.join(10)


def test_an_unreachable_camera_fails_alone_and_can_be_removed_while_it_retries(clips):
    pipe, thread, log = _serving()
    try:
        pipe.engine.delay_s = 0.02
        dead = pipe.add_source(SourceConfig(f"rtsp://127.0.0.1:{free_port()}/none", stream_id="dead", open_timeout_s=1.0, reconnect_initial_s=0.2))
        live = pipe.add_source(SourceConfig(str(clips[0]), stream_id="live"))
        assert _wait(lambda: log.get("live", {}).get("closed") == 1)
        assert log["live"]["frames"] == list(range(24))
        assert _wait(lambda: pipe.sources[dead].stats.reconnects >= 1)
        assert pipe.metrics.summary()["streams"][dead]["state"] in ("connecting", "reconnecting")
        started = time.monotonic()
        pipe.remove_source(dead)  # inside its backoff: its own stop event ends the wait
        assert time.monotonic() - started < 5.0
        assert log[dead]["closed"] == 1 and log[dead]["frames"] == []
        assert _wait(lambda: not any(t.name == f"source-{dead}" for t in threading.enumerate()), 5.0)
    finally:
        pipe.stop()
        thread.join(10)
    assert live not in pipe.errors


def test_stop_closes_every_stream_and_refuses_more(clips):
    pipe, thread, log = _serving()
    pipe.engine.delay_s = 0.05
    pipe.add_source(SourceConfig(str(clips[0]), stream_id="a"))
    assert _wait(lambda: len(log.get("a", {}).get("frames", [])) >= 2)
    pipe.stop()
    thread.join(10)
    assert log["a"]["closed"] == 1
    with pytest.raises(TridentError, match="has stopped"):
        pipe.add_source(SourceConfig(str(clips[0]), stream_id="b"))


def test_a_kept_open_batcher_waits_when_empty_and_takes_queues_added_and_removed():
    from pipeline.batcher import BatchConfig, Batcher
    from pipeline.queues import BoundedQueue

    wakeup = threading.Event()
    batcher = Batcher({}, BatchConfig(max_batch=4, max_wait_ms=0), wakeup, keep_open=True)
    started = time.monotonic()
    assert batcher.next_batch() == ([], []) and batcher.active  # waits, then hands back: nothing to end
    assert time.monotonic() - started < 1.0
    a, b = BoundedQueue(8, wakeup=wakeup), BoundedQueue(8, wakeup=wakeup)
    batcher.add("a", a)
    batcher.add("b", b)
    for i in range(2):
        a.put(f"a{i}")
        b.put(f"b{i}")
    assert batcher.next_batch()[0] == ["a0", "b0", "a1", "b1"]  # round-robin over both
    b.put("b2")
    batcher.remove("b")
    a.put("a2")
    assert batcher.next_batch()[0] == ["a2"]  # b's queued frame is never read
    with pytest.raises(TridentError, match="already being batched"):
        batcher.add("a", a)
