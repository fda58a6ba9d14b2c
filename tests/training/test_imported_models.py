"""Imported (foreign) detectors downstream: `trident eval` and `trident export --int8` take them unchanged.

An imported NanoDet is fed plainly resized frames (spec `resize: stretch`);
evaluation must feed it those pixels and map its boxes back with the same
geometry, or every box of a non-square frame lands in the wrong place.
"""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from engines.postprocess import RawOutputs
from engines.spec import ModelSpec
from pipeline.cli import main
from pipeline.letterbox import Letterbox
from tests.engines.test_import_real import COCO_NAMES, TEACHER, VTEST, _frames, needs_clip, needs_teacher
from training.data import SyntheticVideoDataset, collate, eval_transforms


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from training.synthetic import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("tiny")
    generate_dataset(SynthConfig(videos=2, frames=4, width=160, height=96, seed=3, val_fraction=0.5), root, workers=1)
    return root


def _oracle_score(root, resize: str) -> float:
    """box mAP@.50:.95 of an 'oracle' whose boxes are the targets as the eval transform put them into the input."""
    from torch.utils.data import DataLoader

    from training.evaluate import evaluate
    from training.validate import predict

    spec = ModelSpec(input_hw=(64, 64), class_names=("a", "b", "c", "d", "e", "f", "g", "h"), resize="stretch")
    data = SyntheticVideoDataset(root, "train", transforms=eval_transforms(spec.input_hw, resize))
    assert len(data.category_ids) <= len(spec.class_names)
    pending = []

    def batches():
        for images, targets in DataLoader(data, batch_size=2, collate_fn=collate):
            pending.append(targets)
            yield images, targets

    def infer(images):  # echoes each target's boxes in input pixels, scored 1 for its class
        targets = pending.pop()
        a = max(len(t["boxes"]) for t in targets)
        boxes = np.zeros((len(targets), a, 4), np.float32)
        scores = np.zeros((len(targets), a, len(spec.class_names)), np.float32)
        for i, t in enumerate(targets):
            n = len(t["boxes"])
            boxes[i, :n] = t["boxes"].numpy()
            scores[i, np.arange(n), t["labels"].numpy()] = 1.0
        return RawOutputs(boxes=boxes, scores=scores)

    dets, _, _ = predict(infer, batches(), spec)
    return evaluate(data.annotation_file, dets, category_ids=data.category_ids, image_ids=sorted(dets)).box_map


def test_eval_of_a_stretch_model_feeds_stretched_frames_and_maps_boxes_back_through_the_stretch(tiny_data):
    assert _oracle_score(tiny_data, "stretch") == pytest.approx(1.0)
    # the 160x96 frames letterboxed but undone as a stretch: the boxes land elsewhere and the score collapses
    assert _oracle_score(tiny_data, "letterbox") < 0.5


def test_the_stretch_transform_puts_the_pixels_where_the_pipeline_preprocess_does():
    from engines.preprocess import letterbox_batch
    from training.data import Sample

    image = np.random.default_rng(0).integers(0, 255, (96, 160, 3), np.uint8)
    out = eval_transforms((64, 64), "stretch")(Sample(image=image, image_id=0, orig_size=(96, 160)))
    batch, (lb,) = letterbox_batch([image], (64, 64), resize="stretch")
    assert np.array_equal(out.image, batch[0].transpose(1, 2, 0))
    assert lb == Letterbox.stretch((96, 160), (64, 64)) and (lb.scale, lb.sy) == (0.4, 64 / 96)


@needs_clip
@needs_teacher
def test_export_int8_quantizes_an_imported_teacher_that_still_finds_the_same_people(tmp_path):
    from engines.importers import import_model
    from engines.loader import load_engine
    from engines.postprocess import PostprocessConfig, postprocess
    from engines.preprocess import letterbox_batch
    from tests.engines.import_reference import unmatched

    frames = _frames(40)
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, f in enumerate(frames[:40:5]):
        cv2.imwrite(str(calib / f"{i:03d}.png"), f)
    import_model(TEACHER, "nanodet", tmp_path / "teacher.onnx", classes=COCO_NAMES)
    rc = main(["export", "--weights", str(tmp_path / "teacher.onnx"), "--int8", "--calib-data", str(calib), "--out", str(tmp_path / "int8.onnx")])
    assert rc == 0
    fp32, int8 = load_engine(tmp_path / "teacher.onnx", device="cpu"), load_engine(tmp_path / "int8.onnx", device="cpu")
    assert int8.spec.precision == "int8" and int8.spec.resize == "stretch" and int8.spec.class_names == fp32.spec.class_names
    people = found = 0
    for f in frames[1:40:5]:  # frames the calibration did not see
        dets = []
        for e in (fp32, int8):
            images, lbs = letterbox_batch([f], e.spec.input_hw, resize=e.spec.resize)
            (d, _), = postprocess(e.infer(images), e.spec, lbs, PostprocessConfig(score_threshold=0.35))
            dets.append([(b, int(c)) for b, c in zip(d.boxes, d.class_ids) if c == 0])
        _, missed = unmatched(dets[1], dets[0], tol=8.0)
        people += len(dets[0])
        found += len(dets[0]) - len(missed)
    assert people >= 3 * 8 and found / people >= 0.8, (found, people)


def test_export_of_an_onnx_without_int8_or_calibration_frames_is_refused(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert main(["export", "--weights", str(model), "--out", str(tmp_path / "o.onnx")]) == 2
    assert "already an ONNX file; pass --int8 --calib-data DIR" in capsys.readouterr().err
    assert main(["export", "--weights", str(model), "--int8", "--out", str(tmp_path / "o.onnx")]) == 2
    assert "needs --calib-data" in capsys.readouterr().err
    calib = tmp_path / "calib"
    calib.mkdir()
    cv2.imwrite(str(calib / "a.png"), np.zeros((32, 32, 3), np.uint8))
    assert main(["export", "--weights", str(model), "--int8", "--calib-data", str(calib), "--out", str(tmp_path / "o.onnx")]) == 2
    assert "m.onnx is not a readable ONNX file" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()
