"""OpenVINO engine: same protocol and post-process as ONNX Runtime, parity on real frames, IR files, picking it."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

from engines.postprocess import postprocess
from engines.preprocess import letterbox_batch
from pipeline.errors import TridentError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed (pip install 'trident-vision[openvino]')")


@pytest.fixture(scope="module")
def frames():
    from pipeline.bench_command import video_frames
    from pipeline.commands import BUNDLED_CLIP, asset

    return video_frames(asset(BUNDLED_CLIP), 4)


def _models():
    from pipeline.commands import bundled_onnx

    return {"fp32": bundled_onnx(int8=False), "int8": bundled_onnx(int8=True)}


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def _both(path, frames):
    from engines.onnxruntime_engine import OnnxRuntimeEngine
    from engines.openvino_engine import OpenVinoEngine

    ort, ov = OnnxRuntimeEngine(path, device="cpu", threads=1), OpenVinoEngine(path, threads=1)
    out = []
    for frame in frames:
        batch, lbs = letterbox_batch([frame], ort.spec.input_hw)
        out.append((ort.infer(batch), ov.infer(batch), lbs))
    return ort.spec, out


def test_fp32_raw_outputs_and_detections_match_onnx_runtime(frames):
    """FP32 both (OpenVINO pinned to f32): raw outputs to 1e-3, detections to a tenth of a pixel."""
    spec, runs = _both(_models()["fp32"], frames)
    n = 0
    for ort_raw, ov_raw, lbs in runs:
        for name in spec.output_names:
            np.testing.assert_allclose(getattr(ov_raw, name), getattr(ort_raw, name), rtol=1e-3, atol=2e-3, err_msg=name)
        (d_ort, s_ort), = postprocess(ort_raw, spec, lbs)
        (d_ov, s_ov), = postprocess(ov_raw, spec, lbs)
        assert len(d_ov) == len(d_ort)
        np.testing.assert_allclose(d_ov.boxes, d_ort.boxes, atol=0.1)
        np.testing.assert_allclose(d_ov.scores, d_ort.scores, atol=1e-3)
        assert (d_ov.class_ids == d_ort.class_ids).all()
        assert (s_ov.labels == s_ort.labels).mean() >= 0.999
        if len(d_ort):
            ious = d_ov.masks.iou(d_ort.masks).diagonal()
            assert ious.min() >= 0.95, ious
        n += len(d_ort)
    assert n > 0  # the frames have objects, so the comparison compared something


def test_int8_qdq_detections_agree_with_onnx_runtime(frames):
    """The QDQ file on both runtimes' int8 kernels: rounding differs, the objects found agree."""
    spec, runs = _both(_models()["int8"], frames)
    matched = total = 0
    for ort_raw, ov_raw, lbs in runs:
        (d_ort, s_ort), = postprocess(ort_raw, spec, lbs)
        (d_ov, s_ov), = postprocess(ov_raw, spec, lbs)
        confident = d_ort.scores >= 0.5
        total += int(confident.sum())
        if confident.any() and len(d_ov):
            best = _box_iou(d_ort.boxes[confident], d_ov.boxes).max(axis=1)
            matched += int((best >= 0.9).sum())
        assert (s_ov.labels == s_ort.labels).mean() >= 0.99
    assert total > 0 and matched / total >= 0.9, (matched, total)


def test_an_ir_file_carries_the_spec_and_gives_the_onnx_outputs(frames, tmp_path):
    from engines.loader import load_engine
    from engines.openvino_engine import OpenVinoEngine, save_ir

    onnx = _models()["fp32"]
    xml = save_ir(onnx, tmp_path / "model.xml")
    from_ir, from_onnx = load_engine(xml, threads=1), OpenVinoEngine(onnx, threads=1)
    assert isinstance(from_ir, OpenVinoEngine) and from_ir.spec == from_onnx.spec
    batch, _ = letterbox_batch(frames[:2], from_ir.spec.input_hw)
    a, b = from_ir.infer(batch), from_onnx.infer(batch)
    for name in from_ir.spec.output_names:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5, err_msg=name)


def test_device_openvino_runs_an_onnx_file_on_openvino():
    from engines.loader import load_engine
    from engines.openvino_engine import OpenVinoEngine

    engine = load_engine(_models()["fp32"], device="openvino", threads=1)
    assert isinstance(engine, OpenVinoEngine) and engine.device == "cpu"


def test_two_batches_at_once_run_on_two_streams_and_give_the_serial_outputs(frames):
    from concurrent.futures import ThreadPoolExecutor

    from engines.loader import load_engine
    from engines.openvino_engine import OpenVinoEngine
    from pipeline.engine_choice import engine_options

    path = _models()["fp32"]
    serial = OpenVinoEngine(path, threads=1)
    engine = load_engine(path, device="openvino", threads=1, concurrent=2)
    assert engine.concurrent_calls == 2 and serial.concurrent_calls == 1
    batches = [letterbox_batch([f], serial.spec.input_hw)[0] for f in frames]
    expected = [serial.infer(b) for b in batches]
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(engine.infer, batches + batches))
    for want, out in zip(expected + expected, got):
        np.testing.assert_array_equal(out.boxes, want.boxes)
        np.testing.assert_array_equal(out.sem_logits, want.sem_logits)
    (pool_of_shape,) = engine._requests.values()
    assert pool_of_shape.qsize() == 2  # both requests back in the pool after the calls
    compiled = pool_of_shape.queue[0].get_compiled_model()
    assert compiled.get_property("NUM_STREAMS") == 2 and compiled.get_property("INFERENCE_NUM_THREADS") == 2
    # `trident run --device openvino` gets 2 batches at once on 2+ cores, as ONNX Runtime does
    calls = engine_options(str(path), "openvino", 0)["concurrent"]
    assert calls == engine_options(str(path), "cpu", 0)["concurrent"]
    with pytest.raises(TridentError, match="engine.concurrent must be >= 1 batch in flight, got 0"):
        OpenVinoEngine(path, concurrent=0)


def test_bad_ir_and_corrupt_files_are_one_clear_error(tmp_path):
    from engines.loader import load_engine
    from engines.openvino_engine import save_ir

    xml = save_ir(_models()["fp32"], tmp_path / "m.xml")
    xml.with_suffix(".bin").unlink()
    with pytest.raises(TridentError, match=r"m\.xml is an OpenVINO IR without its weights file m\.bin"):
        load_engine(xml)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(_models()["fp32"].read_bytes()[:5000])
    with pytest.raises(TridentError, match="broken.onnx"):
        load_engine(broken, device="openvino")
    with pytest.raises(TridentError, match="unknown device 'tpu' for OpenVINO"):
        from engines.openvino_engine import load

        load(_models()["fp32"], device="tpu")


def test_auto_measures_both_runtimes_for_int8_and_keeps_the_faster(monkeypatch):
    import pipeline.engine_choice as choice
    from engines.onnxruntime_engine import OnnxRuntimeEngine
    from engines.openvino_engine import OpenVinoEngine

    models = _models()
    assert choice.is_quantized(str(models["int8"])) and not choice.is_quantized(str(models["fp32"]))
    monkeypatch.setattr(choice, "AUTO_RUNS", 2)
    monkeypatch.setattr(choice, "AUTO_MARGIN", 1e9)  # OpenVINO "faster" by any measure
    assert isinstance(choice.load_run_engine(str(models["int8"]), "auto"), OpenVinoEngine)
    monkeypatch.setattr(choice, "AUTO_MARGIN", 0.0)  # never faster enough
    assert isinstance(choice.load_run_engine(str(models["int8"]), "auto"), OnnxRuntimeEngine)
    # FP32 is not timed: ONNX Runtime
    assert isinstance(choice.load_run_engine(str(models["fp32"]), "auto"), OnnxRuntimeEngine)


def test_a_new_batch_size_runs_as_single_images_while_it_compiles_in_the_background(frames):
    from engines.openvino_engine import OpenVinoEngine

    engine = OpenVinoEngine(_models()["fp32"], threads=1)
    batch = letterbox_batch(frames[:3], engine.spec.input_hw)[0]
    singles = [engine.infer(batch[i : i + 1]) for i in range(3)]  # (1, h, w) compiled on the caller
    h, w = engine.spec.input_hw
    gate, compile_later = threading.Event(), engine._compile_later
    engine._compile_later = lambda shape: (gate.wait(60), compile_later(shape))  # held until the split ran
    split = engine.infer(batch)  # (3, h, w) not compiled yet: three single-image runs, no stall
    assert (3, h, w) in engine._compiling and (3, h, w) not in engine._requests
    worker = engine._compiling[(3, h, w)]
    gate.set()
    worker.join(timeout=60)
    assert (3, h, w) in engine._requests and not engine._compiling
    batched = engine.infer(batch)  # now on the batch-3 compile
    for name in ("boxes", "scores", "sem_logits"):
        want = np.concatenate([getattr(s, name) for s in singles])
        np.testing.assert_array_equal(getattr(split, name), want)
        np.testing.assert_allclose(getattr(batched, name), want, rtol=1e-3, atol=2e-3)


def test_close_waits_for_a_background_compile_instead_of_aborting_the_process(frames):
    from engines.openvino_engine import OpenVinoEngine

    engine = OpenVinoEngine(_models()["fp32"], threads=1)
    batch = letterbox_batch(frames[:2], engine.spec.input_hw)[0]
    engine.infer(batch[:1])
    gate, compile_later = threading.Event(), engine._compile_later
    engine._compile_later = lambda shape: (gate.wait(60), compile_later(shape))
    engine.infer(batch)  # starts the (2, h, w) compile, held by the gate
    closer = threading.Thread(target=engine.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive()  # OpenVINO's objects stay while the compile runs
    gate.set()
    closer.join(60)
    assert not closer.is_alive() and not engine._requests
