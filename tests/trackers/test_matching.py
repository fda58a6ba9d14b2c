"""IoU / mask-IoU matrices, class gating and gated optimal assignment."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.masks import InstanceMasks
from trackers.matching import assign, box_iou, gate_classes, mask_iou


def test_box_iou_matches_hand_computed_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], dtype=np.float64)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float64)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0], [0.5, 25 / 125, 0.0]])


def test_box_iou_of_zero_area_or_empty_inputs_is_zero() -> None:
    assert box_iou(np.array([[5, 5, 5, 9.0]]), np.array([[0, 0, 10, 10.0]]))[0, 0] == 0.0
    assert box_iou(np.array([[5, 5, 5, 5.0]]), np.array([[5, 5, 5, 5.0]]))[0, 0] == 0.0
    assert box_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)


def test_mask_iou_matches_hand_computed_values() -> None:
    m = np.zeros((3, 4, 4), dtype=bool)
    m[0, :2, :] = True          # 8 px
    m[1, :, :2] = True          # 8 px, overlaps m0 in 4
    # m[2] empty
    im = InstanceMasks.from_dense(m)
    np.testing.assert_allclose(mask_iou(im, im), [[1.0, 4 / 12, 0.0], [4 / 12, 1.0, 0.0], [0.0, 0.0, 0.0]])


def test_mask_iou_rejects_masks_of_different_frame_sizes() -> None:
    with pytest.raises(ValueError, match="frame size"):
        mask_iou(InstanceMasks.from_dense(np.zeros((1, 4, 4), bool)), InstanceMasks.from_dense(np.zeros((1, 5, 4), bool)))


def test_gate_classes_zeroes_cross_class_pairs() -> None:
    sim = np.full((2, 2), 0.9)
    np.testing.assert_array_equal(gate_classes(sim, np.array([0, 1]), np.array([1, 1])), [[0.0, 0.0], [0.9, 0.9]])


def test_assign_maximises_total_similarity_not_greedy_best() -> None:
    # Greedy would pair (0,0)=0.9 and leave row 1 with 0.1; optimal is 0.8+0.8.
    sim = np.array([[0.9, 0.8], [0.8, 0.1]])
    a = assign(sim, 0.05)
    assert sorted(zip(a.rows.tolist(), a.cols.tolist())) == [(0, 1), (1, 0)]


def test_assign_never_returns_pairs_below_the_gate() -> None:
    sim = np.array([[0.6, 0.0], [0.0, 0.1], [0.0, 0.0]])
    a = assign(sim, 0.3)
    assert list(zip(a.rows.tolist(), a.cols.tolist())) == [(0, 0)]
    assert a.unmatched_rows.tolist() == [1, 2]
    assert a.unmatched_cols.tolist() == [1]


def test_assign_on_empty_sides_matches_nothing() -> None:
    a = assign(np.zeros((0, 3)), 0.2)
    assert len(a) == 0 and a.unmatched_cols.tolist() == [0, 1, 2]
    b = assign(np.zeros((2, 0)), 0.2)
    assert b.unmatched_rows.tolist() == [0, 1]
