"""What zones + events cost end to end, and how late an event reaches an MQTT subscriber.

A/B on a real clip (OpenCV's vtest.avi, 768x576 pedestrians; Debian's opencv-doc), alternately,
in one process: `trident run` as people use it (annotated MP4 + JSON Lines + MOT), without and
with zones (two lines, one polygon with dwell) and event sinks (MQTT to a local mosquitto + a
JSON Lines file). FPS is the run's own (first to last processed frame, model load excluded).

Event latency: for every event, the subscriber's receipt time minus the frame's capture time
(`wall_time` in the event), and minus the moment the pipeline published it (right after the
frame's tracking), which is the part the events path adds beyond the frame's own pipeline latency.

    .venv/bin/python benchmarks/bench_analytics.py --frames 300 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
ZONES = """\
lines:
  - {name: middle, points: [[384, 100], [384, 576]]}
  - {name: crossing, points: [[0, 330], [768, 330]], classes: [person]}
polygons:
  - {name: plaza, points: [[250, 200], [550, 200], [550, 450], [250, 450]], dwell_s: 3}
"""


def start_broker(folder: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


class Receipts:
    def __init__(self, port: int):
        import paho.mqtt.client as mqtt

        self.got: dict[str, tuple[float, dict]] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-subscriber")
        ready = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe("trident/#", qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = lambda c, u, m: self.got.setdefault(json.loads(m.payload)["id"], (time.time(), json.loads(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        ready.wait(10)


def run_once(args, out: Path, with_events: bool, port: int, published: dict[str, float]) -> dict:
    import pipeline.app as app
    from pipeline.config import build_run_config
    from pipeline.events.base import EventSink

    class Stamp(EventSink):  # when the pipeline published each event (on its own thread, after tracking)
        name = "bench-stamp"

        def submit(self, event) -> None:
            published[event.id] = time.time()

    data = {
        "sources": [{"uri": VTEST, "max_frames": args.frames}],
        "engine": {"model": args.model, "device": "cpu"},
        "output": {"dir": str(out)},
        "progress": False,
    }
    if with_events:
        (out.parent / "zones.yaml").write_text(ZONES)
        data |= {"zones": str(out.parent / "zones.yaml"), "events": [f"mqtt://127.0.0.1:{port}/trident", str(out / "events.jsonl")]}
    out.mkdir(parents=True, exist_ok=True)
    make = app.make_analytics

    def with_stamp(cfg, names):
        stage = make(cfg, names)
        if stage is not None:
            stage.bus.add(Stamp())
        return stage

    app.make_analytics = with_stamp
    try:
        summary = app.run(build_run_config(data))
    finally:
        app.make_analytics = make
    stream = next(iter(summary.metrics["streams"].values()))
    return {"fps": stream["fps"], "e2e_p50_ms": stream["latency"]["p50_ms"], "analytics": summary.metrics["stages"].get("analytics", {}),
            "events": summary.metrics.get("events", {}), "counts": stream.get("counts")}


def main() -> None:
    from pipeline.commands import BUNDLED_INT8_ONNX, asset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", default=str(asset(BUNDLED_INT8_ONNX)))
    args = p.parse_args()
    if not Path(VTEST).exists():
        raise SystemExit(f"{VTEST} is missing: apt-get install opencv-doc")
    tmp = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    broker, port = start_broker(tmp)
    receipts = Receipts(port)
    published: dict[str, float] = {}
    results: dict[str, list[dict]] = {"plain": [], "zones+events": []}
    try:
        for r in range(args.rounds):
            for name in (("plain", "zones+events") if r % 2 == 0 else ("zones+events", "plain")):
                res = run_once(args, tmp / f"{name}-{r}", name != "plain", port, published)
                results[name].append(res)
                print(f"round {r} {name:<13} fps {res['fps']:6.2f}  e2e p50 {res['e2e_p50_ms']:7.1f} ms", flush=True)
        time.sleep(2)
    finally:
        receipts.client.loop_stop()
        broker.terminate()
    fps = {k: statistics.median(x["fps"] for x in v) for k, v in results.items()}
    # the two runs of a round share the machine's load: their ratio is steadier than the medians
    paired = [b["fps"] / a["fps"] for a, b in zip(results["plain"], results["zones+events"])]
    e2e = statistics.median(x["e2e_p50_ms"] for x in results["zones+events"])
    analytics_ms = statistics.median(x["analytics"].get("p50_ms", float("nan")) for x in results["zones+events"])
    got = [(t, m) for i, (t, m) in receipts.got.items() if i in published]
    total = sorted((t - m["wall_time"]) * 1e3 for t, m in got)
    beyond = sorted((t - published[m["id"]]) * 1e3 for t, m in got)
    pct = lambda xs, q: xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")  # noqa: E731
    print()
    print(f"vtest.avi, {args.frames} frames x {args.rounds} rounds each, INT8 ONNX on the CPU, A/B alternately")
    print(f"FPS median: plain {fps['plain']:.2f}, zones+events {fps['zones+events']:.2f}  -> cost {100 * (1 - fps['zones+events'] / fps['plain']):+.1f} %")
    print(f"per-round FPS ratio (zones+events / plain): {', '.join(f'{r:.3f}' for r in paired)}; median {statistics.median(paired):.3f}")
    print(f"analytics stage p50 {analytics_ms:.3f} ms/frame; counts (last run): {json.dumps(results['zones+events'][-1]['counts'])}")
    print(f"events: {len(published)} published, {len(got)} received over MQTT; sinks: {json.dumps(results['zones+events'][-1]['events'])}")
    print(f"capture -> MQTT receipt: p50 {pct(total, 50):.1f} ms, p90 {pct(total, 90):.1f} ms (the frame's own e2e p50: {e2e:.1f} ms)")
    print(f"published -> MQTT receipt (beyond the frame's pipeline latency): p50 {pct(beyond, 50):.2f} ms, p90 {pct(beyond, 90):.2f} ms, max {pct(beyond, 100):.2f} ms")


if __name__ == "__main__":
    main()
