"""Latency of one `update()` call: our SORT, ByteTrack and OC-SORT vs supervision's ByteTrack;
and the cost of camera-motion estimation per frame.

Every tracker gets the same pre-built frames (building the input objects is
not timed): N objects moving at constant velocity with box jitter in a
1920x1080 frame, 10 % missed per frame, scores mostly high with a low-score
tail, a few false positives. Reports median and p99 per call in
microseconds, after a warm-up, at 10, 50 and 200 objects per frame.

Camera motion (`--cmc-frames`, 0 to skip): pipeline/camera_motion.py's
estimators on 640x384 frames of a panning synthetic scene (`trident synth
--camera-motion pan`), the ground-truth boxes masked as the detector's
would be; median and p99 milliseconds per frame. That cost is not inside
`update()`: the pipeline pays it in the stage before the tracker.

    .venv/bin/pip install -e '.[bench]'        # supervision==0.26.1, optional
    .venv/bin/python benchmarks/bench_trackers.py
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import numpy as np

from pipeline.contracts import Detections
from trackers.config import TrackerConfig
from trackers.factory import make_tracker

WIDTH, HEIGHT = 1920.0, 1080.0


def make_frames(n_objects: int, n_frames: int, seed: int = 0) -> list[Detections]:
    rng = np.random.default_rng(seed)
    wh = rng.uniform(20, 80, (n_objects, 2))
    xy = rng.uniform(0, 1, (n_objects, 2)) * (np.array([WIDTH, HEIGHT]) - wh)
    v = rng.normal(0, 3, (n_objects, 2))
    cls = rng.integers(0, 3, n_objects).astype(np.int32)
    frames = []
    for _ in range(n_frames):
        xy = xy + v
        # Bounce off the borders so every object stays in view.
        out = (xy < 0) | (xy + wh > np.array([WIDTH, HEIGHT]))
        v = np.where(out, -v, v)
        xy = np.clip(xy, 0, np.array([WIDTH, HEIGHT]) - wh)
        keep = rng.random(n_objects) > 0.1
        jitter = rng.normal(0, 1.5, (n_objects, 4))
        boxes = np.concatenate([xy, xy + wh], axis=1) + jitter
        scores = np.where(rng.random(n_objects) < 0.8, rng.uniform(0.6, 0.95, n_objects), rng.uniform(0.1, 0.6, n_objects))
        n_fp = max(1, n_objects // 20)
        fp_xy = rng.uniform(0, 1, (n_fp, 2)) * np.array([WIDTH - 60, HEIGHT - 60])
        fp = np.concatenate([fp_xy, fp_xy + 40], axis=1)
        b = np.concatenate([boxes[keep], fp]).astype(np.float32)
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        s = np.concatenate([scores[keep], rng.uniform(0.1, 0.5, n_fp)]).astype(np.float32)
        c = np.concatenate([cls[keep], rng.integers(0, 3, n_fp)]).astype(np.int32)
        frames.append(Detections(b, s, c))
    return frames


def time_calls(step: Callable[[int], object], n_frames: int, warmup: int) -> np.ndarray:
    times = []
    for i in range(n_frames):
        t0 = time.perf_counter_ns()
        step(i)
        t1 = time.perf_counter_ns()
        if i >= warmup:
            times.append((t1 - t0) / 1000.0)
    return np.array(times)


def bench_ours(algorithm: str, frames: list[Detections], fps: float, warmup: int) -> np.ndarray:
    tracker = make_tracker(TrackerConfig(algorithm=algorithm, fps=fps))
    return time_calls(lambda i: tracker.update(frames[i], i / fps), len(frames), warmup)


def bench_supervision(frames: list[Detections], fps: float, warmup: int) -> np.ndarray | None:
    try:
        import supervision as sv
    except ImportError:
        return None
    tracker = sv.ByteTrack(frame_rate=int(fps))
    inputs = [sv.Detections(xyxy=d.boxes.astype(np.float64), confidence=d.scores.copy(), class_id=d.class_ids.copy()) for d in frames]
    return time_calls(lambda i: tracker.update_with_detections(inputs[i]), len(frames), warmup)


def bench_cmc(n_frames: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Milliseconds per CameraMotion.step on a panning 640x384 scene, per method."""
    from pipeline.camera_motion import METHODS, CameraMotion
    from training.synthetic.scene import VideoScene

    scene = VideoScene(640, 384, n_frames, np.random.default_rng(seed), camera_motion="pan")
    frames = [(f.image, np.array([i.box for i in f.instances], np.float64).reshape(-1, 4)) for f in scene.render()]
    out = {}
    for method in METHODS:
        cm = CameraMotion(method)
        times = []
        for image, boxes in frames:
            t0 = time.perf_counter_ns()
            cm.step(image, boxes)
            times.append((time.perf_counter_ns() - t0) / 1e6)
        out[method] = np.array(times[1:])  # the first frame has nothing to compare with
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--frames", type=int, default=600, help="timed calls per tracker (plus warm-up)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--cmc-frames", type=int, default=120, help="frames for the camera-motion timing (0: skip)")
    ap.add_argument("--json", default=None, help="write the numbers here too")
    args = ap.parse_args(argv)

    results: dict[str, dict[str, dict[str, float]]] = {}
    print(f"{'objects':>8} {'tracker':<14} {'median us':>10} {'p99 us':>10}")
    for n in args.objects:
        frames = make_frames(n, args.frames + args.warmup)
        runs = {
            "sort": bench_ours("sort", frames, 30.0, args.warmup),
            "bytetrack": bench_ours("bytetrack", frames, 30.0, args.warmup),
            "ocsort": bench_ours("ocsort", frames, 30.0, args.warmup),
            "sv.ByteTrack": bench_supervision(frames, 30.0, args.warmup),
        }
        for name, t in runs.items():
            if t is None:
                print(f"{n:>8} {name:<14} {'(supervision not installed: pip install -e .[bench])':>22}")
                continue
            med, p99 = float(np.median(t)), float(np.percentile(t, 99))
            results.setdefault(str(n), {})[name] = {"median_us": med, "p99_us": p99}
            print(f"{n:>8} {name:<14} {med:>10.1f} {p99:>10.1f}")
    if args.cmc_frames > 0:
        print(f"\n{'cmc':>8} {'frame':<14} {'median ms':>10} {'p99 ms':>10}")
        for method, t in bench_cmc(args.cmc_frames).items():
            med, p99 = float(np.median(t)), float(np.percentile(t, 99))
            results.setdefault("cmc", {})[method] = {"median_ms": med, "p99_ms": p99}
            print(f"{method:>8} {'640x384':<14} {med:>10.2f} {p99:>10.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
