"""Webhooks against a real HTTP receiver on 127.0.0.1 that is slow and fails: the pipeline never waits for it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    """Answers each POST after `delay_s`; `fail(n)` says whether the n-th request (from 1) gets a 503."""

    def __init__(self, delay_s: float, fail=lambda n: False):
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner._lock:
                    owner.requests.append(body)
                    n = len(owner.requests)
                time.sleep(delay_s)
                self.send_response(503 if fail(n) else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/trident"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _run(clip, events, delivery, frames_out: list):
    import pipeline
    from pipeline.analytics import zones_from_data
    from pipeline.analytics.stage import AnalyticsStage
    from pipeline.sources import SourceConfig
    from tests.pipeline.moving_box import DOOR, MovingBoxEngine

    stage = AnalyticsStage.build(zones_from_data(DOOR), events, ("person",), delivery=delivery)
    published = []
    start = time.perf_counter()
    for result in pipeline.stream(SourceConfig(uri=str(clip)), MovingBoxEngine(), analytics=stage):
        frames_out.append(time.perf_counter())
        published += [e.id for e in result.events]
    return stage, published, time.perf_counter() - start


@pytest.fixture(scope="module")
def walk_clip(tmp_path_factory):
    from tests.pipeline.moving_box import write_clip

    return write_clip(tmp_path_factory.mktemp("webhook") / "walk.mp4", 240)


def test_a_slow_failing_receiver_never_stalls_the_pipeline_and_every_event_is_accounted_for(walk_clip):
    from pipeline.events.factory import EventDelivery

    receiver = Receiver(delay_s=1.0, fail=lambda n: n % 2 == 0)  # 1 s per request, every second one a 503
    delivery = EventDelivery(queue_size=2, webhook_retries=2, webhook_backoff_s=0.05, webhook_timeout_s=3, close_timeout_s=2)
    try:
        stamps: list[float] = []
        stage, published, wall = _run(walk_clip, [receiver.url], delivery, stamps)
    finally:
        receiver.close()
    stats = next(iter(stage.bus.stats().values()))
    assert len(published) >= 10
    # a receiver holding each event 1 s would have cost >= 10 s if the frame path waited on it
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) < 0.9, max(gaps)
    delivered = {r["id"] for r in receiver.requests}
    assert stats["sent"] >= 1 and stats["dropped"] >= 1 and stats["retries"] >= 1
    assert stats["sent"] + stats["dropped"] + stats["failed"] == len(published)  # nothing lost uncounted
    assert delivered <= set(published)
    assert len(receiver.requests) > len(delivered)  # 503s were retried: the receiver saw some event twice
    assert receiver.requests[0]["schema"] == "trident.event/1" and receiver.requests[0]["kind"] == "line_cross"


def test_a_receiver_that_always_fails_counts_failed_events_after_their_retries(walk_clip):
    from pipeline.events.factory import EventDelivery

    receiver = Receiver(delay_s=0.0, fail=lambda n: True)
    delivery = EventDelivery(queue_size=64, webhook_retries=2, webhook_backoff_s=0.01, close_timeout_s=5)
    try:
        stage, published, _ = _run(walk_clip, [receiver.url], delivery, [])
    finally:
        receiver.close()
    stats = next(iter(stage.bus.stats().values()))
    assert stats["sent"] == 0 and stats["failed"] == len(published) and stats["dropped"] == 0
    assert len(receiver.requests) == 3 * len(published)  # the first try and 2 retries each
    assert stats["retries"] == 2 * len(published)


def test_a_receiver_that_is_not_there_loses_nothing_uncounted_and_shutdown_is_bounded(walk_clip):
    from pipeline.events.factory import EventDelivery
    from tests.support.mosquitto import free_port

    url = f"http://127.0.0.1:{free_port()}/nobody"
    delivery = EventDelivery(queue_size=64, webhook_retries=3, webhook_backoff_s=0.5, close_timeout_s=1)
    start = time.perf_counter()
    stage, published, _ = _run(walk_clip, [url], delivery, [])
    stats = next(iter(stage.bus.stats().values()))
    assert stats["sent"] == 0 and stats["failed"] + stats["dropped"] == len(published) and stats["queued"] == 0
    assert time.perf_counter() - start < 60
