"""Imported detectors through `trident run` on real footage, against the foreign ONNX decoded by hand.

The footage is `vtest.avi` (768x576 pedestrians, Debian's opencv-doc); the
real detector is the NanoDet-m COCO teacher in ../shared/teachers/. Each
test skips with the reason when either is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from engines.importers import import_model
from pipeline.cli import main
from tests.engines.foreign_models import ConvUltralytics, export
from tests.engines.import_reference import nanodet_reference, ultralytics_reference, unmatched

ROOT = Path(__file__).resolve().parents[2]
TEACHERS = ROOT.parent / "shared" / "teachers"
TEACHER = TEACHERS / "nanodet-m-416-coco.onnx"
COCO_NAMES = TEACHERS / "coco80.txt"
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
FRAMES = 30

needs_clip = pytest.mark.skipif(not VTEST.exists(), reason=f"{VTEST} is absent (apt-get install opencv-doc)")
needs_teacher = pytest.mark.skipif(not TEACHER.exists(), reason=f"the NanoDet teacher {TEACHER} is absent")


def _frames(n: int) -> list[np.ndarray]:
    """The clip's first n frames decoded as the pipeline's file source does (PyAV, BGR)."""
    import av

    out = []
    with av.open(str(VTEST)) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="bgr24"))
            if len(out) == n:
                break
    return out


def _iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    if not TEACHER.exists():
        pytest.skip(f"the NanoDet teacher {TEACHER} is absent")
    out = tmp_path_factory.mktemp("teacher") / "teacher.onnx"
    import_model(TEACHER, "nanodet", out, classes=COCO_NAMES)
    return out


def _run_and_compare(model: Path, foreign: Path, reference, score: float, tmp_path: Path) -> dict:
    """`trident run` on the clip's first frames; every frame in the JSONL with the reference's detections."""
    rc = main(["run", "--source", str(VTEST), "--model", str(model), "--out", str(tmp_path), "--no-video", "--no-progress",
               "--tracker", "none", "--max-frames", str(FRAMES), "--score-threshold", str(score), "--device", "cpu"])
    assert rc == 0
    records = [json.loads(line) for line in (tmp_path / "vtest.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    session = ort.InferenceSession(str(foreign), providers=["CPUExecutionProvider"])
    total, worst = 0, 0.0
    for record, frame in zip(records, _frames(FRAMES)):
        boxes, _, classes = reference(session, frame, score)
        ours = [(o["box"], o["class_id"]) for o in record["objects"]]
        ref = list(zip(boxes, classes.tolist()))
        lonely_ours, lonely_ref = unmatched(ours, ref, tol=1.0)
        assert (lonely_ours, lonely_ref) == ([], []), f"frame {record['frame']}: only trident {lonely_ours}, only reference {lonely_ref}"
        total += len(ours)
        for box, cls in ours:
            worst = max(worst, min(float(np.abs(np.asarray(box) - b).max()) for b, c in ref if c == cls))
    return {"records": records, "detections": total, "worst_px": worst}


@needs_clip
@needs_teacher
def test_the_imported_teacher_finds_the_people_of_a_real_frame(teacher):
    from engines.loader import load_engine
    from engines.postprocess import PostprocessConfig, postprocess
    from engines.preprocess import letterbox_batch

    engine = load_engine(teacher, device="cpu")
    assert engine.spec.resize == "stretch" and engine.spec.class_names[0] == "person"
    frame = _frames(1)[0]
    images, lbs = letterbox_batch([frame], engine.spec.input_hw, resize=engine.spec.resize)
    (dets, _), = postprocess(engine.infer(images), engine.spec, lbs, PostprocessConfig(score_threshold=0.35))
    engine.close()
    people = dets.boxes[dets.class_ids == 0]
    # the three walkers of frame 0, boxed by eye on the frame (x0, y0, x1, y1 in its 768x576 pixels)
    walkers = [(491, 153, 523, 229), (633, 234, 677, 319), (244, 214, 276, 304)]
    for walker in walkers:
        assert max(_iou(walker, p) for p in people) > 0.7, f"no person box on the walker at {walker}"
    assert len(people) == 3  # and nothing else boxed as a person (the lamp post, the tripod)


@needs_clip
@needs_teacher
def test_the_imported_teacher_through_trident_run_matches_the_hand_decoded_teacher(teacher, tmp_path):
    result = _run_and_compare(teacher, TEACHER, nanodet_reference, 0.35, tmp_path)
    assert result["detections"] >= 3 * FRAMES  # the walkers are found in every frame
    assert result["worst_px"] <= 1.0
    classes = {o["class"] for r in result["records"] for o in r["objects"]}
    assert "person" in classes


@needs_clip
def test_an_imported_ultralytics_segment_model_through_trident_run_matches_the_hand_decoded_file(tmp_path):
    foreign = export(ConvUltralytics(nc=3, nm=4, seed=3), tmp_path / "yolo-seg.onnx", (256, 256), ["output0", "output1"],
                     dynamic_batch=True, metadata={"names": "{0: 'person', 1: 'car', 2: 'dog'}", "task": "segment"})
    model = tmp_path / "imported.onnx"
    spec = import_model(foreign, "ultralytics", model)
    assert spec.has_masks and spec.class_names == ("person", "car", "dog")
    result = _run_and_compare(model, foreign, ultralytics_reference, 0.5, tmp_path / "run")
    assert result["detections"] >= FRAMES  # the random net does fire on the footage
    objects = [o for r in result["records"] for o in r["objects"]]
    assert {o["class_id"] for o in objects} >= {0, 1}
    assert all("mask" in o for o in objects)  # the masks made it through the post-process to the JSONL
