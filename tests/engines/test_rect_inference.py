"""Rect inference: a dynamic-height/width export run at the frame's own multiple-of-32 size.

The unit tests of `batch_input_hw` and the spec field need nothing; the rest
export the tiny 64x96 model (a frame of 4:3 aspect fits it as 64x96 -> 64x96,
a square one as 64x64) and check that every runtime accepts the smaller size
and gives the eager model's numbers there.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from engines.loader import load_engine
from engines.preprocess import batch_input_hw, letterbox_batch
from engines.spec import ModelSpec
from pipeline.errors import TridentError
from tests.engines.helpers import INPUT_HW, tiny_model

RECT = ModelSpec(input_hw=(384, 640), class_names=("person",), dynamic_hw=True)


@pytest.mark.parametrize(
    "frames, want",
    [
        ([(576, 768)], (384, 512)),  # vtest.avi, 4:3: 384x512 of content, nothing to pad
        ([(384, 640)], (384, 640)),  # the synthetic clips: the nominal size already
        ([(1080, 1920)], (384, 640)),  # 16:9 -> 360x640 of content, padded up to 384
        ([(640, 480)], (384, 288)),  # a portrait 480x640 camera: 384x288 (9 x 32)
        ([(576, 768), (1080, 1920)], (384, 640)),  # one tensor per batch: the element-wise max
        ([(640, 480), (576, 768)], (384, 512)),
        ([(100, 3000)], (32, 640)),  # a thin strip: 21 rows of content, one row of cells
    ],
)
def test_batch_input_hw_pads_the_content_only_to_the_next_multiple_of_32(frames, want):
    assert batch_input_hw(frames, RECT) == want


def test_batch_input_hw_keeps_the_nominal_size_for_fixed_and_stretch_models():
    assert batch_input_hw([(576, 768)], replace(RECT, dynamic_hw=False)) == (384, 640)
    assert batch_input_hw([(576, 768)], replace(RECT, resize="stretch")) == (384, 640)
    with pytest.raises(TridentError, match="no frames"):
        batch_input_hw([], RECT)
    with pytest.raises(TridentError, match="frame size must be positive"):
        batch_input_hw([(0, 640)], RECT)


def test_rect_letterbox_records_carry_the_batch_size_and_the_nominal_scale():
    frame = np.zeros((576, 768, 3), np.uint8)
    images, (lb,) = letterbox_batch([frame], batch_input_hw([frame.shape[:2]], RECT))
    assert images.shape == (1, 3, 384, 512) and lb.input_hw == (384, 512)
    assert (lb.scale, lb.pad_x, lb.pad_y) == (384 / 576, 0.0, 0.0)
    box = np.array([[10.0, 20.0, 300.0, 200.0]], np.float32)
    np.testing.assert_allclose(lb.boxes_to_frame(lb.boxes_to_input(box)), box, atol=1e-4)


def test_the_spec_field_round_trips_and_older_specs_load_as_fixed():
    assert ModelSpec.from_json(RECT.to_json()).dynamic_hw is True
    old = json.loads(RECT.to_json())
    del old["dynamic_hw"]  # a file written before the field existed
    assert ModelSpec.from_json(json.dumps(old)).dynamic_hw is False
    with pytest.raises(TridentError, match="dynamic_hw must be true or false"):
        ModelSpec.from_json(json.dumps({**old, "dynamic_hw": "yes"}))
    assert RECT.accepts_hw((384, 512)) and RECT.accepts_hw((32, 32)) and not RECT.accepts_hw((416, 640))
    assert not RECT.accepts_hw((384, 500)) and not replace(RECT, dynamic_hw=False).accepts_hw((384, 512))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from training.export import export_onnx

    tmp = tmp_path_factory.mktemp("rect")
    model, cfg = tiny_model()
    dynamic = export_onnx(model, cfg, tmp / "dynamic.onnx", batch_range=(1, 4))
    fixed = export_onnx(model, cfg, tmp / "fixed.onnx", batch_range=(1, 4), dynamic_hw=False)
    return model, dynamic, fixed


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_export_names_dynamic_height_width_axes_and_says_so_in_the_spec(exports):
    _, dynamic, fixed = exports
    graph = onnx.load(str(dynamic)).graph
    assert _dims(graph.input[0]) == ["batch", 3, "height", "width"]
    outs = {o.name: _dims(o) for o in graph.output}
    assert outs["boxes"][:2] == outs["scores"][:2] == outs["mask_coeffs"][:2] == ["batch", "anchors"]
    assert outs["protos"][2:] == outs["sem_logits"][2:] == ["height_4", "width_4"]
    assert load_engine(dynamic, device="cpu").spec.dynamic_hw is True
    assert _dims(onnx.load(str(fixed)).graph.input[0]) == ["batch", 3, *INPUT_HW]
    assert load_engine(fixed, device="cpu").spec.dynamic_hw is False


def test_a_smaller_input_gives_the_eager_models_outputs_at_that_size(exports):
    model, dynamic, fixed = exports
    engine = load_engine(dynamic, device="cpu")
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64), dtype=np.uint8)
    got = engine.infer(images)
    with torch.inference_mode():
        ref = model.export_forward(torch.from_numpy(images))
    assert got.boxes.shape == (2, 8 * 8 + 4 * 4 + 2 * 2, 4)  # the anchor grid follows the input
    for name, want in zip(model.output_names, ref):
        torch.testing.assert_close(torch.as_tensor(getattr(got, name)), want, rtol=1e-4, atol=2e-3)
    with pytest.raises(TridentError, match="images are 64x64 but the engine was built for 64x96"):
        load_engine(fixed, device="cpu").infer(images)


def test_the_fixed_and_dynamic_exports_agree_at_the_nominal_size(exports):
    _, dynamic, fixed = exports
    images = np.random.default_rng(1).integers(0, 256, (1, 3, *INPUT_HW), dtype=np.uint8)
    a, b = load_engine(dynamic, device="cpu").infer(images), load_engine(fixed, device="cpu").infer(images)
    for name in ("boxes", "scores", "mask_coeffs", "protos", "sem_logits"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_openvino_compiles_each_input_size_once_and_matches_onnx_runtime(exports):
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install 'trident-vision[openvino]')")
    from engines.openvino_engine import MAX_COMPILED, OpenVinoEngine

    _, dynamic, _ = exports
    ov_engine, ort_engine = OpenVinoEngine(dynamic, threads=1), load_engine(dynamic, device="cpu")
    for hw in ((64, 64), INPUT_HW, (64, 64), (32, 96)):
        images = np.random.default_rng(hw[1]).integers(0, 256, (1, 3, *hw), dtype=np.uint8)
        a, b = ov_engine.infer(images), ort_engine.infer(images)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=2e-2, err_msg=str(hw))
        np.testing.assert_allclose(a.sem_logits, b.sem_logits, atol=2e-3, err_msg=str(hw))
    assert list(ov_engine._requests) == [(1, *INPUT_HW), (1, 64, 64), (1, 32, 96)]  # the warm-up's, then in use order
    for i in range(MAX_COMPILED + 2):  # a bounded cache: the least recently used shape goes
        shape = (1 + i % 4, 32 * (1 + i // 4 % 2), 32 * (1 + i // 8 % 3))
        ov_engine._keep(shape, ov_engine._compile(shape))
    assert len(ov_engine._requests) == MAX_COMPILED


def test_tensorrt_plans_and_triton_models_stay_at_the_nominal_size(exports, tmp_path):
    from engines.tensorrt_build import BuildConfig, plan_spec
    from engines.triton_repo import write_repository

    _, dynamic, _ = exports
    spec = load_engine(dynamic, device="cpu").spec
    assert plan_spec(spec, BuildConfig(precision="fp32"), "m.onnx").dynamic_hw is False
    folder = write_repository(dynamic, tmp_path / "repo")
    served = onnx.load(str(folder / "1" / "model.onnx"))
    assert _dims(served.graph.input[0]) == ["batch", 3, *INPUT_HW]  # pinned: the server plans for one shape
    meta = {p.key: p.value for p in served.metadata_props}
    assert ModelSpec.from_json(meta["trident.spec"]).dynamic_hw is False
    assert '\\"dynamic_hw\\": false' in (folder / "config.pbtxt").read_text()


def test_export_cli_writes_a_dynamic_graph_unless_asked_for_a_fixed_one(tmp_path, capsys):
    from pipeline.cli import main
    from tests.engines.helpers import save_tiny_checkpoint

    weights = save_tiny_checkpoint(tmp_path / "w.pt")
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "d.onnx")]) == 0
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "f.onnx"), "--fixed-hw"]) == 0
    assert load_engine(tmp_path / "d.onnx", device="cpu").spec.dynamic_hw is True
    assert load_engine(tmp_path / "f.onnx", device="cpu").spec.dynamic_hw is False
    assert _dims(onnx.load(str(tmp_path / "f.onnx")).graph.input[0]) == ["batch", 3, *INPUT_HW]
