"""ONNX export and the engines: torch eager and ONNX Runtime agree, raw and post-processed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from engines.loader import load_engine
from training.export import export_onnx
from engines.postprocess import PostprocessConfig, postprocess
from engines.preprocess import letterbox_batch
from engines.spec import SPEC_METADATA_KEY, ModelSpec
from pipeline.errors import TridentError
from tests.engines.helpers import INPUT_HW, export_tiny_model, save_tiny_checkpoint, tiny_model

# Random-weight nets give many low-confidence boxes; a low threshold makes NMS and masks do real work.
POST = PostprocessConfig(score_threshold=0.3, max_detections=50)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    return export_tiny_model(tmp), save_tiny_checkpoint(tmp / "tiny.pt")


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    from training.synthetic.scene import VideoScene

    scene = VideoScene(192, 128, n, np.random.default_rng(seed))
    return [f.image for f in scene.render()]


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from torchvision.ops import box_iou

    return box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def test_onnx_file_is_valid_and_carries_its_spec(exported):
    onnx_path, _ = exported
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    spec = ModelSpec.from_json(meta[SPEC_METADATA_KEY])
    assert spec.input_hw == INPUT_HW and spec.output_names == ("boxes", "scores", "mask_coeffs", "protos", "sem_logits")
    assert spec.class_names == ("person", "car", "truck", "ball") and len(spec.sem_class_names) == 7
    assert spec.batch_range == (1, 1, 4)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic batch


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_torch_eager(exported, batch):
    onnx_path, weights = exported
    images, lbs = letterbox_batch(_frames(batch), INPUT_HW)
    torch_engine = load_engine(weights, device="cpu")
    ort_engine = load_engine(onnx_path, device="cpu")
    ref, got = torch_engine.infer(images), ort_engine.infer(images)
    for name in ort_engine.output_names:
        # fused BN and ORT's kernels reorder float sums: 1e-4 relative on O(100) pixel boxes
        torch.testing.assert_close(torch.as_tensor(getattr(got, name)), getattr(ref, name).float(), rtol=1e-4, atol=2e-3)
    ref_res = postprocess(ref, torch_engine.spec, lbs, POST)
    got_res = postprocess(got, ort_engine.spec, lbs, POST)
    for (rd, rs), (gd, gs) in zip(ref_res, got_res):
        assert len(rd) == len(gd) > 0
        np.testing.assert_array_equal(rd.class_ids, gd.class_ids)
        assert np.diag(_box_iou(rd.boxes, gd.boxes)).min() > 0.99
        assert (rd.masks.dense() != gd.masks.dense()).mean() < 1e-3
        assert (rs.labels == gs.labels).mean() > 0.999


def test_export_with_subset_of_heads_lists_only_their_outputs(tmp_path):
    path = export_tiny_model(tmp_path, heads=("sem",))
    engine = load_engine(path, device="cpu")
    assert engine.output_names == ["sem_logits"] and engine.spec.class_names == ()
    images, lbs = letterbox_batch(_frames(1), INPUT_HW)
    (dets, sem), = postprocess(engine.infer(images), engine.spec, lbs)
    assert len(dets) == 0 and sem.labels.shape == (128, 192)


def test_truncated_onnx_is_one_clear_error(exported, tmp_path):
    onnx_path, _ = exported
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(onnx_path.read_bytes()[: 5000])
    with pytest.raises(TridentError, match="broken.onnx is not a loadable ONNX model .* re-export"):
        load_engine(broken, device="cpu")


def test_onnx_without_spec_is_refused(tmp_path):
    model, _ = tiny_model(("sem",))
    from training.model.multitask import ExportWrapper

    path = tmp_path / "plain.onnx"
    torch.onnx.export(ExportWrapper(model), (torch.zeros(1, 3, *INPUT_HW, dtype=torch.uint8),), str(path), dynamo=False, input_names=["images"], opset_version=17)
    with pytest.raises(TridentError, match="carries no Trident model spec"):
        load_engine(path, device="cpu")


def test_wrong_input_size_dtype_and_batch_are_clear_errors(exported):
    engine = load_engine(exported[0], device="cpu")
    # a dynamic-height/width export (the default) takes multiples of 32 up to its nominal size, no more
    with pytest.raises(TridentError, match="images are 96x96 but the engine was built for multiples of 32 up to 64x96"):
        engine.infer(np.zeros((1, 3, 96, 96), np.uint8))
    with pytest.raises(TridentError, match="images are 64x80 but"):
        engine.infer(np.zeros((1, 3, 64, 80), np.uint8))
    with pytest.raises(TridentError, match="must be uint8"):
        engine.infer(np.zeros((1, 3, 64, 96), np.float32))
    with pytest.raises(TridentError, match="batch of 5 frames is outside this engine's range 1..4"):
        engine.infer(np.zeros((5, 3, 64, 96), np.uint8))


def test_weights_with_another_class_count_are_refused(exported, tmp_path):
    from training.model.checkpoint import load_model
    from training.model.config import ModelConfig

    wanted = ModelConfig(input_hw=INPUT_HW, num_classes=3, class_names=("a", "b", "c"))
    with pytest.raises(TridentError, match="trained with 4 .* classes but the config asks for 3"):
        load_model(exported[1], config=wanted)


def test_export_rejects_bad_sizes(tmp_path):
    model, cfg = tiny_model()
    with pytest.raises(TridentError, match="multiples of 32"):
        export_onnx(model, cfg, tmp_path / "x.onnx", input_hw=(100, 96))
    with pytest.raises(TridentError, match="--batch-range"):
        export_onnx(model, cfg, tmp_path / "x.onnx", batch_range=(4, 2))
    assert not (tmp_path / "x.onnx").exists()


def test_missing_runtime_names_the_package(exported, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(TridentError, match="needs the 'onnxruntime' package.*pip install onnxruntime"):
        load_engine(exported[0])


def _with_spec(src, dst, **changes):
    import json

    import onnx

    from engines.spec import SPEC_METADATA_KEY

    proto = onnx.load(str(src))
    for p in proto.metadata_props:
        if p.key == SPEC_METADATA_KEY:
            p.value = json.dumps({**json.loads(p.value), **changes})
    onnx.save(proto, str(dst))
    return dst


def test_an_onnx_whose_spec_disagrees_with_its_graph_is_refused_when_opened(exported, tmp_path):
    fewer = _with_spec(exported[0], tmp_path / "fewer.onnx", class_names=["a", "b", "c"])
    with pytest.raises(TridentError, match="fewer.onnx: output 'scores' has 4 classes but the model spec says 3; the weights and the class list disagree"):
        load_engine(fewer, device="cpu")
    sem = _with_spec(exported[0], tmp_path / "sem.onnx", sem_class_names=["bg", "road"])
    with pytest.raises(TridentError, match="output 'sem_logits' has .* semantic classes but the model spec says 2"):
        load_engine(sem, device="cpu")
    names = _with_spec(exported[0], tmp_path / "names.onnx", output_names=["boxes", "scores"])
    with pytest.raises(TridentError, match="the graph's outputs .* are not the ones its model spec names"):
        load_engine(names, device="cpu")


def test_the_torch_engine_refuses_an_unknown_device_by_name(tmp_path):
    from tests.engines.helpers import save_tiny_checkpoint

    weights = save_tiny_checkpoint(tmp_path / "w.pt")
    with pytest.raises(TridentError, match="unknown device 'gpu' for the torch engine \\(w.pt\\); use auto, cpu, cuda or cuda:N"):
        load_engine(weights, device="gpu")
