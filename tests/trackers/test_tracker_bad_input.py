"""Bad input to a tracker: a clear error, or a documented, tested handling."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.contracts import Detections
from pipeline.masks import InstanceMasks

from pipeline.errors import ContractError, TridentError
from trackers import TrackerConfig, make_tracker

BOTH = ["sort", "bytetrack", "ocsort"]


@pytest.mark.parametrize("algorithm", BOTH)
def test_empty_frames_return_empty_tracks_and_keep_time(algorithm: str, dets, box) -> None:
    tracker = make_tracker(TrackerConfig(algorithm=algorithm, report_coasting_s=0.0))  # matched tracks only
    out = tracker.update(Detections.empty(), 0.0)
    assert len(out) == 0 and out.track_ids.dtype == np.int64 and out.det_index.dtype == np.int32
    assert len(tracker.update(dets([box(10, 10)]), 1 / 30)) == 0      # tentative: born after frame 1
    assert tracker.update(dets([box(10, 10)]), 2 / 30).track_ids.tolist() == [1]
    assert len(tracker.update(dets([]), 3 / 30)) == 0
    assert tracker.update(dets([box(10, 10)]), 4 / 30).track_ids.tolist() == [1]


@pytest.mark.parametrize("algorithm", BOTH)
def test_zero_area_boxes_are_ignored_never_tracked(algorithm: str, dets, box) -> None:
    tracker = make_tracker(TrackerConfig(algorithm=algorithm))
    for f in range(5):
        d = dets([[50, 50, 50, 90], box(10 + f, 10), [5, 5, 30, 5]])   # zero width, normal, zero height
        out = tracker.update(d, f / 30)
    assert out.track_ids.tolist() == [1]
    assert out.det_index.tolist() == [1]
    assert len(tracker.table) == 1


def test_nan_rows_slipping_past_unchecked_contracts_are_ignored(box) -> None:
    # Under `python -O` Detections skips its checks; emulate that with
    # object.__setattr__ on a valid instance.
    d = Detections(np.array([box(10, 10), box(100, 10)], np.float32), np.ones(2, np.float32), np.zeros(2, np.int32))
    bad = d.boxes.copy()
    bad[0, 2] = np.nan
    object.__setattr__(d, "boxes", bad)
    out = make_tracker(TrackerConfig()).update(d, 0.0)
    assert out.det_index.tolist() == [1] and np.isfinite(out.boxes).all()


def test_boxes_below_min_box_side_are_ignored(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(min_box_side=5.0))
    out = tracker.update(dets([[0, 0, 4, 40], box(100, 100)]), 0.0)
    assert out.det_index.tolist() == [1]


@pytest.mark.parametrize("bad", [0.5, 1.0])
def test_frame_time_that_does_not_increase_is_an_error_naming_both_times(dets, box, bad: float) -> None:
    tracker = make_tracker(TrackerConfig())
    tracker.update(dets([box(10, 10)]), 1.0)
    with pytest.raises(TridentError, match=rf"got {bad} after 1.0.*reset\(\)"):
        tracker.update(dets([box(10, 10)]), bad)
    # The failed call changed nothing: the next valid frame continues the track.
    assert tracker.update(dets([box(11, 10)]), 1.0 + 1 / 30).track_ids.tolist() == [1]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "soon", None])
def test_non_finite_or_non_numeric_frame_time_is_an_error(dets, bad: object) -> None:
    with pytest.raises(TridentError, match="frame_time"):
        make_tracker(TrackerConfig()).update(dets([]), bad)  # type: ignore[arg-type]


def test_raw_arrays_instead_of_detections_are_an_error_naming_the_type() -> None:
    with pytest.raises(TridentError, match="expects pipeline.contracts.Detections, got ndarray"):
        make_tracker(TrackerConfig()).update(np.zeros((3, 4), np.float32), 0.0)  # type: ignore[arg-type]


def test_nan_negative_size_and_wrong_shape_are_rejected_when_detections_are_built() -> None:
    # The tracker can rely on these: Detections refuses them at construction.
    ok_scores, ok_cls = np.ones(1, np.float32), np.zeros(1, np.int32)
    with pytest.raises(ContractError, match="NaN"):
        Detections(np.array([[0, 0, np.nan, 5]], np.float32), ok_scores, ok_cls)
    with pytest.raises(ContractError, match="x2<x1"):
        Detections(np.array([[10, 0, 5, 5]], np.float32), ok_scores, ok_cls)
    with pytest.raises(ContractError, match="shape"):
        Detections(np.zeros((1, 5), np.float32), ok_scores, ok_cls)


def test_tracker_needs_a_tracker_config() -> None:
    from trackers.byte_tracker import ByteTracker

    with pytest.raises(TridentError, match="TrackerConfig"):
        ByteTracker({"algorithm": "bytetrack"})  # type: ignore[arg-type]


def test_huge_gap_does_not_produce_invalid_boxes(dets, box) -> None:
    # A shrinking object coasting through a 1-hour reconnect: predicted sizes
    # would go negative; reported boxes stay valid (x2 >= x1).
    tracker = make_tracker(TrackerConfig(report_coasting_s=7200.0, lost_buffer_s=7200.0))
    for f in range(10):
        tracker.update(dets([[100 + f, 100 + f, 200 - f, 200 - f]]), f / 30)
    out = tracker.update(dets([]), 3600.0)
    assert out.det_index.tolist() == [-1]
    assert np.all(out.boxes[:, 2] >= out.boxes[:, 0]) and np.all(out.boxes[:, 3] >= out.boxes[:, 1])
    assert np.isfinite(out.boxes).all()


def test_masks_of_a_new_frame_size_fall_back_to_box_iou(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(mask_iou_weight=0.5))
    m = np.zeros((1, 32, 32), bool)
    m[0, :10, :10] = True
    tracker.update(dets([[0, 0, 10, 10]], masks=InstanceMasks.from_dense(m)), 0.0)
    m2 = np.zeros((1, 64, 64), bool)
    m2[0, :10, :10] = True
    out = tracker.update(dets([[0, 0, 10, 10]], masks=InstanceMasks.from_dense(m2)), 1 / 30)
    assert out.track_ids.tolist() == [1]


def test_trackers_import_no_torch_cv2_training_or_engines() -> None:
    import subprocess
    import sys

    code = (
        "import sys, trackers.factory, trackers.metrics, trackers.mot_io, trackers.kalman;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'cv2', 'training', 'engines')"
        " or (m.startswith('pipeline.') and m not in ('pipeline.errors', 'pipeline.contracts', 'pipeline.masks', 'pipeline.boxes', 'pipeline.config_files'))];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
