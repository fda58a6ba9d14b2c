"""Constant-velocity Kalman filter over boxes, batched across tracks.

State per track: (cx, cy, w, h, vcx, vcy, vw, vh) in pixels and pixels per
nominal frame; the measurement is the box (cx, cy, w, h). Width is kept
instead of an aspect ratio so objects that are not upright pedestrians
(vehicles turning, animals) keep a sensible shape.

The equations are exactly those of filterpy's ``KalmanFilter.predict`` and
``KalmanFilter.update`` (Joseph-form covariance update), and
tests/trackers/test_kalman.py proves every row equals a filterpy
``KalmanFilter`` stepped with the same F, Q, H and R. They run here on stacked
``[M,8]`` / ``[M,8,8]`` arrays instead of one Python object per track: one
filterpy predict+update costs ~20 us, which alone would spend the whole 1 ms
budget at 50 objects per frame.

Noise is scaled with box size (a 300-px bus jitters more in pixels than a
20-px pedestrian): x terms with the width, y terms with the height. Process
noise is a random walk per nominal step, so a gap of k steps adds k times the
per-step variance; that is what lets a dropped frame or a one-second
reconnect be predicted over the real elapsed time.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import TridentError

__all__ = ["BoxKalmanFilter", "xyxy_to_cxcywh", "cxcywh_to_xyxy", "check_camera_motion", "warp_states", "warp_boxes"]

DIM_X = 8
DIM_Z = 4
# Noise never collapses below the variance of a 1-px box: a degenerate box
# would otherwise make S singular and the gain undefined.
_MIN_NOISE_SIZE = 1.0


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """[N,4] xyxy -> [N,4] centre x, centre y, width, height (float64)."""
    b = np.asarray(boxes, dtype=np.float64)
    out = np.empty_like(b)
    out[:, 2] = b[:, 2] - b[:, 0]
    out[:, 3] = b[:, 3] - b[:, 1]
    out[:, 0] = b[:, 0] + 0.5 * out[:, 2]
    out[:, 1] = b[:, 1] + 0.5 * out[:, 3]
    return out


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """[N,4] centre/size -> [N,4] xyxy. Negative predicted sizes (a shrinking
    velocity run over a long gap) are clipped to zero so boxes stay valid."""
    b = np.asarray(boxes, dtype=np.float64)
    half = 0.5 * np.maximum(b[:, 2:4], 0.0)
    out = np.empty((len(b), 4))
    np.subtract(b[:, :2], half, out=out[:, :2])
    np.add(b[:, :2], half, out=out[:, 2:])
    return out


class BoxKalmanFilter:
    """Predict/update a bank of box tracks. Stateless: the caller owns x and P."""

    def __init__(
        self,
        position_std: float,
        velocity_std: float,
        measurement_std: float,
        init_velocity_std: float,
    ) -> None:
        self.position_std = float(position_std)
        self.velocity_std = float(velocity_std)
        self.measurement_std = float(measurement_std)
        self.init_velocity_std = float(init_velocity_std)
        # H picks the box out of the state; kept for callers (and tests) that
        # want the textbook matrices.
        self.H = np.hstack([np.eye(DIM_Z), np.zeros((DIM_Z, DIM_Z))])

    @staticmethod
    def transition(steps: float) -> np.ndarray:
        """F for a gap of `steps` nominal frames: position += steps * velocity."""
        F = np.eye(DIM_X)
        F[:DIM_Z, DIM_Z:] = np.eye(DIM_Z) * float(steps)
        return F

    @staticmethod
    def _size_scale(x: np.ndarray) -> np.ndarray:
        """[M,4] per-coordinate size (w, h, w, h), floored so noise stays > 0."""
        wh = np.maximum(x[:, 2:4], _MIN_NOISE_SIZE)
        return np.concatenate([wh, wh], axis=1)

    def process_noise(self, x: np.ndarray, steps: float | np.ndarray) -> np.ndarray:
        """[M,8,8] diagonal Q for `steps` nominal frames (a number, or one per row), scaled by each box's size."""
        s = self._size_scale(x)
        steps = np.asarray(steps, dtype=np.float64)
        var = np.concatenate([(self.position_std * s) ** 2, (self.velocity_std * s) ** 2], axis=1) * (
            steps[:, None] if steps.ndim else float(steps)
        )
        Q = np.zeros((len(x), DIM_X, DIM_X))
        idx = np.arange(DIM_X)
        Q[:, idx, idx] = var
        return Q

    def measurement_noise(self, x: np.ndarray) -> np.ndarray:
        """[M,4,4] diagonal R for boxes the size of the predicted states `x`."""
        var = (self.measurement_std * self._size_scale(x)) ** 2
        R = np.zeros((len(x), DIM_Z, DIM_Z))
        idx = np.arange(DIM_Z)
        R[:, idx, idx] = var
        return R

    def initiate(self, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """States for new tracks: the box with zero velocity. Position starts
        with the measurement's own uncertainty; velocity is unknown, so wide."""
        z = xyxy_to_cxcywh(boxes_xyxy)
        x = np.zeros((len(z), DIM_X))
        x[:, :DIM_Z] = z
        s = self._size_scale(x)
        var = np.concatenate([(self.measurement_std * s) ** 2, (self.init_velocity_std * s) ** 2], axis=1)
        P = np.zeros((len(z), DIM_X, DIM_X))
        idx = np.arange(DIM_X)
        P[:, idx, idx] = var
        return x, P

    def predict(self, x: np.ndarray, P: np.ndarray, steps: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance every state by `steps` nominal frames (may be fractional):
        one number for all rows, or one per row (OC-SORT's re-update walks
        tracks hidden for different times in one batch)."""
        if len(x) == 0:
            return x, P
        Q = self.process_noise(x, steps)
        if np.ndim(steps):
            # F P F^T with a per-row F = I + s E (E moves velocity into
            # position), done as row and column additions instead of [M,8,8]
            # products.
            s = np.asarray(steps, dtype=np.float64)
            x_new = x.copy()
            x_new[:, :DIM_Z] += s[:, None] * x[:, DIM_Z:]
            FP = P.copy()
            FP[:, :DIM_Z, :] += s[:, None, None] * P[:, DIM_Z:, :]
            P_new = FP.copy()
            P_new[:, :, :DIM_Z] += s[:, None, None] * FP[:, :, DIM_Z:]
            return x_new, P_new + Q
        x_new = x.copy()
        x_new[:, :DIM_Z] += float(steps) * x[:, DIM_Z:]
        F = self.transition(steps)
        P_new = F @ P @ F.T + Q
        return x_new, P_new

    def update(self, x: np.ndarray, P: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct states with their matched boxes (row i with box i)."""
        if len(x) == 0:
            return x, P
        z = xyxy_to_cxcywh(boxes_xyxy)
        R = self.measurement_noise(x)
        y = z - x[:, :DIM_Z]
        PHt = P[:, :, :DIM_Z]                       # P H^T, H selects the box
        S = P[:, :DIM_Z, :DIM_Z] + R                # H P H^T + R
        # K = P H^T S^-1, solved rather than inverted; S is symmetric.
        K = np.linalg.solve(S, PHt.transpose(0, 2, 1)).transpose(0, 2, 1)
        x_new = x + np.einsum("mij,mj->mi", K, y)
        # Joseph form, as filterpy: stays symmetric positive definite even
        # when the gain is not exactly optimal.
        I_KH = np.broadcast_to(np.eye(DIM_X), P.shape).copy()
        I_KH[:, :, :DIM_Z] -= K
        P_new = I_KH @ P @ I_KH.transpose(0, 2, 1) + K @ R @ K.transpose(0, 2, 1)
        return x_new, P_new


def check_camera_motion(M: object) -> np.ndarray:
    """A camera motion as a 3x3 float64 homography (a 2x3 affine gets the row
    0 0 1). It maps pixel (x, y) of the previous frame to the same scene point
    in this frame."""
    try:
        H = np.asarray(M, dtype=np.float64)
    except (TypeError, ValueError):
        raise TridentError(f"camera_motion must be a 2x3 or 3x3 array of numbers, got {type(M).__name__}") from None
    if H.shape == (2, 3):
        H = np.vstack([H, [0.0, 0.0, 1.0]])
    if H.shape != (3, 3):
        raise TridentError(f"camera_motion must be a 2x3 affine or 3x3 homography, got shape {H.shape}")
    if not np.isfinite(H).all() or abs(H[2, 2]) < 1e-12 or abs(np.linalg.det(H)) < 1e-12:
        raise TridentError("camera_motion must be finite and invertible (pass None when no estimate was made)")
    return H / H[2, 2]


def _warp_centres(H: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warped centres [M,2] and the transform's Jacobian [M,2,2] at each one
    (a homography stretches differently across the frame; an affine does not)."""
    A, t, g = H[:2, :2], H[:2, 2], H[2, :2]
    w = c @ g + H[2, 2]
    num = c @ A.T + t
    out = num / w[:, None]
    if not g.any():
        return out, np.broadcast_to(A, (len(c), 2, 2))
    J = (A[None, :, :] - out[:, :, None] * g[None, None, :]) / w[:, None, None]
    return out, J


def warp_states(x: np.ndarray, P: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move Kalman states (and covariances) from the previous frame's pixels
    into this frame's, for a camera motion H (from `check_camera_motion`).

    The centre goes through H; width and height scale with how much H
    stretches a horizontal and a vertical segment at that centre (pure
    rotation keeps sizes); velocities go through the same linear part, so a
    pan does not look like every object suddenly speeding up."""
    if len(x) == 0:
        return x, P
    centre, J = _warp_centres(H, x[:, :2])
    sx = np.hypot(J[:, 0, 0], J[:, 1, 0])
    sy = np.hypot(J[:, 0, 1], J[:, 1, 1])
    T = np.zeros((len(x), DIM_X, DIM_X))
    for base in (0, DIM_Z):
        T[:, base : base + 2, base : base + 2] = J
        T[:, base + 2, base + 2] = sx
        T[:, base + 3, base + 3] = sy
    x_new = np.einsum("mij,mj->mi", T, x)
    x_new[:, :2] = centre
    return x_new, T @ P @ T.transpose(0, 2, 1)


def warp_boxes(boxes_xyxy: np.ndarray, H: np.ndarray) -> np.ndarray:
    """xyxy boxes of the previous frame in this frame's pixels (same rule as warp_states)."""
    if len(boxes_xyxy) == 0:
        return np.asarray(boxes_xyxy, dtype=np.float64).reshape(0, 4)
    b = xyxy_to_cxcywh(boxes_xyxy)
    centre, J = _warp_centres(H, b[:, :2])
    b[:, 2] *= np.hypot(J[:, 0, 0], J[:, 1, 0])
    b[:, 3] *= np.hypot(J[:, 0, 1], J[:, 1, 1])
    b[:, :2] = centre
    return cxcywh_to_xyxy(b)
