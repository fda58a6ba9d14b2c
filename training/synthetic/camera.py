"""A moving camera for the synthetic videos: the scene is rendered in a larger
world and each frame is the view of a camera that pans, zooms or shakes.

`CameraPath.view(t)` is the 2x3 affine taking world pixels to the pixels of
frame t. Rendering warps the image, the semantic labels and the object-owner
map by it, so every box and mask of the ground truth is where the object is
in the moving frame, and mot/<video>/camera.txt records the matrices:
frame t's motion since frame t-1 is view(t) @ inverse(view(t-1)), which is
what camera-motion compensation has to estimate.

Motions (all smooth except shake, all seeded from the video's generator):

- pan:   the view slides left and right across a world 1.5x as wide as the
         frame, (1 - cos) in time, peaks of 7-11 px a frame at 640 px wide;
- zoom:  the view zooms in to 1.3-1.6x and back out about a point near the
         centre, twice per 4-7 s;
- shake: a hand-held camera: a slightly zoomed-in view (1.1x) wobbling by a
         few pixels and a fraction of a degree every frame (smoothed random walk).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CAMERA_MOTIONS", "CameraPath", "world_size"]

CAMERA_MOTIONS = ("none", "pan", "zoom", "shake")
PAN_WORLD_WIDTH = 1.5  # world width / frame width for pans
SHAKE_ZOOM = 1.1       # headroom so the wobbling view never leaves the world


def world_size(motion: str, width: int, height: int) -> tuple[int, int]:
    """(width, height) of the world rendered for a camera motion."""
    if motion == "pan":
        return int(round(width * PAN_WORLD_WIDTH)), height
    return width, height


class CameraPath:
    """World -> frame affines of one video's camera, one per frame."""

    def __init__(self, motion: str, width: int, height: int, frames: int, fps: float, rng: np.random.Generator) -> None:
        if motion not in CAMERA_MOTIONS:
            raise ValueError(f"camera motion must be one of {', '.join(CAMERA_MOTIONS)}, got {motion!r}")
        self.motion, self.w, self.h = motion, width, height
        n = max(frames, 1)
        t = np.arange(n, dtype=np.float64)
        self._A = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (n, 1, 1))
        if motion == "pan":
            travel = (world_size("pan", width, height)[0] - width)  # px the view can slide
            period = rng.uniform(3.0, 4.5) * fps
            phase = rng.uniform(0, 2 * np.pi)
            offset = 0.5 * travel * (1.0 - np.cos(2 * np.pi * t / period + phase))
            self._A[:, 0, 2] = -offset
        elif motion == "zoom":
            period = rng.uniform(2.0, 3.5) * fps
            peak = rng.uniform(1.3, 1.6)
            s = 1.0 + 0.5 * (peak - 1.0) * (1.0 - np.cos(2 * np.pi * t / period))
            c = np.array([width, height]) * (0.5 + rng.uniform(-0.15, 0.15, 2))
            self._set(s, np.zeros(n), c[None, :] + np.zeros((n, 2)), np.zeros((n, 2)))
        elif motion == "shake":
            # AR(1)-smoothed jitter: a few px per frame, never beyond the headroom.
            margin = 0.5 * (SHAKE_ZOOM - 1.0) / SHAKE_ZOOM * np.array([width, height]) * 0.8
            shift = np.zeros((n, 2))
            angle = np.zeros(n)
            for k in range(1, n):
                shift[k] = 0.7 * shift[k - 1] + rng.normal(0.0, 0.35, 2) * margin * 0.4
                angle[k] = 0.7 * angle[k - 1] + rng.normal(0.0, np.deg2rad(0.25))
            shift = np.clip(shift, -margin, margin)
            centre = np.array([width, height]) / 2.0
            self._set(np.full(n, SHAKE_ZOOM), angle, centre[None, :] + np.zeros((n, 2)), shift)

    def _set(self, scale: np.ndarray, angle: np.ndarray, centre: np.ndarray, shift: np.ndarray) -> None:
        """Frame = scale * R(angle) * (world - centre) + centre + shift (in frame pixels)."""
        cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
        self._A[:, 0, 0], self._A[:, 0, 1] = cos, -sin
        self._A[:, 1, 0], self._A[:, 1, 1] = sin, cos
        lin = self._A[:, :, :2]
        self._A[:, :, 2] = centre + shift - np.einsum("nij,nj->ni", lin, centre)

    @property
    def moving(self) -> bool:
        return self.motion != "none"

    def view(self, t: int) -> np.ndarray:
        """2x3 world -> frame affine of frame t (a copy)."""
        return self._A[min(t, len(self._A) - 1)].copy()

    def motion_between(self, t0: int, t1: int) -> np.ndarray:
        """2x3 affine taking frame t0's pixels to frame t1's."""
        a = np.vstack([self.view(t1), [0, 0, 1]]) @ np.linalg.inv(np.vstack([self.view(t0), [0, 0, 1]]))
        return a[:2]
