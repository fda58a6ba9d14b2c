"""`infer_every`: the network on every K-th frame, the tracker predicting between, an output for every frame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.contracts import Detections, Tracks
from pipeline.errors import TridentError
from pipeline.interval import IntervalCarry
from pipeline.masks import InstanceMasks
from trackers.config import TrackerConfig
from trackers.factory import make_tracker


def _det(x: float) -> Detections:
    return Detections(np.array([[x, 10, x + 20, 50]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))


@pytest.mark.parametrize("algorithm", ["bytetrack", "ocsort", "sort"])
def test_predict_moves_tracks_without_counting_a_miss(algorithm):
    tracker = make_tracker(TrackerConfig(algorithm=algorithm, report_coasting_s=0.0))
    for i in range(4):  # moving right 5 px a frame
        tracks = tracker.update(_det(100 + 5 * i), i / 30)
    assert tracks.track_ids.tolist() == [1] and tracks.det_index.tolist() == [0]
    predicted = [tracker.predict((4 + j) / 30) for j in range(2)]
    # still reported (confirmed, not lost: nothing looked for it), coasting, carried forward by its velocity
    assert [p.track_ids.tolist() for p in predicted] == [[1], [1]]
    assert [p.det_index.tolist() for p in predicted] == [[-1], [-1]]
    assert predicted[0].boxes[0, 0] > 112 and predicted[1].boxes[0, 0] > predicted[0].boxes[0, 0]
    again = tracker.update(_det(130), 6 / 30)
    assert again.track_ids.tolist() == [1] and again.det_index.tolist() == [0]
    # an empty update instead would have lost it (not reported with report_coasting_s = 0)
    other = make_tracker(TrackerConfig(algorithm=algorithm, report_coasting_s=0.0))
    for i in range(4):
        other.update(_det(100 + 5 * i), i / 30)
    assert len(other.update(Detections.empty(), 4 / 30)) == 0


def test_predict_refuses_time_that_goes_back():
    tracker = make_tracker(TrackerConfig())
    tracker.update(_det(100), 1.0)
    with pytest.raises(TridentError, match="frame_time must increase"):
        tracker.predict(0.5)


def test_a_carried_mask_moves_and_scales_with_its_box():
    crop = np.zeros((40, 20), bool)
    crop[10:30, 5:15] = True  # 200 px in a 20x40 box
    dets = Detections(np.array([[100, 10, 120, 50]], np.float32), np.array([0.8], np.float32), np.array([2], np.int32),
                      InstanceMasks((crop,), np.array([[100, 10, 120, 50]], np.int32), (120, 200)))
    tracks = Tracks(np.array([7]), dets.boxes.copy(), dets.scores, dets.class_ids, np.array([0], np.int32))
    carry = IntervalCarry()
    carry.remember(dets, tracks, None)
    moved = Tracks(np.array([7, 9]), np.array([[150, 20, 190, 100], [0, 0, 5, 5]], np.float32), np.array([0.8, 0.5], np.float32),
                   np.array([2, 0], np.int32), np.array([-1, -1], np.int32))
    out_dets, out_tracks, _ = carry.carry(moved, (120, 200))
    assert len(out_dets) == 1 and out_tracks.det_index.tolist() == [0, -1]  # track 9 was not measured: stays coasting
    assert out_dets.scores.tolist() == [pytest.approx(0.8)] and out_dets.class_ids.tolist() == [2]
    assert out_dets.masks.boxes.tolist() == [[150, 20, 190, 100]]
    moved_crop = out_dets.masks.crop(0)
    assert moved_crop.shape == (80, 40) and moved_crop.sum() == 800  # twice as wide and tall: 4x the pixels
    ys, xs = np.nonzero(moved_crop)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (20, 59, 10, 29)  # the same place in the box


def test_a_carried_mask_is_cut_at_the_frame_edge():
    crop = np.ones((10, 10), bool)
    dets = Detections(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32),
                      InstanceMasks((crop,), np.array([[0, 0, 10, 10]], np.int32), (50, 50)))
    carry = IntervalCarry()
    carry.remember(dets, Tracks(np.array([1]), dets.boxes, dets.scores, dets.class_ids, np.array([0], np.int32)), None)
    out, _, _ = carry.carry(Tracks(np.array([1]), np.array([[45, 45, 55, 55]], np.float32), dets.scores, dets.class_ids, np.array([-1], np.int32)), (50, 50))
    assert out.masks.boxes.tolist() == [[45, 45, 50, 50]] and out.masks.crop(0).shape == (5, 5)


def test_the_network_sees_every_third_frame_and_every_frame_has_an_output(clips, tmp_path):
    from pipeline.app import run
    from pipeline.config import build_run_config
    from tests.pipeline.fakes import FakeEngine

    engine = FakeEngine()
    cfg = build_run_config({"sources": [str(clips[0])], "output": {"dir": str(tmp_path)}, "progress": False, "infer_every": 3})
    summary = run(cfg, engine=engine)
    assert summary.frames == 24 and sum(engine.batch_sizes) == 8  # frames 0, 3, ..., 21
    records = [json.loads(line) for line in (tmp_path / "video_0000.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(24))
    assert [r.get("inferred", True) for r in records] == [i % 3 == 0 for i in range(24)]
    # the fake's one box becomes a confirmed track; on predicted frames it is carried, with its id
    predicted = [r for r in records if r.get("inferred", True) is False]
    assert all(len(r["objects"]) == 1 and r["objects"][0]["track_id"] == 1 for r in predicted[1:])
    mot_frames = {int(line.split(",")[0]) for line in (tmp_path / "video_0000.mot.txt").read_text().splitlines()}
    assert set(range(2, 25)) <= mot_frames  # every frame after the first has the track
    assert summary.metrics["stages"]["infer"]["count"] == 8 and summary.metrics["stages"]["track"]["count"] == 24


def test_one_inference_per_stream_start_even_when_its_first_frames_share_a_batch(clips):
    from pipeline.batcher import BatchConfig
    from pipeline.runtime import Pipeline
    from pipeline.sources import SourceConfig
    from tests.pipeline.fakes import FakeEngine

    engine = FakeEngine(max_batch=8)
    pipe = Pipeline([SourceConfig(str(clips[1]))], engine, batch=BatchConfig(max_batch=8, max_wait_ms=50), infer_every=4)
    results = list(pipe)
    assert [r.inferred for r in results] == [i % 4 == 0 for i in range(15)]
    assert sum(engine.batch_sizes) == 4


def test_bad_infer_every_is_one_clear_error(clips):
    from pipeline.config import build_run_config
    from pipeline.runtime import Pipeline
    from pipeline.sources import SourceConfig
    from tests.pipeline.fakes import FakeEngine

    with pytest.raises(TridentError, match="infer_every must be >= 1"):
        build_run_config({"sources": ["a.mp4"], "infer_every": 0})
    with pytest.raises(TridentError, match="infer_every > 1 needs tracking"):
        build_run_config({"sources": ["a.mp4"], "infer_every": 2, "tracking": False})
    with pytest.raises(TridentError, match="infer_every > 1 needs a tracker"):
        Pipeline([SourceConfig(str(clips[1]))], FakeEngine(), tracker=None, infer_every=2)


def test_cli_infer_every_zero_exits_2_with_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    trident = Path(sys.executable).parent / "trident"
    proc = subprocess.run([str(trident), "run", "--source", "x.mp4", "--model", "m.onnx", "--infer-every", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "infer_every must be >= 1" in proc.stderr
