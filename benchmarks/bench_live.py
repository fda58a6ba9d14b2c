"""Live latency: N real RTSP cameras (GStreamer RTSP servers on 127.0.0.1) through `trident run`, capture to outputs.

    python benchmarks/bench_live.py --cameras 1 4 --seconds 60 --fps 10

Each camera is tests/support/rtsp_server.py's live test pattern (x264,
zerolatency, `--fps`). `trident run` runs with its normal outputs (annotated
MP4, MOT, JSON Lines) on the bundled FP32 model, batches as `trident run` picks them
(`--batch cameras`: one batch of N frames a call), is stopped with SIGINT after
`--seconds` (outputs flushed, metrics written), and the report gives, per
camera count: frames per second in total and per camera, frames dropped by the
live queues, the latency from capture (decode start) to each output (draw,
MP4 encode, JSON line) as p50/p99, and each stage's p50. The first 5 s (RTSP
set-up, first-frame allocations) are part of the run; p50 is barely moved by
them, p99 may be.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.bench import cpu_description  # noqa: E402


def run_cameras(n: int, seconds: float, fps: int, model: str, extra: list[str], tmp: Path, batch: str = "auto") -> dict:
    from tests.support.rtsp import RtspServer

    servers = [RtspServer(fps=fps).start() for _ in range(n)]
    try:
        metrics = tmp / f"live{n}.json"
        cmd = [str(Path(sys.executable).parent / "trident"), "run", "--model", model, "--device", "cpu", "--out", str(tmp / f"out{n}"),
               "--no-progress", "--metrics-json", str(metrics), *(["--batch", str(n)] if batch == "cameras" else []), *extra]
        for s in servers:
            cmd += ["--source", s.url]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(seconds)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        if not metrics.exists():
            raise SystemExit(f"trident run wrote no metrics (exit {proc.returncode}):\n{err[-1500:]}")
        return json.loads(metrics.read_text())
    finally:
        for s in servers:
            s.kill()


def main() -> None:
    from pipeline.commands import bundled_onnx
    from tests.support.rtsp import rtsp_available

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--model", default=str(bundled_onnx(int8=False)))
    ap.add_argument("--set", action="append", default=[], help="passed to trident run --set")
    ap.add_argument("--batch", choices=("auto", "cameras"), default="auto",
                    help="auto: as `trident run` picks (one frame a call, two calls at once on a 2+ core CPU); cameras: --batch N")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not rtsp_available():
        raise SystemExit("needs the GStreamer RTSP server for /usr/bin/python3 (see .ci/run)")
    extra = [x for s in args.set for x in ("--set", s)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.cameras:
            results[n] = run_cameras(n, args.seconds, args.fps, args.model, extra, Path(tmp), args.batch)
    settings = f" --set {' '.join(args.set)}" if args.set else ""
    print(f"{args.fps} fps RTSP cameras, {args.seconds:g} s each run, {Path(args.model).name}{settings}, batch {args.batch}, MP4 + MOT + JSONL; {cpu_description()}")
    one = None
    for n, m in results.items():
        streams = m["streams"].values()
        frames = sum(s["frames"] for s in streams)
        total_fps = sum(s["fps"] for s in streams)
        one = one or total_fps
        dropped = sum(s["dropped"] for s in streams)
        print(f"\n{n} camera(s): {total_fps:.1f} frames/s in total ({total_fps / one:.2f}x one camera's), per camera "
              f"{[round(s['fps'], 1) for s in streams]}, {frames} frames, {dropped} dropped")
        for stage, d in m["delivered"].items():
            print(f"  capture -> {stage:<7} p50 {d['p50_ms']:7.1f} ms  p99 {d['p99_ms']:7.1f} ms")
        stages = {k: v for k, v in m["stages"].items() if v["count"]}
        print("  stage p50 ms: " + ", ".join(f"{k} {v['p50_ms']:.1f}" for k, v in stages.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
