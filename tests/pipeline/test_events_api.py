"""The Python API with zones and events: results carry events and counts, in-process sinks, metrics and Prometheus."""

from __future__ import annotations

import json
import threading
import time

from tests.pipeline.moving_box import LINE_X, MovingBoxEngine, write_clip


def test_stream_with_a_zones_file_gives_events_counts_metrics_and_prometheus(tmp_path):
    import pipeline
    from pipeline.events import RecentEvents
    from pipeline.sources import SourceConfig

    clip = write_clip(tmp_path / "walk.mp4", 90)
    zones = tmp_path / "zones.yaml"
    zones.write_text(f"lines:\n  - {{name: door, points: [[{LINE_X}, 0], [{LINE_X}, 64]]}}\n")
    recent = RecentEvents(keep=3)
    live = recent.subscribe()
    pipe = pipeline.stream(SourceConfig(uri=str(clip), stream_id="cam"), MovingBoxEngine(), zones=str(zones), events=[str(tmp_path / "e.jsonl"), recent])
    results = list(pipe)
    events = [e for r in results for e in r.events]
    assert [e.extra["direction"] for e in events] == ["in", "out", "in", "out"]  # every 20 frames from frame 21
    assert results[-1].counts["door"]["in"] == 2 and results[-1].counts["door"]["out"] == 2
    assert results[10].counts["door"]["in"] == 0  # counts as they were after that frame
    assert [e.id for e in recent.recent()] == [e.id for e in events[-3:]]  # keeps the last 3
    assert [live.get(timeout=1).id for _ in events] == [e.id for e in events]  # a live feed gets them all
    written = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [w["id"] for w in written] == [e.id for e in events]
    summary = pipe.metrics.summary()
    assert summary["streams"]["cam"]["counts"]["door"]["by_class"] == {"person": {"in": 2, "out": 2}}
    assert summary["events"]["jsonl:e.jsonl"]["sent"] == 4 and summary["events"]["recent"]["sent"] == 4
    assert summary["stages"]["analytics"]["count"] == 90
    prom = pipe.metrics.prometheus_text()
    assert 'trident_zone_crossings_total{stream="cam",zone="door",class="person",direction="in"} 2' in prom
    assert 'trident_events_sent_total{sink="jsonl:e.jsonl"} 4' in prom
    assert prom.count("# TYPE trident_zone_crossings_total counter") == 1
    table = pipe.metrics.format_table()
    assert "door" in table and "in     2  out     2" in table and "jsonl:e.jsonl" in table


def test_a_stuck_event_sink_never_blocks_submit_and_counts_what_it_dropped():
    from pipeline.contracts import Event
    from pipeline.events import EventBus, ThreadedEventSink

    release = threading.Event()

    class Stuck(ThreadedEventSink):
        def deliver(self, event):
            release.wait(30)
            self.sent += 1

    sink = Stuck("stuck", queue_size=4).start()
    bus = EventBus([sink])
    start = time.perf_counter()
    for i in range(100):
        bus.publish(Event("cam", i, i / 10, time.time(), "line_cross", "door", 1, 0, (0, 0, 1, 1)))
    assert time.perf_counter() - start < 0.5  # 100 events handed over without waiting on the stuck delivery
    assert sink.stats()["dropped"] >= 95
    release.set()
    bus.close(5)
    stats = sink.stats()
    assert stats["sent"] + stats["dropped"] == 100 and stats["queued"] == 0


def test_closing_a_sink_that_cannot_finish_is_bounded_and_counts_the_rest_as_dropped():
    from pipeline.contracts import Event
    from pipeline.events import ThreadedEventSink

    class Slow(ThreadedEventSink):
        def deliver(self, event):
            self.stop.wait(0.5)  # a delivery that honours the stop, like the webhook's backoff
            self.sent += 1

    sink = Slow("slow", queue_size=100).start()
    for i in range(50):
        sink.submit(Event("cam", i, 0.0, time.time(), "dwell", "lobby", 1, 0, (0, 0, 1, 1)))
    start = time.perf_counter()
    sink.close(timeout=1.0)
    assert time.perf_counter() - start < 3.0
    stats = sink.stats()
    assert stats["sent"] + stats["dropped"] == 50 and stats["dropped"] >= 40


def test_a_live_source_going_down_and_up_sends_stream_events_without_its_password(tmp_path):
    import threading as th

    from pipeline.analytics.stage import AnalyticsStage
    from pipeline.events import RecentEvents
    from pipeline.queues import BoundedQueue
    from pipeline.sources.base import Source, SourceConfig, SourceState

    class Camera(Source):
        live = True

    recent = RecentEvents()
    stage = AnalyticsStage.build(None, [recent], ("person",))
    cam = Camera(SourceConfig(uri="rtsp://admin:hunter2@127.0.0.1:8554/cam"), "cam", BoundedQueue(4), th.Event())
    stage.attach(cam)
    for state in (SourceState.STREAMING, SourceState.RECONNECTING, SourceState.STREAMING):
        cam._set_state(state)
    cam.error = "rtsp://admin:hunter2@127.0.0.1:8554/cam: 401 Unauthorized"
    cam._set_state(SourceState.CLOSED)
    kinds = [(e.kind, e.extra.get("after"), e.extra.get("state")) for e in recent.recent()]
    assert kinds == [("stream_up", "connecting", None), ("stream_down", None, "reconnecting"), ("stream_up", "reconnecting", None), ("stream_down", None, "closed")]
    text = json.dumps([e.to_dict() for e in recent.recent()])
    assert "hunter2" not in text and "admin:***@127.0.0.1" in text
    assert recent.recent()[0].to_dict()["pts"] is None and recent.recent()[0].to_dict()["zone"] is None
    stage.close(1)
