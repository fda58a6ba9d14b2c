"""`trident run` end to end on a GPU: the torch engine on CUDA, and a TensorRT engine where TensorRT exists.

Both hand CUDA tensors to the post-process, which must work where they are and
give what the CPU gives. They skip with a reason on machines without a GPU, and
run the day one is there.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from pipeline.cli import main
from pipeline.commands import BUNDLED_CLIP, BUNDLED_ONNX, BUNDLED_WEIGHTS, asset

FRAMES = 12


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _run(model, out, device: str) -> list[dict]:
    args = ["run", "--source", str(asset(BUNDLED_CLIP)), "--model", str(model), "--device", device, "--out", str(out),
            "--max-frames", str(FRAMES), "--no-progress", "--no-video"]
    assert main(args) == 0
    return [json.loads(line) for line in (out / "demo_clip.jsonl").read_text().splitlines()]


def _assert_same_detections(got: list[dict], ref: list[dict], box_tol: float) -> None:
    assert [r["frame"] for r in got] == list(range(FRAMES))
    assert sum(len(r["objects"]) for r in ref) >= FRAMES  # the clip has objects: the comparison means something
    for g, r in zip(got, ref):
        confident = lambda rec: sorted((o["class_id"], o["box"]) for o in rec["objects"] if o["score"] > 0.5)
        a, b = confident(g), confident(r)
        assert abs(len(a) - len(b)) <= 1, f"frame {g['frame']}: {len(a)} vs {len(b)} confident detections"
        for (ca, ba), (cb, bb) in zip(a, b):
            if ca == cb:
                assert max(abs(x - y) for x, y in zip(ba, bb)) < box_tol


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_run_with_the_torch_engine_on_cuda_matches_the_cpu(tmp_path):
    gpu = _run(asset(BUNDLED_WEIGHTS), tmp_path / "gpu", "cuda")
    cpu = _run(asset(BUNDLED_WEIGHTS), tmp_path / "cpu", "cpu")
    _assert_same_detections(gpu, cpu, box_tol=2.0)
    assert all("counts" in o["mask"] for r in gpu for o in r["objects"] if "mask" in o)


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT is not installed (pip install 'trident-vision[tensorrt]' on a CUDA machine)")
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_run_with_a_tensorrt_engine_matches_onnxruntime(tmp_path):
    from engines.tensorrt_build import BuildConfig, build_engine

    plan = build_engine(asset(BUNDLED_ONNX), tmp_path / "m.engine", BuildConfig(precision="fp32", batch_range=(1, 2, 4)))
    trt = _run(plan, tmp_path / "trt", "cuda")
    ort = _run(asset(BUNDLED_ONNX), tmp_path / "ort", "cpu")
    _assert_same_detections(trt, ort, box_tol=2.0)
