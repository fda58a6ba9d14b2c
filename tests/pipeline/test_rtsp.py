"""A real RTSP server (GStreamer) on 127.0.0.1: read, reconnect after a restart, watchdog on a frozen
server, and a clear error for an unreachable camera. Passwords never reach errors or logs."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from pipeline.errors import TridentError
from pipeline.runtime import Pipeline
from pipeline.sources import SourceConfig, SourceState, make_source
from tests.pipeline.fakes import FakeEngine
from tests.support.rtsp import RtspServer, free_port, rtsp_available
from trackers.config import TrackerConfig

pytestmark = [
    pytest.mark.rtsp,
    pytest.mark.skipif(not rtsp_available(), reason="GStreamer RTSP server not installed (see .ci/run for the Debian packages)"),
]


def _with_password(url: str) -> str:
    return url.replace("rtsp://", "rtsp://admin:s3cret@")


def test_pipeline_reads_a_live_rtsp_stream():
    with RtspServer() as server:
        # block: count every frame (a live default of drop_oldest may drop the connect-time burst)
        cfg = SourceConfig(_with_password(server.url), max_frames=20, open_timeout_s=5, read_timeout_s=3, queue_policy="block")
        pipe = Pipeline([cfg], FakeEngine())
        results = list(pipe)
    assert len(results) == 20
    pts = [r.frame.pts for r in results]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert results[0].frame.image.shape == (240, 320, 3)
    assert not pipe.errors


def test_a_camera_connects_with_a_short_stream_analysis_and_few_stale_frames():
    """What FFmpeg reads while it analyses a stream on connect comes out at once, stale. With its
    default analysis (up to 5 s, and 20 frames to estimate the rate) a 10 fps camera gave ~28
    frames in one burst, 2.9 s after connecting; no rate probe and `probe_s` (0.5 s) bound it."""

    def stale_at_connect(probe_s: float) -> int:
        cfg = SourceConfig(server.url, max_frames=30, open_timeout_s=5, read_timeout_s=3, queue_policy="block", probe_s=probe_s)
        results = list(Pipeline([cfg], FakeEngine()))
        assert len(results) == 30 and results[0].frame.image.shape == (240, 320, 3)
        first = results[0].frame.wall_time
        return sum(r.frame.wall_time - first < 0.05 for r in results)  # frames 100 ms apart, unless buffered

    with RtspServer(fps=10) as server:
        assert stale_at_connect(0.5) <= 10  # 28 with FFmpeg's defaults (checked by removing the options)


def test_probe_s_out_of_range_is_refused_with_the_fix():
    with pytest.raises(TridentError, match=r"probe_s must be in \(0, 30\] seconds"):
        SourceConfig("rtsp://127.0.0.1:1/x", probe_s=0)


def test_server_restart_reconnects_and_the_tracker_keeps_the_identity(caplog):
    caplog.set_level(logging.INFO)
    server = RtspServer().start()
    cfg = SourceConfig(_with_password(server.url), open_timeout_s=3, read_timeout_s=2, reconnect_initial_s=0.2, reconnect_max_s=1.0)
    pipe = Pipeline([cfg], FakeEngine(), tracker=TrackerConfig(lost_buffer_s=30.0))
    gen = iter(pipe)
    results, killed, deadline = [], False, time.monotonic() + 45
    try:
        for result in gen:
            results.append(result)
            if len(results) == 15 and not killed:
                server.kill()
                killed = True
                threading.Timer(1.0, server.start).start()  # same port: the camera comes back
            jumps = [i for i in range(1, len(results)) if results[i].frame.pts - results[i - 1].frame.pts > 0.9]
            if (jumps and len(results) - jumps[0] >= 10) or time.monotonic() > deadline:
                break
    finally:
        gen.close()
        server.kill()
    assert jumps, "no frame arrived after the server came back"
    before, after = results[: jumps[0]], results[jumps[0] :]
    source = next(iter(pipe.sources.values()))
    assert source.stats.reconnects >= 1 and source.stats.gaps and source.stats.gaps[0] > 0.5
    gap = after[1].frame.pts - before[-1].frame.pts
    assert gap > 0.9  # the outage is a real jump in time, no invented frames
    assert [r.tracks.track_ids.tolist() for r in (before[-1], after[-1])] == [[1], [1]]  # same tracker, same identity
    assert "s3cret" not in caplog.text


def test_frozen_server_is_noticed_by_the_watchdog_and_nothing_hangs():
    with RtspServer() as server:
        cfg = SourceConfig(_with_password(server.url), open_timeout_s=1.5, read_timeout_s=1.5, reconnect_initial_s=0.2, max_reconnects=1)
        pipe = Pipeline([cfg], FakeEngine())
        source = next(iter(pipe.sources.values()))
        frozen_at = None
        start = time.monotonic()
        for n, _ in enumerate(pipe, 1):
            if n == 10:
                server.freeze()
                frozen_at = time.monotonic()
        ended = time.monotonic()
    assert frozen_at is not None
    assert source.stall_detected_at is not None and source.stats.stalls >= 1
    # flagged once, within the read timeout of the last frame (socket buffers still deliver frames
    # sent just before the freeze, so the clock starts at the last frame, not at SIGSTOP)
    assert source.stats.stalls >= 1  # the reopened, still frozen stream may stall again
    flagged, last_frame = source.stats.stall_log[0]
    assert 1.5 <= flagged - last_frame < 1.5 + 0.6
    assert flagged - frozen_at < 1.5 + 10.0
    assert ended - start < 30  # the budget ran out and the pipeline ended on its own
    error = pipe.errors[source.stream_id]
    assert "unreachable after 2 attempt(s)" in error and "admin:***@" in error and "s3cret" not in error
    assert source.state == SourceState.CLOSED


def test_unreachable_camera_fails_after_the_retry_budget_with_a_redacted_error():
    url = f"rtsp://admin:s3cret@127.0.0.1:{free_port()}/stream"  # nothing listens there
    stop = threading.Event()
    src = make_source(SourceConfig(url, open_timeout_s=1, reconnect_initial_s=0.1, reconnect_max_s=0.2, max_reconnects=2), stop)
    t0 = time.monotonic()
    src.start()
    src.join(20)
    assert not src.is_alive() and time.monotonic() - t0 < 15
    assert src.error.startswith("camera rtsp://admin:***@127.0.0.1") and "unreachable after 3 attempt(s)" in src.error
    assert "s3cret" not in src.error and src.stats.frames == 0
