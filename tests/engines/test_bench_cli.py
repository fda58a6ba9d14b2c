"""`trident bench` and `trident export` from the command line."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from tests.engines.helpers import save_tiny_checkpoint


def test_bench_prints_percentiles_per_stage_and_writes_json(tiny_onnx_path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tiny_onnx_path), "--batch", "2", "--iters", "5", "--warmup", "1", "--frame-size", "128", "192", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "p50 ms" in text and "throughput:" in text
    data = json.loads(out.read_text())
    assert set(data["stages"]) == {"preprocess", "infer", "postprocess", "total"}
    for stage in data["stages"].values():
        assert 0 < stage["p50_ms"] <= stage["p90_ms"] <= stage["p99_ms"]
    assert data["batch"] == 2 and data["images_per_s"] > 0


def test_bench_refuses_a_runtime_that_does_not_match_the_file(tiny_onnx_path, capsys):
    assert main(["bench", "--model", str(tiny_onnx_path), "--engine", "tensorrt"]) == 2
    assert "--engine tensorrt cannot run tiny.onnx" in capsys.readouterr().err


def test_export_cli_writes_an_onnx_that_loads(tmp_path, capsys):
    weights = save_tiny_checkpoint(tmp_path / "w.pt")
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "m.onnx"), "--batch-range", "1", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    from engines.base import load_engine

    assert load_engine(tmp_path / "m.onnx", device="cpu").spec.batch_range == (1, 1, 2)
    assert main(["export", "--weights", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "missing.pt" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_onnx_path(tmp_path_factory):
    from tests.engines.helpers import export_tiny_model

    return export_tiny_model(tmp_path_factory.mktemp("bench"))
