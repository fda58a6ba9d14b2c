"""Box-local instance masks against full-frame ones, and the post-process at a few and many detections.

    python benchmarks/bench_masks.py                      # masks: memory and COCO RLE time
    python benchmarks/bench_masks.py --model /tmp/m.onnx  # ...and postprocess() at ~5 and ~50 detections

Part 1 builds 100 instance masks on a 1920x1080 frame (seeded boxes 30-300 px
wide, 60-450 px high, smooth blob shapes as a mask head gives) and prints,
side by side, what they hold and how long COCO RLE of all of them takes:
`InstanceMasks` (crops + `rle()`) and the old path (a dense bool[N,H,W] and
`pycocotools.mask.encode` of it). The two RLE lists are checked equal.

Part 2 (with --model, an ONNX exported by `trident export`) runs the network
once per synthetic street frame with ONNX Runtime, then times only
`engines.postprocess.postprocess` on those outputs, with score thresholds
picked so that about 5 and about 50 detections survive.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.bench import cpu_description  # noqa: E402


def blobs(n: int, frame_hw: tuple[int, int], seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """n smooth, star-shaped blobs filling seeded boxes (what a prototype mask head produces)."""
    rng = np.random.default_rng(seed)
    h, w = frame_hw
    ws, hs = rng.integers(30, 301, n), rng.integers(60, 451, n)
    x0, y0 = rng.integers(0, w - ws + 1), rng.integers(0, h - hs + 1)
    crops = []
    for bw, bh in zip(ws.tolist(), hs.tolist()):
        yy, xx = np.mgrid[:bh, :bw]
        dy, dx = (yy + 0.5) / (bh / 2) - 1, (xx + 0.5) / (bw / 2) - 1
        angle = np.arctan2(dy, dx)
        radius = 0.85 + 0.1 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.05 * np.sin(7 * angle + rng.uniform(0, 6))
        crops.append(dx * dx + dy * dy <= radius * radius)
    return crops, np.stack([x0, y0, x0 + ws, y0 + hs], 1).astype(np.int32)


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def bench_masks(n: int, frame_hw: tuple[int, int], repeats: int) -> None:
    from pycocotools import mask as mask_utils

    from pipeline.masks import InstanceMasks

    crops, boxes = blobs(n, frame_hw, seed=0)
    masks = InstanceMasks(tuple(crops), boxes, frame_hw)
    dense = masks.dense()

    def old_rle() -> list[dict]:  # what Detections.masks_rle() did with bool[N,H,W] masks
        encoded = mask_utils.encode(np.asfortranarray(dense.transpose(1, 2, 0).astype(np.uint8)))
        return [{"size": [int(s) for s in e["size"]], "counts": e["counts"].decode("ascii")} for e in encoded]

    if masks.rle() != old_rle():
        raise SystemExit("InstanceMasks.rle() differs from pycocotools.mask.encode of the dense masks")
    new_ms = median_ms(masks.rle, repeats)
    old_ms = median_ms(old_rle, max(3, repeats // 10))
    h, w = frame_hw
    print(f"{n} instance masks on a {w}x{h} frame (mean box {np.mean(boxes[:, 2] - boxes[:, 0]):.0f}x{np.mean(boxes[:, 3] - boxes[:, 1]):.0f} px)")
    print(f"{'':<34}{'masks MB':>10}{'RLE ms':>10}")
    print(f"{'InstanceMasks (crops), rle()':<34}{masks.nbytes / 1e6:>10.2f}{new_ms:>10.2f}")
    print(f"{'dense bool[N,H,W], mask.encode':<34}{dense.nbytes / 1e6:>10.2f}{old_ms:>10.2f}")
    print(f"RLE outputs identical; {dense.nbytes / masks.nbytes:.0f}x less memory, {old_ms / new_ms:.0f}x faster RLE")


def bench_postprocess(model: str, frame_hw: tuple[int, int], frames: int, repeats: int, targets: tuple[int, ...]) -> None:
    import onnxruntime as ort
    import torch

    from engines.postprocess import PostprocessConfig, RawOutputs, postprocess
    from engines.preprocess import letterbox_batch
    from engines.spec import SPEC_METADATA_KEY, ModelSpec
    from training.synthetic.scene import VideoScene

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    spec = ModelSpec.from_json(session.get_modelmeta().custom_metadata_map[SPEC_METADATA_KEY], where=model)
    names = [o.name for o in session.get_outputs()]
    scene = VideoScene(frame_hw[1], frame_hw[0], frames, np.random.default_rng(0))
    inputs = []
    for f in scene.render():
        images, lbs = letterbox_batch([f.image], spec.input_hw)
        inputs.append((RawOutputs.from_sequence(names, session.run(None, {session.get_inputs()[0].name: images})), lbs))

    def mean_count(thr: float) -> float:
        cfg = PostprocessConfig(score_threshold=thr)
        return float(np.mean([len(postprocess(raw, spec, lbs, cfg)[0][0]) for raw, lbs in inputs]))

    sweep = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.07, 0.05, 0.04, 0.03, 0.025, 0.02, 0.015, 0.01, 0.005, 0.002, 0.001]
    counts = {thr: mean_count(thr) for thr in sweep}
    print("detections per frame by score_threshold:", {t: round(c, 1) for t, c in counts.items()})
    print(f"\npostprocess() on {len(inputs)} synthetic {frame_hw[1]}x{frame_hw[0]} frames, input {spec.input_hw[1]}x{spec.input_hw[0]}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'score_threshold':>16}{'detections':>12}{'p50 ms':>10}{'masks KB':>10}")
    for target in targets:
        thr = min(sweep, key=lambda t: abs(counts[t] - target))
        cfg = PostprocessConfig(score_threshold=thr)
        times, held = [], []
        for _ in range(repeats):
            for raw, lbs in inputs:
                t = time.perf_counter()
                dets, _ = postprocess(raw, spec, lbs, cfg)[0]
                times.append(time.perf_counter() - t)
                held.append(0 if dets.masks is None else dets.masks.nbytes)
        print(f"{thr:>16g}{counts[thr]:>12.1f}{statistics.median(times) * 1e3:>10.2f}{np.mean(held) / 1e3:>10.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="ONNX from `trident export`; times postprocess() when given")
    p.add_argument("--instances", type=int, default=100)
    p.add_argument("--frame-size", type=int, nargs=2, metavar=("H", "W"), default=(1080, 1920))
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--frames", type=int, default=8, help="synthetic frames for the post-process part")
    p.add_argument("--torch-threads", type=int, default=1, help="BLAS and torch threads for postprocess(), as `trident run` sets them "
                   "(0: the libraries' defaults); on a small shared machine more threads mostly measure contention")
    args = p.parse_args()
    if args.model and args.torch_threads > 0:
        import torch  # noqa: F401  (loaded first, so the limit covers it too)

        from pipeline.cpu_budget import limit_postprocess_threads

        limit_postprocess_threads(args.torch_threads)
    print(f"CPU: {cpu_description()}, {platform.python_implementation()} {platform.python_version()}")
    bench_masks(args.instances, tuple(args.frame_size), args.repeats)
    if args.model:
        bench_postprocess(args.model, tuple(args.frame_size), args.frames, max(3, args.repeats // 6), (5, 50))


if __name__ == "__main__":
    main()
