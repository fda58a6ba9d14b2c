"""Everything around TensorRT that runs without it: caches, sidecars, calibration data, refusals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.loader import load_engine
from engines.spec import ModelSpec
from engines.calibration import calibration_batches, list_calibration_images
from engines.tensorrt_build import BuildConfig, engine_cache_key
from engines.tensorrt_sidecar import check_engine_compat, read_sidecar, write_sidecar
from pipeline.errors import TridentError

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
SPEC = ModelSpec(input_hw=(64, 96), class_names=("a", "b"), batch_range=(1, 2, 4))


def _key(**over):
    args = dict(onnx_sha256="ab" * 32, trt_version="10.3.0", gpu_name="NVIDIA H100", precision="fp16", input_hw=(384, 640), batch_range=(1, 4, 8))
    args.update(over)
    return engine_cache_key(**args)


def test_engine_cache_key_changes_with_every_input_it_depends_on():
    base = _key()
    assert base == _key() and len(base) == 32
    variants = [
        _key(onnx_sha256="cd" * 32),
        _key(trt_version="10.4.0"),
        _key(gpu_name="Orin"),
        _key(precision="int8"),
        _key(input_hw=(640, 640)),
        _key(batch_range=(1, 4, 16)),
    ]
    assert len({base, *variants}) == 7


def test_sidecar_round_trips_the_spec_and_build_info(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    write_sidecar(engine, SPEC, {"tensorrt_version": "10.3.0", "gpu_name": "Orin"})
    spec, info = read_sidecar(engine)
    assert spec == SPEC and info["gpu_name"] == "Orin"
    assert (tmp_path / "m.engine.json").exists()


def test_missing_or_broken_sidecar_is_a_clear_error(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(TridentError, match="has no sidecar m.engine.json"):
        read_sidecar(engine)
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(TridentError, match="not a valid Trident engine sidecar"):
        read_sidecar(engine)


def test_engine_from_another_tensorrt_or_gpu_is_refused():
    info = {"tensorrt_version": "10.3.0", "gpu_name": "NVIDIA H100 80GB HBM3"}
    check_engine_compat(info, "10.3.0", "NVIDIA H100 80GB HBM3", "m.engine")
    with pytest.raises(TridentError, match="built with TensorRT 10.3.0 but this machine has TensorRT 10.7.0; .* rebuild"):
        check_engine_compat(info, "10.7.0", "NVIDIA H100 80GB HBM3", "m.engine")
    with pytest.raises(TridentError, match="built for GPU 'NVIDIA H100 80GB HBM3' but this machine has 'Orin'"):
        check_engine_compat(info, "10.3.0", "Orin", "m.engine")


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(precision="int4"), "--precision must be one of fp32, fp16, int8"),
        (dict(batch_range=(4, 2, 8)), "--batch-range must be MIN OPT MAX"),
        (dict(precision="int8"), "INT8 needs calibration images"),
        (dict(workspace_gb=0), "--workspace-gb must be > 0"),
    ],
)
def test_build_config_rejects_bad_options(kwargs, needle):
    with pytest.raises(TridentError, match=needle):
        BuildConfig(**kwargs)


def test_calibration_images_are_spread_and_batched_like_the_pipeline(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(10):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), rng.integers(0, 255, (32, 96, 3), dtype=np.uint8))
    files = list_calibration_images(tmp_path, limit=5)
    assert [f.name for f in files] == ["000.png", "002.png", "004.png", "007.png", "009.png"]  # spread, not the first 5
    batches = list(calibration_batches(files, (64, 96), batch=2))
    assert len(batches) == 2  # the odd image out is dropped: TensorRT wants full batches
    assert batches[0].shape == (2, 3, 64, 96) and batches[0].dtype == np.uint8
    assert (batches[0][:, :, :16] == 114).all()  # letterbox padding on top, as in the pipeline


def test_calibration_folder_errors(tmp_path):
    with pytest.raises(TridentError, match="is not a directory"):
        list_calibration_images(tmp_path / "nope", 4)
    with pytest.raises(TridentError, match="holds no images"):
        list_calibration_images(tmp_path, 4)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(TridentError, match="cannot be read"):
        list(calibration_batches([tmp_path / "bad.jpg"], (64, 96), batch=1))


@pytest.mark.skipif(HAS_TRT, reason="checks the message shown when TensorRT is absent")
def test_opening_an_engine_without_tensorrt_names_what_to_install(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(TridentError, match="needs the 'tensorrt' package.*pip install 'trident-vision\\[tensorrt\\]'"):
        load_engine(engine)


def test_load_engine_rejects_missing_files_and_unknown_suffixes(tmp_path):
    with pytest.raises(TridentError, match="does not exist"):
        load_engine(tmp_path / "model.onnx")
    (tmp_path / "model.tflite").write_bytes(b"x")
    with pytest.raises(TridentError, match="don't know how to run 'model.tflite'"):
        load_engine(tmp_path / "model.tflite")


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TRT, reason="TensorRT is not installed (pip install 'trident-vision[tensorrt]' on a CUDA machine)")
def test_tensorrt_engine_matches_onnxruntime(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")
    from engines.tensorrt_build import build_engine
    from tests.engines.helpers import export_tiny_model

    onnx_path = export_tiny_model(tmp_path)
    plan = build_engine(onnx_path, tmp_path / "m.engine", BuildConfig(precision="fp32", batch_range=(1, 2, 2)))
    images = np.random.default_rng(0).integers(0, 255, (2, 3, *SPEC.input_hw), dtype=np.uint8)
    trt_out = load_engine(plan).infer(images)
    ort_out = load_engine(onnx_path, device="cpu").infer(images)
    np.testing.assert_allclose(trt_out.boxes.cpu().numpy(), ort_out.boxes, atol=1e-2)
