"""Rect inference: what a dynamic-height/width export costs at the nominal size, and what it saves on a 4:3 camera.

    python benchmarks/bench_rect.py [--weights pipeline/assets/trident_n_synth.pt] [--runs 40] [--threads 1 2]
                                    [--video /usr/share/doc/opencv-doc/examples/data/vtest.avi] [--no-openvino]

Exports the checkpoint twice into a temporary folder, once with a fixed
384x640 input (`export_onnx(dynamic_hw=False)`, the graph TensorRT and Triton
get) and once with dynamic height/width (the default), then times the
network alone (`engine.infer`, batch 1) through the project's own engines,
ONNX Runtime and OpenVINO, with their pipeline settings:

    fixed   @ 384x640    the fixed export, every frame letterboxed to the nominal size
    --old   @ 384x640    optionally, another fixed file (an export made before rect inference)
    dynamic @ 384x640    the new export at the same size: must not be slower
    dynamic @ 384x512    the new export at the size a 768x576 camera gets (batch_input_hw)

All configurations of one runtime and thread count are run in turn, round by
round, so they see the same machine load; the median of `--runs` rounds is
printed. The frame is a real one from `--video` (the vtest.avi clip of
opencv-doc by default; the bundled demo clip when that is absent).
It also prints the node count of ONNX Runtime's optimised graph of each
export, which shows whether the shape arithmetic of the dynamic graph (the
anchor grid) survives optimisation at a fixed size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def optimised_nodes(path: Path) -> int:
    """Nodes of ONNX Runtime's optimised graph of `path` (what actually runs)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return len(onnx.load(opts.optimized_model_filepath).graph.node)


def frame_inputs(video: Path, spec) -> dict[tuple[int, int], np.ndarray]:
    """One real frame letterboxed at each size this benchmark times."""
    from engines.preprocess import batch_input_hw, letterbox_batch
    from pipeline.bench_command import video_frames

    frame = video_frames(video, 1)[0]
    rect = batch_input_hw([frame.shape[:2]], spec)
    print(f"frame {frame.shape[1]}x{frame.shape[0]} from {video.name}: nominal input {spec.input_hw[0]}x{spec.input_hw[1]}, rect input {rect[0]}x{rect[1]}")
    sizes = {tuple(spec.input_hw), (384, 512), rect}
    return {hw: letterbox_batch([frame], hw)[0] for hw in sorted(sizes, reverse=True)}


def time_round_robin(runs: dict[str, callable], rounds: int, warmup: int = 5) -> dict[str, float]:
    """Median ms of each callable, run in turn round by round (the same load for all)."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(warmup + rounds):
        for k in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
            t0 = time.perf_counter()
            runs[k]()
            if r >= warmup:
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_runtime(name: str, load, fixed: Path, dynamic: Path, inputs: dict, threads: list[int], rounds: int, old: Path | None = None) -> None:
    for t in threads:
        engines = {"fixed": load(fixed, t), "dynamic": load(dynamic, t)}
        if old is not None:
            engines["old"] = load(old, t)
        nominal = tuple(engines["fixed"].spec.input_hw)
        runs = {}
        for hw, images in inputs.items():
            label = f"{hw[0]}x{hw[1]}"
            if hw == nominal:
                if old is not None:
                    runs[f"--old   @ {label}"] = lambda e=engines["old"], x=images: e.infer(x)
                runs[f"fixed   @ {label}"] = lambda e=engines["fixed"], x=images: e.infer(x)
            runs[f"dynamic @ {label}"] = lambda e=engines["dynamic"], x=images: e.infer(x)
        for run in runs.values():  # OpenVINO compiles a size on first use: not part of the timing
            run()
        medians = time_round_robin(runs, rounds)
        base = medians[f"fixed   @ {nominal[0]}x{nominal[1]}"]
        print(f"\n{name}, {t} thread{'s' if t > 1 else ''}, median of {rounds} runs (batch 1, network only)")
        for k, ms in medians.items():
            print(f"  {k:<20} {ms:7.2f} ms   {ms / base:5.3f}x fixed@nominal")
        for e in engines.values():
            e.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(ROOT / "pipeline" / "assets" / "trident_n_synth.pt"))
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--video", default=None)
    ap.add_argument("--no-openvino", action="store_true")
    ap.add_argument("--old", default=None, help="also time this fixed-size ONNX at the nominal size (e.g. an export made before rect inference)")
    args = ap.parse_args()

    from engines.onnxruntime_engine import OnnxRuntimeEngine
    from engines.spec import read_onnx_spec
    from training.export import export_checkpoint

    video = Path(args.video) if args.video else (VTEST if VTEST.exists() else ROOT / "pipeline" / "assets" / "demo_clip.mp4")
    with tempfile.TemporaryDirectory() as tmp:
        fixed = export_checkpoint(args.weights, Path(tmp) / "fixed.onnx", batch_range=(1, 8), dynamic_hw=False)
        dynamic = export_checkpoint(args.weights, Path(tmp) / "dynamic.onnx", batch_range=(1, 8), dynamic_hw=True)
        old = Path(args.old) if args.old else None
        counts = f"fixed {optimised_nodes(fixed)}, dynamic {optimised_nodes(dynamic)}" + (f", --old {optimised_nodes(old)}" if old else "")
        print(f"ONNX Runtime optimised graph nodes: {counts}")
        inputs = frame_inputs(video, read_onnx_spec(dynamic))
        bench_runtime("ONNX Runtime (CPU EP)", lambda p, t: OnnxRuntimeEngine(p, device="cpu", threads=t), fixed, dynamic, inputs, args.threads, args.runs, old)
        if not args.no_openvino:
            try:
                from engines.openvino_engine import OpenVinoEngine
            except ImportError:
                print("\nOpenVINO not installed: pip install 'trident-vision[openvino]' to time it too")
            else:
                bench_runtime("OpenVINO (CPU)", lambda p, t: OpenVinoEngine(p, device="CPU", threads=t), fixed, dynamic, inputs, args.threads, args.runs, old)


if __name__ == "__main__":
    main()
