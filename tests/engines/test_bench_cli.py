"""`trident bench` and `trident export` from the command line."""

from __future__ import annotations

import json

import pytest

from engines.bench import cpu_description
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
    assert text.splitlines()[0] == f"cpu: {data['cpu']}" and data["cpu"] == cpu_description()


@pytest.mark.parametrize(
    "flags, units",
    [
        ("fpu sse2 avx2 avx512f avx512_vnni amx_tile amx_int8", "(AMX, AVX-512 VNNI)"),
        ("fpu sse2 avx2 fma", "(AVX2)"),
        ("fpu sse2", "(no AVX2)"),
    ],
)
def test_cpu_description_names_the_model_and_the_widest_vector_units(tmp_path, flags, units):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    text = cpu_description(info)
    assert text.startswith("AMD EPYC 7B13, ") and text.endswith(units)
    assert cpu_description(tmp_path / "missing")  # no /proc (macOS): still says something


def test_bench_times_the_input_size_the_pipeline_would_use_and_prints_it(tiny_onnx_path, tmp_path, capsys):
    # square frames into the 64x96 model: rect inference runs them at 64x64, as the pipeline would
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tiny_onnx_path), "--iters", "3", "--warmup", "1", "--frame-size", "128", "128", "--json", str(out)]) == 0
    assert "input 64x64 (rect; nominal 64x96)" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["input_hw"] == [64, 64] and data["nominal_hw"] == [64, 96] and data["input_sizes"] == {"64x64": 3}
    assert main(["bench", "--model", str(tiny_onnx_path), "--iters", "2", "--warmup", "0", "--frame-size", "128", "192"]) == 0
    assert "input 64x96  batch 1" in capsys.readouterr().out  # the model's own aspect: the nominal size, said plainly


def test_bench_throughput_runs_as_many_batches_at_once_as_trident_run_keeps_in_the_engine(tiny_onnx_path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--model", str(tiny_onnx_path), "--iters", "6", "--warmup", "1", "--frame-size", "128", "192", "--threads", "1"]
    assert main([*args, "--concurrent", "2", "--json", str(out)]) == 0
    assert "with 2 batches at once (as `trident run` runs this engine; one at a time:" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["concurrent"] == 2 and data["images_per_s"] > 0 and data["serial_images_per_s"] > 0
    assert main([*args, "--concurrent", "1", "--json", str(out)]) == 0
    assert "batches at once" not in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["concurrent"] == 1 and data["images_per_s"] == data["serial_images_per_s"]


def test_bench_refuses_a_runtime_that_does_not_match_the_file(tiny_onnx_path, capsys):
    assert main(["bench", "--model", str(tiny_onnx_path), "--engine", "tensorrt"]) == 2
    assert "--engine tensorrt cannot run tiny.onnx" in capsys.readouterr().err


def test_export_cli_writes_an_onnx_that_loads(tmp_path, capsys):
    weights = save_tiny_checkpoint(tmp_path / "w.pt")
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "m.onnx"), "--batch-range", "1", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    from engines.loader import load_engine

    assert load_engine(tmp_path / "m.onnx", device="cpu").spec.batch_range == (1, 1, 2)
    assert main(["export", "--weights", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "missing.pt" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_onnx_path(tmp_path_factory):
    from tests.engines.helpers import export_tiny_model

    return export_tiny_model(tmp_path_factory.mktemp("bench"))


def test_int8_export_runs_and_stays_close_to_fp32(tmp_path, capsys):
    import numpy as np

    from engines.loader import load_engine
    from training.synthetic.scene import sample_frames
    from engines.preprocess import letterbox_batch

    weights = save_tiny_checkpoint(tmp_path / "w.pt")
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "f.onnx")]) == 0
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "q.onnx"), "--int8", "--calib-images", "8", "--imgsz", "64", "96"]) == 0
    fp32, int8 = load_engine(tmp_path / "f.onnx", device="cpu"), load_engine(tmp_path / "q.onnx", device="cpu")
    assert int8.spec.precision == "int8" and not (tmp_path / "q.fp32.onnx").exists()
    images, _ = letterbox_batch(sample_frames((64, 96), 2, seed=1), (64, 96))
    a, b = fp32.infer(images), int8.infer(images)
    # quantization noise, not a different network: semantic labels mostly agree, boxes move a few pixels
    agree = (np.asarray(a.sem_logits).argmax(1) == np.asarray(b.sem_logits).argmax(1)).mean()
    assert agree > 0.8
    assert np.median(np.abs(np.asarray(a.boxes) - np.asarray(b.boxes))) < 4.0
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "x.onnx"), "--int8", "--fp16"]) == 2


def test_int8_export_with_an_unreadable_calibration_image_names_it_and_writes_nothing(tmp_path, capsys):
    from pipeline.cli import main
    from pipeline.commands import BUNDLED_WEIGHTS, asset

    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "m-int8.onnx"
    rc = main(["export", "--weights", str(asset(BUNDLED_WEIGHTS)), "--out", str(out), "--int8", "--calib-data", str(calib)])
    assert rc != 0
    err = capsys.readouterr().err
    assert "calibration image" in err and "broken.jpg" in err and "cannot be read" in err
    assert list(tmp_path.glob("*.onnx")) == []
