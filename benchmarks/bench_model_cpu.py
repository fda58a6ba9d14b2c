"""CPU cost of Trident's model vs Ultralytics YOLOv8n-seg: parameters and eager forward latency.

    python benchmarks/bench_model_cpu.py [--size n] [--runs 30] [--warmup 5] [--threads 2]

Both networks get random weights (no download). Latency is the median of
`--runs` single-image forwards at 384x640 under torch.inference_mode, after
`--warmup` runs, with the models measured round-robin so a noisy neighbour on
a shared machine slows both alike. Rows are given as built (BatchNorm
separate) and BN-fused (what an inference runtime sees; Ultralytics fuses
before predicting). Trident's forward includes its uint8 -> float
normalisation and box decoding; YOLOv8's takes a ready float tensor.

Ultralytics is a benchmark-only extra (`pip install ultralytics`); without it
only Trident's rows are printed. Its yaml builds the architecture locally;
nothing of its code is copied into Trident (AGPL).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.model import ModelConfig, build_model  # noqa: E402

Forward = Callable[[], object]


def _trident(size: str, hw: tuple[int, int]) -> tuple[torch.nn.Module, Forward, Forward]:
    model = build_model(ModelConfig(size=size, input_hw=hw)).eval()
    fused = copy.deepcopy(model).fuse()
    images = torch.randint(0, 256, (1, 3, *hw), dtype=torch.uint8)
    return model, lambda: model.export_forward(images), lambda: fused.export_forward(images)


def _yolov8n_seg(hw: tuple[int, int]) -> tuple[torch.nn.Module, Forward, Forward] | None:
    os.environ.setdefault("YOLO_OFFLINE", "1")  # never phone home from a benchmark
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        from ultralytics import YOLO
    except ImportError:
        return None
    model = YOLO("yolov8n-seg.yaml").model.eval()
    fused = copy.deepcopy(model).fuse(verbose=False)
    images = torch.rand(1, 3, *hw)
    return model, lambda: model(images), lambda: fused(images)


def _measure(forwards: dict[str, Forward], runs: int, warmup: int) -> dict[str, float]:
    """Median milliseconds per forward, interleaving the candidates run by run."""
    times: dict[str, list[float]] = {name: [] for name in forwards}
    with torch.inference_mode():
        for fn in forwards.values():
            for _ in range(warmup):
                fn()
        for _ in range(runs):
            for name, fn in forwards.items():
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="n", choices=("n", "s", "m"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hw = (args.height, args.width)

    models: dict[str, torch.nn.Module] = {}
    forwards: dict[str, Forward] = {}
    ours = f"trident-{args.size} (det+inst+sem)"
    models[ours], forwards[ours], forwards[ours + " fused"] = _trident(args.size, hw)
    yolo = _yolov8n_seg(hw)
    if yolo is None:
        print("ultralytics is not installed; `pip install ultralytics` to add the YOLOv8n-seg rows")
    else:
        models["yolov8n-seg"], forwards["yolov8n-seg"], forwards["yolov8n-seg fused"] = yolo

    ms = _measure(forwards, args.runs, args.warmup)
    print(f"torch {torch.__version__}, {args.threads} threads, batch 1, {hw[0]}x{hw[1]}, "
          f"median of {args.runs} runs after {args.warmup} warm-up")
    print(f"{'model':<32} {'params':>10} {'eager ms':>10} {'fused ms':>10}")
    for name, model in models.items():
        print(f"{name:<32} {_params(model) / 1e6:>9.3f}M {ms[name]:>10.1f} {ms[name + ' fused']:>10.1f}")
    if yolo is not None:
        ratio = ms[ours + " fused"] / ms["yolov8n-seg fused"]
        print(f"trident-{args.size} / yolov8n-seg latency (fused): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
