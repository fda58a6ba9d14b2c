"""`trident bench`: latency percentiles and throughput of preprocess, infer and postprocess, separately."""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Engine
from engines.postprocess import PostprocessConfig, postprocess
from engines.preprocess import batch_input_hw, letterbox_batch


def run_bench(engine: Engine, frames: list[np.ndarray], batch: int, iters: int, warmup: int, device: str = "cpu", post_cfg: PostprocessConfig = PostprocessConfig()) -> dict[str, Any]:
    """Per-stage latency of one batch at a time; and, for an engine that takes several calls at
    once (`concurrent_calls`, as `trident run` keeps that many batches in it), the throughput of
    that many callers each running letterbox + infer + post-process: `images_per_s` is then
    that throughput (what the engine can feed a pipeline), else batch / p50 of the total."""
    result = _latency(engine, frames, batch, iters, warmup, device, post_cfg)
    calls = max(1, int(getattr(engine, "concurrent_calls", 1) or 1))
    result["concurrent"] = calls
    result["cpu"] = cpu_description()
    result["serial_images_per_s"] = result["images_per_s"]
    if calls > 1:
        result["images_per_s"] = _throughput(engine, frames, batch, iters, calls, device, post_cfg)
    return result


def _throughput(engine: Engine, frames: list[np.ndarray], batch: int, iters: int, calls: int, device: str, post_cfg: PostprocessConfig) -> float:
    """Images a second with `calls` threads each running whole batches (letterbox, infer, post-process)."""
    from concurrent.futures import ThreadPoolExecutor

    spec = engine.spec

    def one(i: int) -> None:
        chunk = [frames[(i * batch + j) % len(frames)] for j in range(batch)]
        images, lbs = letterbox_batch(chunk, batch_input_hw([f.shape[:2] for f in chunk], spec), device, spec.resize)
        postprocess(engine.infer(images), spec, lbs, post_cfg)

    with ThreadPoolExecutor(max_workers=calls) as pool:
        list(pool.map(one, range(calls)))  # each thread's first call outside the clock
        started = time.perf_counter()
        list(pool.map(one, range(iters)))
        return iters * batch / (time.perf_counter() - started)


def _latency(engine: Engine, frames: list[np.ndarray], batch: int, iters: int, warmup: int, device: str, post_cfg: PostprocessConfig) -> dict[str, Any]:
    spec = engine.spec
    times: dict[str, list[float]] = {"preprocess": [], "infer": [], "postprocess": [], "total": []}
    detections = []
    sizes: Counter[tuple[int, int]] = Counter()
    for i in range(warmup + iters):
        chunk = [frames[(i * batch + j) % len(frames)] for j in range(batch)]
        t0 = time.perf_counter()
        # the input size the pipeline would use for these frames (rect inference on a dynamic_hw
        # model), so bench and pipeline time the same network work
        hw = batch_input_hw([f.shape[:2] for f in chunk], spec)
        images, lbs = letterbox_batch(chunk, hw, device, spec.resize)
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
            sizes[hw] += 1
    stats = {}
    for k, v in times.items():
        arr = np.asarray(v) * 1e3
        stats[k] = {"p50_ms": float(np.percentile(arr, 50)), "p90_ms": float(np.percentile(arr, 90)), "p99_ms": float(np.percentile(arr, 99)), "mean_ms": float(arr.mean())}
    return {
        "engine": type(engine).__name__,
        "input_hw": list(sizes.most_common(1)[0][0]),  # the size the timed batches ran at (the most frequent)
        "input_sizes": {f"{h}x{w}": n for (h, w), n in sorted(sizes.items())},
        "nominal_hw": list(spec.input_hw),
        "frame_hw": list(frames[0].shape[:2]),
        "batch": batch,
        "iters": iters,
        "stages": stats,
        "images_per_s": batch / (stats["total"]["p50_ms"] / 1e3),
        "mean_detections": float(np.mean(detections)) if detections else 0.0,
    }


def _input_text(result: dict[str, Any]) -> str:
    """'input 384x512 (rect; nominal 384x640)', or the plain size, or each size's batch count when they varied."""
    h, w = result["input_hw"]
    nominal = result.get("nominal_hw", result["input_hw"])
    sizes = result.get("input_sizes", {})
    if len(sizes) > 1:
        return "inputs " + ", ".join(f"{k} ({n} batches)" for k, n in sizes.items()) + f" (rect; nominal {nominal[0]}x{nominal[1]})"
    if list(nominal) != [h, w]:
        return f"input {h}x{w} (rect; nominal {nominal[0]}x{nominal[1]})"
    return f"input {h}x{w}"


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores (AMX, AVX-512 VNNI)': which CPU a number was measured on.

    The vector units decide what INT8 and FP32 cost (measured: INT8 gained nothing on AMD
    EPYCs, 1.05-1.2x on ONNX Runtime and 1.24x end to end on OpenVINO on an AMX Xeon), so
    they travel with every figure.
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    lines = text.splitlines()
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.machine())
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith(("flags", "Features"))), []))
    units = [u for u, f in (("AMX", "amx_tile"), ("AVX-512 VNNI", "avx512_vnni"), ("AVX-512", "avx512f"), ("AVX2", "avx2"), ("NEON", "asimd")) if f in flags]
    return f"{name}, {os.cpu_count()} cores ({', '.join(units[:2]) or 'no AVX2'})"


def format_bench(result: dict[str, Any]) -> str:
    lines = [f"cpu: {result['cpu']}"] if "cpu" in result else []
    lines += [
        f"{result['engine']}  {_input_text(result)}  batch {result['batch']}  "
        f"({result['iters']} iterations, {result['mean_detections']:.1f} detections/frame)",
        f"{'stage':<12} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'mean ms':>9}",
    ]
    for k, s in result["stages"].items():
        lines.append(f"{k:<12} {s['p50_ms']:>9.2f} {s['p90_ms']:>9.2f} {s['p99_ms']:>9.2f} {s['mean_ms']:>9.2f}")
    if result.get("concurrent", 1) > 1:
        lines.append(f"throughput: {result['images_per_s']:.1f} images/s with {result['concurrent']} batches at once "
                     f"(as `trident run` runs this engine; one at a time: {result['serial_images_per_s']:.1f})")
    else:
        lines.append(f"throughput: {result['images_per_s']:.1f} images/s")
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
