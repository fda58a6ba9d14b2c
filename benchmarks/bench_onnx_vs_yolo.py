"""ONNX Runtime CPU latency: Trident's n model vs YOLOv8n-seg, exported the same way, timed in one run.

    python benchmarks/bench_onnx_vs_yolo.py [--weights pipeline/assets/trident_n_synth.pt] [--runs 100]

Both graphs go through torch.onnx.export (TorchScript exporter, opset 17, BN
folded, constant folding) at 384x640, run on onnxruntime's CPU provider with
the same session options, batch 1, interleaved run by run so both see the same
machine load. YOLOv8n-seg is built from its yaml with random weights (no
download; `pip install ultralytics`, benchmark-only). Ours includes uint8
normalisation, box decoding and the semantic head inside the graph; YOLO's
graph gets float32 input already normalised.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # no busy-waiting after a run: otherwise one session's idle spinning steals the cores the other needs
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_ours(weights: str | None, out: Path) -> Path:
    from training.export import export_onnx
    from training.model.checkpoint import load_model
    from training.model.config import ModelConfig, build_model

    if weights:
        model, cfg, _ = load_model(weights)
    else:
        cfg = ModelConfig()
        model = build_model(cfg).eval()
    return export_onnx(model, cfg, out, input_hw=(384, 640), batch_range=(1, 1))


def export_yolo(out: Path) -> Path | None:
    try:
        from ultralytics import YOLO
    except ImportError:
        print("ultralytics not installed: pip install ultralytics (benchmark-only) to compare")
        return None
    net = YOLO("yolov8n-seg.yaml").model.eval()
    net.fuse()
    for m in net.modules():  # export mode: one tensor tuple out, like `yolo export` does
        if hasattr(m, "export"):
            m.export = True
        if hasattr(m, "format"):
            m.format = "onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 384, 640),), str(out), dynamo=False, opset_version=17, input_names=["images"], do_constant_folding=True)
    return out


def time_sessions(sessions: dict[str, tuple[ort.InferenceSession, np.ndarray]], runs: int, warmup: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for i in range(warmup + runs):
        for name, (sess, feed) in sessions.items():
            t0 = time.perf_counter()
            sess.run(None, {sess.get_inputs()[0].name: feed})
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {k: {"p50_ms": float(np.percentile(v, 50) * 1e3), "p90_ms": float(np.percentile(v, 90) * 1e3), "p99_ms": float(np.percentile(v, 99) * 1e3)} for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None, help="Trident checkpoint (default: random-init n model; same speed)")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = export_ours(args.weights, Path(tmp) / "trident_n.onnx")
        yolo = export_yolo(Path(tmp) / "yolov8n-seg.onnx")
        rng = np.random.default_rng(0)
        sessions = {"trident-n (det+inst+sem)": (session(ours, args.threads), rng.integers(0, 255, (1, 3, 384, 640), dtype=np.uint8))}
        if yolo is not None:
            sessions["yolov8n-seg"] = (session(yolo, args.threads), rng.random((1, 3, 384, 640), dtype=np.float32))
        sizes = {"trident-n (det+inst+sem)": ours.stat().st_size, "yolov8n-seg": yolo.stat().st_size if yolo else 0}
        result = time_sessions(sessions, args.runs, args.warmup)
    print(f"ONNX Runtime {ort.__version__} CPU, {args.threads} threads, batch 1, 384x640, {args.runs} runs (interleaved)")
    print(f"{'model':<28} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'file MB':>8}")
    for name, r in result.items():
        print(f"{name:<28} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {sizes[name] / 1e6:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
