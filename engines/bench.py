"""`trident bench`: latency percentiles and throughput of preprocess, infer and postprocess, separately."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Engine
from engines.postprocess import PostprocessConfig, postprocess
from engines.preprocess import letterbox_batch


def run_bench(engine: Engine, frames: list[np.ndarray], batch: int, iters: int, warmup: int, device: str = "cpu", post_cfg: PostprocessConfig = PostprocessConfig()) -> dict[str, Any]:
    spec = engine.spec
    times: dict[str, list[float]] = {"preprocess": [], "infer": [], "postprocess": [], "total": []}
    detections = []
    for i in range(warmup + iters):
        chunk = [frames[(i * batch + j) % len(frames)] for j in range(batch)]
        t0 = time.perf_counter()
        images, lbs = letterbox_batch(chunk, spec.input_hw, device, spec.resize)
        t1 = time.perf_counter()
        raw = engine.infer(images)
        if device != "cpu":
            import torch

            torch.cuda.synchronize()
        t2 = time.perf_counter()
        results = postprocess(raw, spec, lbs, post_cfg)
        t3 = time.perf_counter()
        if i >= warmup:
            for k, v in (("preprocess", t1 - t0), ("infer", t2 - t1), ("postprocess", t3 - t2), ("total", t3 - t0)):
                times[k].append(v)
            detections.extend(len(d) for d, _ in results)
    stats = {}
    for k, v in times.items():
        arr = np.asarray(v) * 1e3
        stats[k] = {"p50_ms": float(np.percentile(arr, 50)), "p90_ms": float(np.percentile(arr, 90)), "p99_ms": float(np.percentile(arr, 99)), "mean_ms": float(arr.mean())}
    return {
        "engine": type(engine).__name__,
        "input_hw": list(spec.input_hw),
        "frame_hw": list(frames[0].shape[:2]),
        "batch": batch,
        "iters": iters,
        "stages": stats,
        "images_per_s": batch / (stats["total"]["p50_ms"] / 1e3),
        "mean_detections": float(np.mean(detections)) if detections else 0.0,
    }


def format_bench(result: dict[str, Any]) -> str:
    lines = [
        f"{result['engine']}  input {result['input_hw'][0]}x{result['input_hw'][1]}  batch {result['batch']}  "
        f"({result['iters']} iterations, {result['mean_detections']:.1f} detections/frame)",
        f"{'stage':<12} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'mean ms':>9}",
    ]
    for k, s in result["stages"].items():
        lines.append(f"{k:<12} {s['p50_ms']:>9.2f} {s['p90_ms']:>9.2f} {s['p99_ms']:>9.2f} {s['mean_ms']:>9.2f}")
    lines.append(f"throughput: {result['images_per_s']:.1f} images/s")
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
