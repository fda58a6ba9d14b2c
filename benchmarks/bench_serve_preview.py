"""What one live preview viewer costs `trident serve` end to end, alone and with zones + events.

A/B/C on a real clip (OpenCV's vtest.avi, 768x576 pedestrians; Debian's opencv-doc), alternately,
in one process, each arm a fresh `CameraService` behind its real HTTP server (uvicorn on 127.0.0.1):

  serve          the clip added as a camera (POST /streams), nobody watching
  +viewer        the same with one client (its own process, as a browser) reading GET /streams/clip/preview.mjpg throughout
  +zones+events  the same viewer, plus zones (two lines, one polygon with dwell; bench_analytics.py's)
                 and event sinks (MQTT to a local mosquitto when installed, and a JSON Lines file)

The clip is a file, read with the `block` policy, so the pipeline runs as fast as the CPU lets it:
whatever the preview takes from the frame path shows as lost FPS (the run's own FPS, first to last
processed frame; model load excluded). No --out: nothing else draws, so the preview pays for its
own drawing - the worst case for it.

    .venv/bin/python benchmarks/bench_serve_preview.py --frames 300 --rounds 3
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_analytics import VTEST, ZONES, start_broker  # noqa: E402  (the same zones and broker as its A/B)


VIEWER = r"""
import http.client, sys, threading
parts = 0
def read():
    global parts
    conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
    conn.request("GET", sys.argv[2])
    resp = conn.getresponse()
    while True:
        line = resp.readline()
        if not line:
            return
        if line.startswith(b"Content-Type: image/jpeg"):
            parts += 1
threading.Thread(target=read, daemon=True).start()
sys.stdin.read()  # until the benchmark closes our stdin
print(parts, flush=True)
"""


class Viewer:
    """One MJPEG client in its own process (as a browser is): its reading costs the service nothing
    but the sending. `stop()` returns the parts it read."""

    def __init__(self, port: int, path: str):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-c", VIEWER, str(port), path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.parts = 0

    def stop(self) -> int:
        out, _ = self.proc.communicate("", timeout=30)
        self.parts = int(out.strip() or 0)
        return self.parts


def run_once(args, arm: str, tmp: Path, mqtt_port: int | None) -> dict:
    import yaml

    import uvicorn
    from pipeline.engine_choice import load_run_engine
    from pipeline.config import build_run_config
    from pipeline.serve.app import LOOPBACK_HOSTS, create_app
    from pipeline.serve.command import bind
    from pipeline.serve.service import CameraService, ServeOptions
    from pipeline.sources import SourceConfig

    data: dict = {"engine": {"model": args.model, "device": "cpu"}}
    if arm == "+zones+events":
        events = [str(tmp / f"events-{time.monotonic_ns()}.jsonl")]
        if mqtt_port:
            events.append(f"mqtt://127.0.0.1:{mqtt_port}/trident")
        data["events"] = events
    cfg = build_run_config(data)
    engine = load_run_engine(args.model, "cpu", args.threads)  # as `trident serve` loads it
    service = CameraService(cfg, engine, ServeOptions(preview_fps=args.preview_fps)).start()
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(service, "", LOOPBACK_HOSTS), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    zones = yaml.safe_load(ZONES) if arm == "+zones+events" else None
    viewer = None
    try:
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        service.add(SourceConfig(uri=VTEST, stream_id="clip", max_frames=args.frames), zones=zones)
        if arm != "serve":
            viewer = Viewer(sock.getsockname()[1], "/streams/clip/preview.mjpg")
        done = lambda st: st["state"] == "closed" and st["frames"] == st["frames_decoded"]  # noqa: E731 - the queue drained too
        while not done(service.metrics.summary()["streams"].get("clip", {"state": "", "frames": 0, "frames_decoded": 1})):
            time.sleep(0.05)
        entry = service.stream("clip")
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        preview = service.previews["clip"]
        service_jpeg_s = preview.encode_s
        # the preview's CPU: every draw (nothing else draws without --out) and every JPEG
        draw_cpu = service.metrics.cpu_s.get("draw", [0.0])[0]
        preview_cpu = draw_cpu + preview.encode_cpu_s
    finally:
        if viewer is not None:
            viewer.stop()
        service.begin_close()
        server.should_exit = True
        thread.join(10)
        service.close()
        sock.close()
    return {
        "fps": entry["fps"],
        "frames": entry["frames"],
        "jpegs": entry["preview"]["jpegs"],
        "parts": viewer.parts if viewer else 0,
        "draw_ms": 1e3 * draw_cpu / max(1, entry["preview"]["jpegs"]),
        "jpeg_ms": 1e3 * service_jpeg_s / max(1, entry["preview"]["jpegs"]),
        "counts": entry["counts"],
        "cpu_share": preview_cpu / max(1e-9, _cpu(cpu_after) - _cpu(cpu_before)),
        "cpu_ms_per_frame": 1e3 * (_cpu(cpu_after) - _cpu(cpu_before)) / max(1, entry["frames"]),
    }


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    from pipeline.commands import BUNDLED_INT8_ONNX, asset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--preview-fps", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=0, help="engine threads (0: what trident serve picks, every usable core)")
    p.add_argument("--model", default=str(asset(BUNDLED_INT8_ONNX)))
    args = p.parse_args()
    if not Path(VTEST).exists():
        raise SystemExit(f"{VTEST} is missing: apt-get install opencv-doc")
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    broker, mqtt_port = start_broker(tmp) if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists() else (None, None)
    arms = ("serve", "+viewer", "+zones+events")
    results: dict[str, list[dict]] = {a: [] for a in arms}
    try:
        for r in range(args.rounds):
            order = arms if r % 2 == 0 else tuple(reversed(arms))
            for arm in order:
                res = run_once(args, arm, tmp, mqtt_port)
                results[arm].append(res)
                print(f"round {r} {arm:<14} fps {res['fps']:6.2f}  frames {res['frames']}  preview jpegs {res['jpegs']:4d}  parts read {res['parts']:4d}  "
                      f"preview CPU share {100 * res['cpu_share']:.2f} %  CPU/frame {res['cpu_ms_per_frame']:.1f} ms", flush=True)
    finally:
        if broker is not None:
            broker.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    fps = {a: statistics.median(x["fps"] for x in v) for a, v in results.items()}
    cost = lambda a: 100 * (1 - fps[a] / fps["serve"])  # noqa: E731
    viewer = results["+viewer"]
    print()
    print(f"vtest.avi {args.frames} frames x {args.rounds} rounds per arm, INT8 ONNX on {os.cpu_count()} CPU(s), preview capped at {args.preview_fps:g} fps, arms alternated")
    print(f"FPS median: serve {fps['serve']:.2f}, +viewer {fps['+viewer']:.2f} ({cost('+viewer'):+.1f} %), "
          f"+zones+events {fps['+zones+events']:.2f} ({cost('+zones+events'):+.1f} %)")
    print(f"preview per viewed run: {statistics.median(x['jpegs'] for x in viewer)} JPEGs made, {statistics.median(x['parts'] for x in viewer)} parts read; "
          f"draw {statistics.median(x['draw_ms'] for x in viewer):.2f} ms CPU each, JPEG {statistics.median(x['jpeg_ms'] for x in viewer):.2f} ms each")
    cpf = {a: statistics.median(x["cpu_ms_per_frame"] for x in v) for a, v in results.items()}
    more = lambda a: 100 * (cpf[a] / cpf["serve"] - 1)  # noqa: E731
    print(f"process CPU per frame, median (what bounds FPS on a busy CPU; less sensitive to other load than wall FPS): "
          f"serve {cpf['serve']:.1f} ms, +viewer {cpf['+viewer']:.1f} ms ({more('+viewer'):+.1f} %), +zones+events {cpf['+zones+events']:.1f} ms ({more('+zones+events'):+.1f} %)")
    share = statistics.median(x["cpu_share"] for x in viewer)
    print(f"the preview's own CPU (draws + JPEGs) over the process's CPU while the clip ran: {100 * share:.2f} % (median of the viewed runs)")
    print(f"mqtt: {'on' if mqtt_port else 'absent (JSON Lines events only)'}; counts (last run): {results['+zones+events'][-1]['counts']}")


if __name__ == "__main__":
    main()
