"""`trident synth --camera-motion`: the frames move as camera.txt says, and
boxes, masks and labels are where the objects are in the moving frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.cli import main
from training.synthetic.camera import CameraPath
from training.synthetic.scene import THING_LABEL_OFFSET, VideoScene

W, H = 256, 160


def _render(motion: str, frames: int = 10, seed: int = 4) -> list:
    return list(VideoScene(W, H, frames, np.random.default_rng(seed), camera_motion=motion).render())


def _motion(a0: np.ndarray, a1: np.ndarray) -> np.ndarray:
    return (np.vstack([a1, [0, 0, 1]]) @ np.linalg.inv(np.vstack([a0, [0, 0, 1]])))[:2]


def _background_residual(f0: np.ndarray, f1: np.ndarray, M: np.ndarray, objects: np.ndarray) -> float:
    """Mean |frame1 - frame0 carried by M| over background pixels away from the border (blurred: sensor noise)."""
    g0 = cv2.GaussianBlur(cv2.cvtColor(f0, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 1.5)
    g1 = cv2.GaussianBlur(cv2.cvtColor(f1, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 1.5)
    warped = cv2.warpAffine(g0, M, (W, H), flags=cv2.INTER_LINEAR)
    keep = ~cv2.dilate(objects.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    keep[:12], keep[-12:], keep[:, :12], keep[:, -12:] = False, False, False, False
    return float(np.abs(warped - g1)[keep].mean())


@pytest.mark.parametrize("motion", ["pan", "zoom", "shake"])
def test_frames_move_by_the_recorded_camera_and_labels_follow_them(motion: str) -> None:
    frames = _render(motion, frames=24)
    assert all(fr.camera is not None and fr.camera.shape == (2, 3) for fr in frames)
    ratios = []
    for a, b in zip(frames[::2], frames[1::2]):
        M = _motion(a.camera, b.camera)
        objects = (a.semantic >= THING_LABEL_OFFSET) | (b.semantic >= THING_LABEL_OFFSET)
        corners = np.array([[0, 0, 1], [W, 0, 1], [0, H, 1], [W, H, 1]], float)
        if np.abs(corners @ M.T - corners[:, :2]).max() > 1.5:  # a sub-pixel step says nothing
            ratios.append(_background_residual(a.image, b.image, M, objects) /
                          max(_background_residual(a.image, b.image, np.eye(2, 3), objects), 1e-6))
        # Semantic labels move with the same camera (stuff only; things move on their own).
        warped = cv2.warpAffine(a.semantic, M, (W, H), flags=cv2.INTER_NEAREST)
        inner = np.zeros((H, W), bool)
        inner[6:-6, 6:-6] = True
        stuff = inner & ~objects & (warped < THING_LABEL_OFFSET)
        assert (warped[stuff] == b.semantic[stuff]).mean() > 0.97
    # The recorded motion explains the background far better than "no motion".
    assert len(ratios) >= 4 and np.median(ratios) < 0.5, ratios
    for fr in frames:
        for inst in fr.instances:
            assert inst.mask.shape == (H, W) and inst.area == int(inst.mask.sum()) >= 24
            assert (fr.semantic[inst.mask] == THING_LABEL_OFFSET + inst.cls).all()
            ys, xs = np.nonzero(inst.mask)
            assert inst.box == (xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0)
            assert 0.0 < inst.visibility <= 1.0


def test_a_fixed_camera_scene_is_unchanged_by_the_camera_option() -> None:
    still = _render("none", frames=4)
    again = list(VideoScene(W, H, 4, np.random.default_rng(4)).render())
    assert all(f.camera is None for f in still)
    for a, b in zip(still, again):
        np.testing.assert_array_equal(a.image, b.image)


def test_camera_paths_stay_inside_the_world_and_pan_at_realistic_speeds() -> None:
    rng = np.random.default_rng(0)
    pan = CameraPath("pan", 640, 384, 150, 30.0, rng)
    speeds = [abs(pan.motion_between(t, t + 1)[0, 2]) for t in range(149)]
    assert 5.0 < max(speeds) < 12.0
    world_w = 960
    for motion in ("pan", "zoom", "shake"):
        path = CameraPath(motion, 640, 384, 150, 30.0, np.random.default_rng(1))
        for t in range(150):
            inv = np.linalg.inv(np.vstack([path.view(t), [0, 0, 1]]))
            corners = np.array([[0, 0, 1], [640, 0, 1], [0, 384, 1], [640, 384, 1]]) @ inv.T
            width = world_w if motion == "pan" else 640
            assert (corners[:, 0] >= -0.5).all() and (corners[:, 0] <= width + 0.5).all(), (motion, t)
            assert (corners[:, 1] >= -0.5).all() and (corners[:, 1] <= 384.5).all(), (motion, t)


def test_synth_cli_writes_camera_txt_and_ground_truth_that_match_the_video(tmp_path: Path) -> None:
    out = tmp_path / "pan"
    assert main(["synth", "--out", str(out), "--videos", "1", "--frames", "8", "--size", f"{W}x{H}",
                 "--camera-motion", "pan", "--workers", "1", "--seed", "3"]) == 0
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    assert meta["camera_motion"] == "pan" and meta["config"]["camera_motion"] == "pan"
    rows = np.loadtxt(out / "mot" / "video_0000" / "camera.txt", delimiter=",")
    assert rows.shape == (8, 7) and rows[:, 0].tolist() == list(range(1, 9))
    scene = list(VideoScene(W, H, 8, np.random.default_rng(np.random.SeedSequence(3).spawn(1)[0]), camera_motion="pan").render())
    np.testing.assert_allclose(rows[:, 1:].reshape(-1, 2, 3), np.stack([f.camera for f in scene]), atol=1e-5)
    gt = np.loadtxt(out / "mot" / "video_0000" / "gt" / "gt.txt", delimiter=",")
    want = [(f.index + 1, i.track_id, *i.box) for f in scene for i in f.instances]
    got = [(int(r[0]), int(r[1]), r[2], r[3], r[2] + r[4], r[3] + r[5]) for r in gt]
    np.testing.assert_allclose(np.array(sorted(got)), np.array(sorted(want)), atol=0.06)
    # The video is the moving view: each decoded frame is its rendered frame
    # (up to sensor noise and the codec), not its neighbour.
    cap = cv2.VideoCapture(str(out / "videos" / "video_0000.mp4"))
    smooth = [cv2.GaussianBlur(f.image, (0, 0), 2).astype(float) for f in scene]
    for k in range(0, 8, 2):
        for _ in range(2 if k else 1):
            ok, img = cap.read()
        img = cv2.GaussianBlur(img, (0, 0), 2).astype(float)
        own, other = np.abs(img - smooth[k]).mean(), np.abs(img - smooth[7 - k]).mean()
        assert ok and own < 3.0 and own < 0.5 * other, (k, own, other)
    cap.release()


def test_an_unknown_camera_motion_is_refused(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--camera-motion", "dolly"])
    assert "invalid choice: 'dolly'" in capsys.readouterr().err
