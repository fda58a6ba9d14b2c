"""Live RTSP soak: N cameras (real GStreamer RTSP servers on 127.0.0.1) for M minutes.

    python benchmarks/rtsp_soak.py --model model.onnx --streams 4 --minutes 10

Reports per-stream FPS, end-to-end latency percentiles, drops, and the
process RSS at 1 minute and at the end (the target: within 10 %).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    from pipeline.batcher import BatchConfig
    from pipeline.engine_choice import load_run_engine
    from pipeline.runtime import Pipeline
    from pipeline.sources import SourceConfig
    from tests.support.rtsp import RtspServer

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--clip", default=None, help="serve this H.264 MP4 in a loop instead of a generated pattern")
    ap.add_argument("--device", default="cpu", help="cpu (ONNX Runtime) | openvino | auto, loaded as `trident run` loads it")
    ap.add_argument("--max-batch", type=int, default=0, help="frames a batch (0 = auto, as `trident run`)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    servers = [RtspServer(fps=args.fps, clip=Path(args.clip) if args.clip else None).start() for _ in range(args.streams)]
    try:
        engine = load_run_engine(args.model, args.device)
        pipe = Pipeline([SourceConfig(s.url) for s in servers], engine, batch=BatchConfig(max_batch=args.max_batch, max_wait_ms=10))
        start = time.monotonic()
        rss_1min = None
        samples = []
        for n, _ in enumerate(pipe):
            elapsed = time.monotonic() - start
            if rss_1min is None and elapsed >= 60:
                rss_1min = rss_mb()
            if n % 100 == 0:
                samples.append((round(elapsed, 1), round(rss_mb(), 1)))
            if elapsed >= args.minutes * 60:
                pipe.stop()
                break
        rss_end = rss_mb()
        summary = pipe.metrics.summary()
    finally:
        for s in servers:
            s.kill()
    result = {"streams": args.streams, "minutes": args.minutes, "rss_1min_mb": rss_1min, "rss_end_mb": rss_end, "rss_samples": samples, "metrics": summary}
    print(pipe.metrics.format_table())
    if rss_1min is not None:
        print(f"RSS at 1 min: {rss_1min:.1f} MB, at {args.minutes:g} min: {rss_end:.1f} MB ({(rss_end / rss_1min - 1) * 100:+.1f} %)")
    else:
        print(f"RSS at the end: {rss_end:.1f} MB (run longer than a minute to compare)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
