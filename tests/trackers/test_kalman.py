"""The batched box Kalman filter equals filterpy's KalmanFilter row by row."""

from __future__ import annotations

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter

from trackers.kalman import BoxKalmanFilter, cxcywh_to_xyxy, xyxy_to_cxcywh


@pytest.fixture
def kf() -> BoxKalmanFilter:
    return BoxKalmanFilter(position_std=1 / 20, velocity_std=1 / 160, measurement_std=1 / 20, init_velocity_std=10 / 160)


def _filterpy_twin(kf: BoxKalmanFilter, x: np.ndarray, P: np.ndarray) -> KalmanFilter:
    ref = KalmanFilter(dim_x=8, dim_z=4)
    ref.x = x.reshape(8, 1).copy()
    ref.P = P.copy()
    ref.H = kf.H.copy()
    return ref


def test_every_row_matches_filterpy_over_predict_update_and_a_gap(kf: BoxKalmanFilter) -> None:
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 20, 50, 100], [300, 40, 420, 90], [5, 5, 6, 7]], dtype=np.float64)
    x, P = kf.initiate(boxes)
    refs = [_filterpy_twin(kf, x[i], P[i]) for i in range(len(x))]
    for step, steps in enumerate([1.0, 1.0, 30.0, 1.0, 2.5]):
        for i, ref in enumerate(refs):
            ref.F = kf.transition(steps)
            ref.Q = kf.process_noise(x[i : i + 1], steps)[0]
        x, P = kf.predict(x, P, steps)
        z = cxcywh_to_xyxy(x[:, :4]) + rng.normal(0, 2, (len(x), 4))
        for i, ref in enumerate(refs):
            ref.predict()
            ref.R = kf.measurement_noise(x[i : i + 1])[0]
            ref.update(xyxy_to_cxcywh(z[i : i + 1])[0])
        x, P = kf.update(x, P, z)
        for i, ref in enumerate(refs):
            np.testing.assert_allclose(x[i], ref.x.ravel(), rtol=1e-9, atol=1e-9, err_msg=f"state, step {step}")
            np.testing.assert_allclose(P[i], ref.P, rtol=1e-9, atol=1e-9, err_msg=f"covariance, step {step}")


def test_prediction_over_a_gap_moves_by_velocity_times_elapsed_steps(kf: BoxKalmanFilter) -> None:
    x, P = kf.initiate(np.array([[0.0, 0.0, 10.0, 20.0]]))
    x[0, 4:6] = [2.0, -1.0]
    x2, P2 = kf.predict(x, P, 30.0)
    np.testing.assert_allclose(x2[0, :2], [5.0 + 60.0, 10.0 - 30.0])
    np.testing.assert_allclose(x2[0, 2:4], [10.0, 20.0])
    # Uncertainty grows with the gap: 30 steps add 30x the one-step variance.
    _, P1 = kf.predict(x, P, 1.0)
    assert P2[0, 0, 0] > P1[0, 0, 0] * 10


def test_noise_scales_with_box_size(kf: BoxKalmanFilter) -> None:
    x, _ = kf.initiate(np.array([[0, 0, 10, 20], [0, 0, 100, 200]], dtype=np.float64))
    R = kf.measurement_noise(x)
    Q = kf.process_noise(x, 1.0)
    assert R[1, 0, 0] == pytest.approx(100 * R[0, 0, 0])   # std x10 -> variance x100
    assert R[0, 1, 1] == pytest.approx((20 / 20) ** 2)      # y uses the height
    assert Q[1, 4, 4] == pytest.approx(100 * Q[0, 4, 4])


def test_degenerate_box_keeps_noise_positive_and_update_finite(kf: BoxKalmanFilter) -> None:
    x, P = kf.initiate(np.array([[5.0, 5.0, 5.0, 5.0]]))
    assert np.all(np.diag(P[0]) > 0)
    x, P = kf.predict(x, P, 1.0)
    x, P = kf.update(x, P, np.array([[5.0, 5.0, 6.0, 6.0]]))
    assert np.isfinite(x).all() and np.isfinite(P).all()


def test_box_conversions_round_trip_and_clip_negative_sizes() -> None:
    b = np.array([[1.0, 2.0, 11.0, 32.0]])
    np.testing.assert_allclose(xyxy_to_cxcywh(b), [[6.0, 17.0, 10.0, 30.0]])
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(b)), b)
    np.testing.assert_allclose(cxcywh_to_xyxy(np.array([[5.0, 5.0, -4.0, 2.0]])), [[5.0, 4.0, 5.0, 6.0]])
