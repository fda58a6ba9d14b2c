"""Tracks carried through a camera motion: the filter states, the boxes, and
`update(..., camera_motion=M)` keeping identities while the camera shakes."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import TridentError
from trackers import TrackerConfig, make_tracker
from trackers.kalman import BoxKalmanFilter, check_camera_motion, warp_boxes, warp_states

FPS = 30.0
ALL = ["sort", "bytetrack", "ocsort"]


@pytest.fixture
def states() -> tuple[np.ndarray, np.ndarray]:
    kf = BoxKalmanFilter(1 / 20, 1 / 160, 1 / 20, 10 / 160)
    x, P = kf.initiate(np.array([[100.0, 50.0, 140.0, 130.0], [300.0, 200.0, 360.0, 230.0]]))
    x[:, 4:] = [[2.0, -1.0, 0.5, 0.2], [-3.0, 0.0, 0.0, 0.0]]
    return x, P


def test_a_shift_moves_centres_and_keeps_sizes_velocities_and_covariances(states) -> None:
    x, P = states
    H = check_camera_motion([[1, 0, -12.5], [0, 1, 7]])
    x2, P2 = warp_states(x, P, H)
    np.testing.assert_allclose(x2[:, :2], x[:, :2] + [-12.5, 7])
    np.testing.assert_allclose(x2[:, 2:], x[:, 2:])
    np.testing.assert_allclose(P2, P)


def test_a_zoom_scales_position_size_velocity_and_covariance_about_its_centre(states) -> None:
    x, P = states
    s, c = 1.25, np.array([320.0, 192.0])
    H = check_camera_motion([[s, 0, (1 - s) * c[0]], [0, s, (1 - s) * c[1]]])
    x2, P2 = warp_states(x, P, H)
    np.testing.assert_allclose(x2[:, :2], c + s * (x[:, :2] - c))
    np.testing.assert_allclose(x2[:, 2:], s * x[:, 2:])
    np.testing.assert_allclose(P2, s * s * P)


def test_a_homography_maps_the_centre_projectively_and_sizes_by_its_local_stretch(states) -> None:
    x, P = states
    H = np.array([[1.02, 0.01, 5.0], [-0.01, 0.99, -3.0], [2e-4, -1e-4, 1.0]])
    x2, _ = warp_states(x, P, check_camera_motion(H))
    p = np.c_[x[:, :2], np.ones(2)] @ H.T
    np.testing.assert_allclose(x2[:, :2], p[:, :2] / p[:, 2:], rtol=1e-12)
    # Local stretch along x, by finite differences of the mapping.
    e = 1e-4
    q = np.c_[x[:, :2] + [e, 0], np.ones(2)] @ H.T
    dx = (q[:, :2] / q[:, 2:] - p[:, :2] / p[:, 2:]) / e
    np.testing.assert_allclose(x2[:, 2], x[:, 2] * np.hypot(dx[:, 0], dx[:, 1]), rtol=1e-5)


def test_warp_boxes_follows_the_same_rule_as_the_states(states) -> None:
    x, P = states
    H = check_camera_motion([[0.9, 0.05, 10], [-0.05, 0.9, 4]])
    boxes = np.c_[x[:, :2] - x[:, 2:4] / 2, x[:, :2] + x[:, 2:4] / 2]
    x2, _ = warp_states(x, P, H)
    np.testing.assert_allclose(warp_boxes(boxes, H), np.c_[x2[:, :2] - x2[:, 2:4] / 2, x2[:, :2] + x2[:, 2:4] / 2])


@pytest.mark.parametrize("algorithm", ALL)
def test_a_shaking_camera_keeps_identities_only_when_its_motion_is_passed_in(algorithm, dets, box) -> None:
    # A still object; the camera jumps to and fro by 60-70 px every frame, so
    # in the image the 40-px box never overlaps where it just was. The shift is
    # exact here, as the estimator would measure it.
    rng = np.random.default_rng(0)
    offsets = np.where(np.arange(40) % 2, 35.0, -30.0) * rng.uniform(0.9, 1.0, 40)
    reported = {}
    for compensate in (True, False):
        tracker = make_tracker(TrackerConfig(algorithm=algorithm, report_coasting_s=0.0))  # matched tracks only
        frames = []
        for f, off in enumerate(offsets):
            M = None if f == 0 or not compensate else np.array([[1, 0, off - offsets[f - 1]], [0, 1, 0]])
            out = tracker.update(dets([box(200 + off, 100)]), f / FPS, camera_motion=M)
            frames.append(out.track_ids.tolist())
        reported[compensate] = frames
    assert reported[True] == [[1]] * 40
    # Uncompensated, the box is only recognised when the camera swings back to
    # where it was two frames before: every other frame is lost.
    assert sum(len(ids) for ids in reported[False]) <= 21


def test_ocsort_observations_move_with_the_camera(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(algorithm="ocsort"))
    for f in range(4):
        tracker.update(dets([box(100 + 2 * f, 50)]), f / FPS)
    before = tracker.table.obs[0].copy()
    tracker.update(dets([]), 4 / FPS, camera_motion=[[1, 0, 30], [0, 1, -10]])
    np.testing.assert_allclose(tracker.table.obs[0], before + [30, -10, 30, -10])
    np.testing.assert_allclose(tracker.table.last_box[0], before[-1] + [30, -10, 30, -10])


@pytest.mark.parametrize(
    ("M", "message"),
    [
        (np.eye(2), "2x3 affine or 3x3 homography, got shape \\(2, 2\\)"),
        ([[1, 0, np.nan], [0, 1, 0]], "finite and invertible"),
        (np.zeros((3, 3)), "finite and invertible"),
        ("shift", "2x3 or 3x3 array of numbers"),
    ],
)
def test_a_bad_camera_motion_is_one_clear_error_and_changes_nothing(M, message, dets, box) -> None:
    tracker = make_tracker(TrackerConfig())
    tracker.update(dets([box(10, 10)]), 0.0)
    with pytest.raises(TridentError, match=message):
        tracker.update(dets([box(11, 10)]), 1 / FPS, camera_motion=M)
    assert tracker.update(dets([box(12, 10)]), 2 / FPS).track_ids.tolist() == [1]
