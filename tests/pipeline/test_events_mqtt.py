"""Events to a real MQTT broker (Debian's mosquitto, started here on a free 127.0.0.1 port).

A run over the bundled clip with a line across it delivers its crossings to a
subscriber; a broker stopped mid-run and restarted costs the pipeline no frame
rate, buffers events up to the bound, delivers them, and counts the rest.
"""

from __future__ import annotations

import json
import statistics
import threading
import time

import pytest

from tests.support import mosquitto

pytestmark = pytest.mark.skipif(not mosquitto.available(), reason="needs Debian's mosquitto (/usr/sbin/mosquitto; .ci/run installs it)")
pytest.importorskip("paho.mqtt.client", reason="needs paho-mqtt (pip install 'trident-vision[events]')")


@pytest.fixture
def broker(tmp_path):
    b = mosquitto.Broker(tmp_path / "broker").start()
    yield b
    b.stop()


def test_a_run_over_a_clip_delivers_its_line_crossings_to_a_subscriber(broker, tmp_path):
    from pipeline.app import run
    from pipeline.commands import BUNDLED_CLIP, BUNDLED_INT8_ONNX, asset
    from pipeline.config import build_run_config

    zones = tmp_path / "zones.yaml"
    zones.write_text("lines:\n  - {name: walkway, points: [[320, 0], [320, 384]]}\n")
    subscriber = mosquitto.Subscriber(broker.port)
    try:
        cfg = build_run_config({
            "sources": [{"uri": str(asset(BUNDLED_CLIP)), "max_frames": 60}],
            "engine": {"model": str(asset(BUNDLED_INT8_ONNX)), "device": "cpu"},
            "output": {"dir": str(tmp_path / "out"), "video": False, "mot": False, "jsonl": False},
            "zones": str(zones), "events": [broker.uri, str(tmp_path / "events.jsonl")], "progress": False,
        })
        summary = run(cfg)
        written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        crossings = [e for e in written if e["kind"] == "line_cross"]
        assert len(crossings) >= 1, "the bundled clip's first 60 frames have objects crossing x=320"
        assert subscriber.wait_for(len(written), timeout=10)
        got = {p["id"]: p for p in subscriber.payloads()}
        assert set(got) == {e["id"] for e in written}  # every event, as the JSON Lines sink wrote it
        for event in crossings:
            assert got[event["id"]] == event
        topics = {t for _, t, _ in subscriber.messages}
        assert "trident/demo_clip/line_cross" in topics  # per-stream, per-kind sub-topics
        counts = summary.metrics["streams"]["demo_clip"]["counts"]["walkway"]
        assert counts["in"] + counts["out"] == len(crossings)
        mqtt_stats = next(v for k, v in summary.metrics["events"].items() if k.startswith("mqtt:"))
        assert mqtt_stats["sent"] == len(written) and mqtt_stats["dropped"] == 0
    finally:
        subscriber.close()


def test_a_broker_stopped_mid_run_costs_no_frame_rate_buffers_to_the_bound_and_counts_the_rest(broker, tmp_path):
    import pipeline
    from pipeline.analytics import zones_from_data
    from pipeline.events.factory import EventDelivery
    from pipeline.sources import SourceConfig
    from tests.pipeline.moving_box import DOOR, MovingBoxEngine, write_clip

    clip = write_clip(tmp_path / "walk.mp4", 420)
    subscriber = mosquitto.Subscriber(broker.port)
    stages = {"stop": 120, "start": 300}  # frames at which the broker goes down and comes back
    stamps: list[float] = []
    published: dict[str, str] = {}  # event id -> "before" | "outage" (the sink offline) | "after"
    phase = "before"
    buffer = 3
    delivery = EventDelivery(mqtt_offline_buffer=buffer, close_timeout_s=15)
    from pipeline.analytics.stage import AnalyticsStage

    stage = AnalyticsStage.build(zones_from_data(DOOR), [broker.uri], ("person",), delivery=delivery)
    sink = stage.bus.sinks[0]
    assert sink.wait_connected(10)
    pipe = pipeline.stream(SourceConfig(uri=str(clip)), MovingBoxEngine(delay_s=0.01), analytics=stage)
    threads = []
    try:
        for result in pipe:
            stamps.append(time.perf_counter())
            i = result.frame.index
            if i == stages["stop"]:
                threads.append(threading.Thread(target=broker.stop))  # off the frame loop, as a real outage would be
                threads[-1].start()
                threads[-1].join()  # down for sure before the next frame's events
                phase = "outage"
            if i == stages["start"]:
                threads.append(threading.Thread(target=broker.start))
                threads[-1].start()
            if i >= stages["start"] and sink.connected.is_set():
                phase = "after"  # until the sink is connected again, events are offline: buffered or dropped
            for event in result.events:
                published[event.id] = phase
    finally:
        for t in threads:
            t.join(15)
    try:
        assert subscriber.wait_for(sum(1 for p in published.values() if p != "outage") + buffer, timeout=20)
        time.sleep(0.5)  # QoS 1 may still bring a duplicate: ids are compared, not message counts
        received = {p["id"] for p in subscriber.payloads()}
    finally:
        subscriber.close()
    stats = stage.bus.stats()[sink.name]
    outage = [i for i, p in published.items() if p == "outage"]
    assert len(outage) > buffer + 2, "the test needs more events during the outage than the buffer holds"
    # every event before and after the outage arrived; of those during it, the buffer's worth
    assert {i for i, p in published.items() if p != "outage"} <= received
    got_from_outage = len(received & set(outage))
    assert buffer <= got_from_outage <= buffer + 2  # + what paho had in flight when the socket closed
    assert stats["dropped"] == len(published) - len(received) and stats["dropped"] >= len(outage) - buffer - 2
    assert stats["sent"] == len(received) and stats["reconnects"] == 1
    # frame rate: the frame loop went on at its pace while the broker was away (median frame interval)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    before = statistics.median(gaps[20 : stages["stop"]])
    during = statistics.median(gaps[stages["stop"] + 1 : stages["start"]])
    assert during < 1.5 * before + 0.002, (before, during)
    assert max(gaps[stages["stop"] + 1 : stages["start"]]) < 0.5  # no frame waited on the broker
