"""`trident import` on tiny files with exactly the foreign layouts: boxes decoded by hand, bad input refused."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from engines.importers import import_model
from engines.spec import read_onnx_spec
from pipeline.cli import main
from pipeline.errors import TridentError
from tests.engines.foreign_models import ConstOutputs, export, points

HW = (64, 64)
A = sum(points(HW))  # 64 + 16 + 4 = 84


def _run(path, images: np.ndarray) -> dict[str, np.ndarray]:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, {"images": images})))


def _names(tmp_path, names) -> str:
    p = tmp_path / "names.txt"
    p.write_text("\n".join(names) + "\n")
    return str(p)


def _ultralytics_preds(nc: int, nm: int = 0) -> np.ndarray:
    preds = np.zeros((4 + nc + nm, A), np.float32)
    preds[:4, 5] = (10, 20, 4, 8)  # centre (10, 20), 4 wide, 8 tall
    preds[4:6, 5] = (0.9, 0.1)
    preds[:4, 80] = (50, 30, 10, 2)
    preds[4:6, 80] = (0.2, 0.7)
    if nm:
        preds[4 + nc :, 5] = np.arange(nm) / nm
    return preds


class ChannelMeans(nn.Module):
    """Constant outputs, except that output 0 at `spots` carries the mean of an input channel."""

    def __init__(self, tensors, spots):
        super().__init__()
        self.const = ConstOutputs(tensors)
        self.spots = spots  # [(index tuple into output 0 without batch, input channel)]

    def forward(self, x):
        outs = list(self.const(x))
        means = x.mean(dim=(2, 3))  # [B, 3]
        first = outs[0]
        for index, channel in self.spots:
            one = torch.zeros(first.shape[1:])
            one[index] = 1.0
            first = first + means[:, channel].reshape(-1, *([1] * one.dim())) * one
        outs[0] = first
        return tuple(outs) if len(outs) > 1 else outs[0]


def test_ultralytics_detect_boxes_become_xyxy_scores_pass_through_names_come_from_metadata(tmp_path):
    src = export(ConstOutputs([_ultralytics_preds(2)]), tmp_path / "y.onnx", HW, ["output0"], dynamic_batch=True,
                 metadata={"names": "{0: 'person', 1: 'car'}", "task": "detect"})
    spec = import_model(src, "ultralytics", tmp_path / "t.onnx")
    assert spec.class_names == ("person", "car") and spec.output_names == ("boxes", "scores")
    assert spec.batch_range == (1, 1, 8) and spec.resize == "letterbox" and spec.input_hw == HW
    assert read_onnx_spec(tmp_path / "t.onnx") == spec
    out = _run(tmp_path / "t.onnx", np.zeros((3, 3, *HW), np.uint8))  # dynamic batch kept
    assert out["boxes"].shape == (3, A, 4) and out["scores"].shape == (3, A, 2)
    np.testing.assert_allclose(out["boxes"][:, 5], [[8, 16, 12, 24]] * 3, atol=1e-5)
    np.testing.assert_allclose(out["boxes"][:, 80], [[45, 29, 55, 31]] * 3, atol=1e-5)
    np.testing.assert_allclose(out["scores"][0, [5, 80]], [[0.9, 0.1], [0.2, 0.7]], atol=1e-6)


def test_ultralytics_segment_coefficients_and_prototypes_reach_the_post_process_as_masks(tmp_path):
    from engines.loader import load_engine
    from engines.postprocess import postprocess
    from pipeline.letterbox import Letterbox

    protos = np.full((32, 16, 16), -4.0, np.float32)
    protos[0, 4:6, 2:3] = 40.0  # prototype 0 lights input pixels x 8..12, y 16..24: the first box
    preds = _ultralytics_preds(2, 32)
    preds[4 + 2 :, 5] = 0
    preds[4 + 2, 5] = 1.0  # coefficient of prototype 0
    src = export(ConstOutputs([preds, protos]), tmp_path / "seg.onnx", HW, ["output0", "output1"], dynamic_batch=True)
    spec = import_model(src, "ultralytics", tmp_path / "t.onnx", classes=_names(tmp_path, ["a", "b"]))
    assert spec.has_masks and spec.num_protos == 32 and spec.class_names == ("a", "b")
    raw_out = _run(tmp_path / "t.onnx", np.zeros((1, 3, *HW), np.uint8))
    np.testing.assert_allclose(raw_out["mask_coeffs"][0, 5], preds[6:, 5])
    np.testing.assert_allclose(raw_out["protos"][0], protos)
    engine = load_engine(tmp_path / "t.onnx", device="cpu")
    lb = Letterbox.fit((64, 64), HW)
    (dets, _), = postprocess(engine.infer(np.zeros((1, 3, *HW), np.uint8)), spec, [lb])
    order = np.argsort(dets.class_ids)
    np.testing.assert_allclose(dets.boxes[order], [[8, 16, 12, 24], [45, 29, 55, 31]], atol=1e-4)
    dense = dets.masks.dense()[order]
    assert dense[0, 16:24, 8:12].all() and dense[0].sum() == 32  # the mask fills its box, nothing outside
    assert dense[1].sum() == 0  # no coefficients: no pixels
    engine.close()


def test_ultralytics_input_is_reordered_to_rgb_and_scaled_by_1_over_255(tmp_path):
    module = ChannelMeans([_ultralytics_preds(2)], [((4, 0), 0), ((5, 0), 2)])  # scores of anchor 0: mean R, mean B
    src = export(module, tmp_path / "y.onnx", HW, ["output0"])
    import_model(src, "ultralytics", tmp_path / "t.onnx", classes=_names(tmp_path, ["a", "b"]))
    bgr = np.zeros((1, 3, *HW), np.uint8)
    bgr[:, 0], bgr[:, 1], bgr[:, 2] = 255, 7, 51  # B, G, R
    scores = _run(tmp_path / "t.onnx", bgr)["scores"]
    np.testing.assert_allclose(scores[0, 0], [51 / 255, 1.0], atol=1e-6)
    assert read_onnx_spec(tmp_path / "t.onnx").batch_range == (1, 1, 1)  # a fixed batch of 1 stays 1


def _nanodet_level_tensors(nc: int = 3, bins: int = 8):
    n8, n16, n32 = points(HW)
    scores = [np.zeros((n, nc), np.float32) for n in (n8, n16, n32)]
    dists = [np.zeros((n, 4 * bins), np.float32) for n in (n8, n16, n32)]  # uniform: expected bin 3.5
    side = np.full((4, bins), -50.0, np.float32)
    for s, b in enumerate((2, 1, 3, 0)):  # left 2 bins, top 1, right 3, bottom 0
        side[s, b] = 50.0
    dists[1][6] = side.ravel()  # stride 16, point 6 = column 2, row 1: centre (32, 16)
    scores[2][3, 2] = 0.8
    return scores, dists


def test_nanodet_levels_are_told_apart_by_shape_and_decoded_from_points_without_offset(tmp_path):
    scores, dists = _nanodet_level_tensors()
    shuffled = [dists[1], scores[0], scores[2], dists[0], scores[1], dists[2]]  # names and order mean nothing
    src = export(ConstOutputs(shuffled), tmp_path / "n.onnx", HW, [f"Identity_{i}:0" for i in range(6)])
    spec = import_model(src, "nanodet", tmp_path / "t.onnx", classes=_names(tmp_path, ["p", "q", "r"]))
    assert spec.resize == "stretch" and spec.batch_range == (1, 1, 1) and spec.class_names == ("p", "q", "r")
    out = _run(tmp_path / "t.onnx", np.zeros((1, 3, *HW), np.uint8))
    assert out["boxes"].shape == (1, A, 4) and out["scores"].shape == (1, A, 3)
    np.testing.assert_allclose(out["boxes"][0, 64 + 6], [32 - 32, 16 - 16, 32 + 48, 16 + 0], atol=1e-4)
    np.testing.assert_allclose(out["boxes"][0, 0], [-28, -28, 28, 28], atol=1e-4)  # centre (0, 0), 3.5 x 8
    np.testing.assert_allclose(out["boxes"][0, 64 + 16 + 3], [32 - 112, 32 - 112, 32 + 112, 32 + 112], atol=1e-4)  # (1, 1) x 32
    assert out["scores"][0, 64 + 16 + 3, 2] == pytest.approx(0.8) and out["scores"].sum() == pytest.approx(0.8)


def test_nanodet_joint_output_with_logit_scores_gets_a_sigmoid(tmp_path):
    scores, dists = _nanodet_level_tensors()
    logits = np.concatenate(scores) * 0 - 6.0
    logits[5, 1] = 2.0
    joint = np.concatenate([logits, np.concatenate(dists)], 1)  # [A, 3 + 32], scores first
    src = export(ConstOutputs([joint]), tmp_path / "n.onnx", HW, ["output"], dynamic_batch=True)
    spec = import_model(src, "nanodet", tmp_path / "t.onnx", classes=_names(tmp_path, ["p", "q", "r"]))
    assert spec.batch_range == (1, 1, 8)
    out = _run(tmp_path / "t.onnx", np.zeros((2, 3, *HW), np.uint8))
    assert out["scores"][1, 5, 1] == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-6)
    assert out["scores"][1, 0, 0] == pytest.approx(1 / (1 + np.exp(6.0)), abs=1e-6)
    np.testing.assert_allclose(out["boxes"][1, 64 + 6], [0, 0, 80, 16], atol=1e-4)


def test_nanodet_input_stays_bgr_and_is_normalised_by_its_mean_and_std(tmp_path):
    scores, dists = _nanodet_level_tensors()
    module = ChannelMeans([scores[0], dists[0], scores[1], dists[1], scores[2], dists[2]], [((0, 0), 0), ((0, 1), 2)])
    src = export(module, tmp_path / "n.onnx", HW, [f"o{i}" for i in range(6)])
    import_model(src, "nanodet", tmp_path / "t.onnx", classes=_names(tmp_path, ["p", "q", "r"]))
    bgr = np.zeros((1, 3, *HW), np.uint8)
    bgr[:, 0], bgr[:, 1], bgr[:, 2] = 160, 0, 150
    out = _run(tmp_path / "t.onnx", bgr)["scores"]
    np.testing.assert_allclose(out[0, 0, :2], [(160 - 103.53) / 57.375, (150 - 123.675) / 58.395], atol=1e-5)


# --- bad input: one TridentError naming the thing and the fix, and nothing written ---


def _nanodet_file(tmp_path):
    scores, dists = _nanodet_level_tensors()
    return export(ConstOutputs([scores[0], dists[0], scores[1], dists[1], scores[2], dists[2]]), tmp_path / "n.onnx", HW,
                  [f"o{i}" for i in range(6)])


def test_a_layout_of_another_format_is_one_error_listing_the_outputs_found_and_the_formats(tmp_path):
    src = _nanodet_file(tmp_path)
    with pytest.raises(TridentError) as err:
        import_model(src, "ultralytics", tmp_path / "t.onnx", classes=_names(tmp_path, ["p", "q", "r"]))
    text = str(err.value)
    assert "o0 [1, 64, 3]" in text and "o1 [1, 64, 32]" in text and "o5 [1, 4, 32]" in text
    assert "It looks like --format nanodet" in text and "Formats accepted: ultralytics" in text and "nanodet:" in text
    assert not (tmp_path / "t.onnx").exists()


def test_a_file_of_no_known_layout_lists_its_outputs(tmp_path):
    src = export(ConstOutputs([np.zeros((10,), np.float32), np.zeros((5, 7), np.float32)]), tmp_path / "x.onnx", HW, ["a", "b"])
    for fmt in ("ultralytics", "nanodet"):
        with pytest.raises(TridentError, match=r"not a .* detector: .*Its outputs: a \[1, 10\], b \[1, 5, 7\]\. Formats accepted"):
            import_model(src, fmt, tmp_path / "t.onnx", classes=_names(tmp_path, ["p"]))


def test_class_count_mismatches_name_both_counts(tmp_path):
    src = export(ConstOutputs([_ultralytics_preds(2)]), tmp_path / "y.onnx", HW, ["output0"], metadata={"names": "{0: 'a', 1: 'b'}"})
    with pytest.raises(TridentError, match="--classes lists 3 names but the predictions have 2 class scores"):
        import_model(src, "ultralytics", tmp_path / "t.onnx", classes=_names(tmp_path, ["a", "b", "c"]))
    with pytest.raises(TridentError, match="--classes lists 4 names but the level with 64 points has outputs of 3 and 32 channels"):
        import_model(_nanodet_file(tmp_path), "nanodet", tmp_path / "t.onnx", classes=_names(tmp_path, list("abcd")))
    with pytest.raises(TridentError, match="pass --classes"):
        import_model(_nanodet_file(tmp_path), "nanodet", tmp_path / "t.onnx")
    bare = export(ConstOutputs([_ultralytics_preds(2)]), tmp_path / "bare.onnx", HW, ["output0"])
    with pytest.raises(TridentError, match="carries no class names; pass --classes"):
        import_model(bare, "ultralytics", tmp_path / "t.onnx")
    assert not (tmp_path / "t.onnx").exists()


def test_missing_garbage_and_misnamed_files_are_refused(tmp_path):
    with pytest.raises(TridentError, match="nope.onnx does not exist"):
        import_model(tmp_path / "nope.onnx", "nanodet", tmp_path / "t.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(TridentError, match="junk.onnx is not a readable ONNX file"):
        import_model(junk, "nanodet", tmp_path / "t.onnx")
    with pytest.raises(TridentError, match=r"--format 'yolov5' is not one Trident imports; use one of: ultralytics, nanodet"):
        import_model(junk, "yolov5", tmp_path / "t.onnx")
    with pytest.raises(TridentError, match="--out .* must end in .onnx"):
        import_model(junk, "nanodet", tmp_path / "t.engine")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# only a comment\n")
    with pytest.raises(TridentError, match="lists no class names"):
        import_model(_nanodet_file(tmp_path), "nanodet", tmp_path / "t.onnx", classes=empty)
    with pytest.raises(TridentError, match="--classes .*missing.txt does not exist"):
        import_model(_nanodet_file(tmp_path), "nanodet", tmp_path / "t.onnx", classes=tmp_path / "missing.txt")


def test_cli_import_writes_the_model_and_refuses_a_wrong_format_in_one_line(tmp_path, capsys):
    src = _nanodet_file(tmp_path)
    names = _names(tmp_path, ["p", "q", "r"])
    assert main(["import", "--onnx", str(src), "--format", "nanodet", "--out", str(tmp_path / "t.onnx"), "--classes", names]) == 0
    assert "wrote" in capsys.readouterr().out and read_onnx_spec(tmp_path / "t.onnx").class_names == ("p", "q", "r")
    assert main(["import", "--onnx", str(src), "--format", "tflite", "--out", str(tmp_path / "u.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "use one of: ultralytics, nanodet" in err
    assert not (tmp_path / "u.onnx").exists()


def test_a_dynamic_size_export_needs_imgsz_and_is_fixed_at_it(tmp_path):
    import warnings

    from tests.engines.foreign_models import ConvUltralytics

    src = tmp_path / "dyn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ConvUltralytics(nc=2, segment=False).eval(), (torch.zeros(1, 3, 64, 64),), str(src), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["output0"],
                          dynamic_axes={"images": {0: "b", 2: "h", 3: "w"}, "output0": {0: "b", 2: "a"}})
    names = _names(tmp_path, ["a", "b"])
    with pytest.raises(TridentError, match="dynamic input size; pass --imgsz H W"):
        import_model(src, "ultralytics", tmp_path / "t.onnx", classes=names)
    spec = import_model(src, "ultralytics", tmp_path / "t.onnx", classes=names, imgsz=(96, 128))
    assert spec.input_hw == (96, 128) and spec.batch_range == (1, 1, 8)
    out = _run(tmp_path / "t.onnx", np.zeros((2, 3, 96, 128), np.uint8))
    assert out["boxes"].shape == (2, sum(points((96, 128))), 4)  # 12x16 + 6x8 + 3x4 anchors


def test_build_engine_takes_the_fixed_batch_of_an_imported_model(tmp_path, capsys):
    from engines.cli import _batch_range

    fixed = import_model(_nanodet_file(tmp_path), "nanodet", tmp_path / "fixed.onnx", classes=_names(tmp_path, ["p", "q", "r"]))
    assert fixed.batch_range == (1, 1, 1) and _batch_range(tmp_path / "fixed.onnx", None) == (1, 1, 1)
    with pytest.raises(TridentError, match=r"takes a fixed batch of 1; pass --batch-range 1 1 1"):
        _batch_range(tmp_path / "fixed.onnx", [1, 4, 8])
    src = export(ConstOutputs([_ultralytics_preds(2)]), tmp_path / "y.onnx", HW, ["output0"], dynamic_batch=True)
    import_model(src, "ultralytics", tmp_path / "dyn.onnx", classes=_names(tmp_path, ["a", "b"]))
    assert _batch_range(tmp_path / "dyn.onnx", None) == (1, 4, 8) and _batch_range(tmp_path / "dyn.onnx", [2, 2, 16]) == (2, 2, 16)
    assert main(["build-engine", "--onnx", str(tmp_path / "fixed.onnx"), "--out", str(tmp_path / "e.engine"), "--batch-range", "1", "2", "4"]) == 2
    assert "fixed batch of 1" in capsys.readouterr().err
