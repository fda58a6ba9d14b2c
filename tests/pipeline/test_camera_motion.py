"""Camera-motion estimation: known shifts, zooms and rotations of a textured
picture are recovered, foreground boxes are masked out, and the runtime's
helper feeds the estimate to the tracker."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from pipeline.camera_motion import CameraMotion, estimate, to_grey, update_with_camera_motion
from pipeline.contracts import Detections
from pipeline.errors import TridentError
from trackers import TrackerConfig, make_tracker

W, H = 640, 384


def _world(seed: int = 0, size: tuple[int, int] = (2 * H, 2 * W)) -> np.ndarray:
    """A BGR picture with corners everywhere: blurred noise plus random rectangles."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, (*size, 3), dtype=np.uint8), (0, 0), 3)
    for _ in range(400):
        x, y = int(rng.integers(0, size[1])), int(rng.integers(0, size[0]))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(5, 40)), y + int(rng.integers(5, 40))),
                      rng.integers(0, 255, 3).tolist(), -1)
    return img


def _view(world: np.ndarray, A: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(world, A, (W, H), flags=cv2.INTER_LINEAR)


def _similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def _compose(A1: np.ndarray, A0: np.ndarray) -> np.ndarray:
    """Frame-0 -> frame-1 pixels for views A0, A1 of one world."""
    return (np.vstack([A1, [0, 0, 1]]) @ np.linalg.inv(np.vstack([A0, [0, 0, 1]])))[:2]


def _max_error(M: np.ndarray, truth: np.ndarray) -> float:
    """Largest displacement error over the frame's corners and centre, in pixels."""
    pts = np.array([[0, 0, 1], [W, 0, 1], [0, H, 1], [W, H, 1], [W / 2, H / 2, 1]], np.float64)
    return float(np.abs(pts @ M.T - pts @ truth.T).max())


@pytest.fixture(scope="module")
def world() -> np.ndarray:
    return _world()


@pytest.mark.parametrize("method", ["sparse", "ecc"])
@pytest.mark.parametrize(
    "motion",
    [(1.0, 0.0, -7.0, 3.5), (1.03, 0.0, -10.0, -6.0), (1.0, 0.8, -4.0, 2.0)],
    ids=["shift", "zoom", "rotation"],
)
def test_a_known_camera_motion_is_recovered_within_half_a_pixel(world, method, motion) -> None:
    A0 = _similarity(1.0, 0.0, -300.0, -200.0)
    s, deg, tx, ty = motion
    A1 = _compose(_similarity(s, deg, tx, ty), np.eye(2, 3)) @ np.vstack([A0, [0, 0, 1]])
    f0, f1 = _view(world, A0), _view(world, A1)
    cm = CameraMotion(method)
    assert cm.step(f0, np.zeros((0, 4))) is None                  # nothing to compare the first frame with
    M = cm.step(f1, np.zeros((0, 4)))
    assert M.shape == (2, 3) and M.dtype == np.float64
    assert _max_error(M, _compose(A1, A0)) < 0.5


def test_foreground_boxes_are_masked_out_of_the_estimate(world) -> None:
    # A large textured object covers most of the frame and moves 25 px right
    # while the camera pans 6 px left: unmasked, the object's corners outvote
    # the background; masked, only the background speaks.
    A0 = _similarity(1.0, 0.0, -300.0, -200.0)
    A1 = _similarity(1.0, 0.0, -306.0, -200.0)
    obj = _world(seed=5, size=(300, 420))
    f0, f1 = _view(world, A0), _view(world, A1)
    box0, box1 = (60, 40, 480, 340), (85, 40, 505, 340)
    f0[40:340, 60:480] = obj
    f1[40:340, 85:505] = obj
    g0, scale = to_grey(f0, 320)
    g1, _ = to_grey(f1, 320)
    truth = _compose(A1, A0)
    masked = estimate(g0, g1, np.array([box1], float), np.array([box0], float), scale=scale)
    unmasked = estimate(g0, g1, scale=scale)
    assert _max_error(masked, truth) < 0.5
    assert _max_error(unmasked, truth) > 10.0


def test_a_blank_frame_gives_the_identity() -> None:
    blank = np.full((H, W, 3), 90, np.uint8)
    cm = CameraMotion("sparse")
    cm.step(blank, np.zeros((0, 4)))
    np.testing.assert_array_equal(cm.step(blank, np.zeros((0, 4))), np.eye(2, 3))


def test_bad_arguments_are_one_clear_error() -> None:
    g = np.zeros((10, 10), np.uint8)
    with pytest.raises(TridentError, match="one of sparse, ecc, got 'orb'"):
        CameraMotion("orb")
    with pytest.raises(TridentError, match="two grey images of one size"):
        estimate(g, np.zeros((10, 12), np.uint8))


def test_a_new_frame_size_starts_the_estimate_over(world) -> None:
    cm = CameraMotion("sparse")
    cm.step(_view(world, np.eye(2, 3)), np.zeros((0, 4)))
    assert cm.step(cv2.resize(_view(world, np.eye(2, 3)), (320, 192)), np.zeros((0, 4))) is None


def test_the_runtime_helper_keeps_an_object_through_a_camera_shake(world) -> None:
    # A still object (a grey card drawn in the world) filmed by a camera that
    # jumps +-30 px: with cmc the tracker keeps it every frame, without it not.
    rng = np.random.default_rng(1)
    shifts = np.where(np.arange(20) % 2, 30.0, -30.0) + rng.normal(0, 1, 20)
    card = world.copy()
    card[400:480, 600:640] = 128
    results = {}
    for cmc in ("sparse", "none"):
        tracker = make_tracker(TrackerConfig(cmc=cmc, report_coasting_s=0.0))  # matched tracks only
        motion = CameraMotion(cmc) if cmc != "none" else None  # what the runtime keeps per stream
        ids = []
        for f, dx in enumerate(shifts):
            A = _similarity(1.0, 0.0, -300.0 + dx, -200.0)
            x0 = 600 - 300 + dx
            dets = Detections(np.array([[x0, 200, x0 + 40, 280]], np.float32), np.array([0.9], np.float32),
                              np.zeros(1, np.int32))
            frame = SimpleNamespace(image=_view(card, A), pts=f / 30.0)
            ids.append(update_with_camera_motion(tracker, dets, frame, motion).track_ids.tolist())
        results[cmc] = ids
    assert results["sparse"] == [[1]] * 20
    assert sum(map(len, results["none"])) <= 11
