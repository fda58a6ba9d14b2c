"""Association between predicted tracks and detections.

Box IoU is vectorised numpy (broadcasting); mask IoU counts pixels only where
two box-local masks overlap (`InstanceMasks.iou`). Gating turns
a similarity below its threshold (or a class mismatch) into "impossible", and
`assign` solves the optimal one-to-one matching with
``scipy.optimize.linear_sum_assignment``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.boxes import box_iou  # re-exported: the one box IoU of the project
from pipeline.masks import InstanceMasks

__all__ = ["box_iou", "mask_iou", "gate_classes", "assign", "Assignment"]

# Cost given to gated pairs. Finite, so linear_sum_assignment always has a
# feasible solution; any pair left at this cost is dropped afterwards.
_GATED = 1e6


def mask_iou(a: InstanceMasks, b: InstanceMasks) -> np.ndarray:
    """[M,N] mask IoU of two InstanceMasks of one frame size; empty masks give 0.

    Counted over the overlap of each pair's crops only, so pairs whose boxes
    are apart cost nothing and no frame-sized array is made (`InstanceMasks.iou`).
    """
    if not isinstance(a, InstanceMasks) or not isinstance(b, InstanceMasks):
        raise TypeError(
            f"mask_iou takes pipeline.masks.InstanceMasks, got {type(a).__name__} and {type(b).__name__}; "
            "wrap bool[N,H,W] arrays with InstanceMasks.from_dense"
        )
    return a.iou(b)


def gate_classes(similarity: np.ndarray, track_classes: np.ndarray, det_classes: np.ndarray) -> np.ndarray:
    """Zero the similarity of every track/detection pair of different classes."""
    same = np.asarray(track_classes)[:, None] == np.asarray(det_classes)[None, :]
    return np.where(same, similarity, 0.0)


class Assignment:
    """Result of one association: matched (row, col) pairs and the leftovers."""

    __slots__ = ("rows", "cols", "unmatched_rows", "unmatched_cols")

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> None:
        self.rows = rows.astype(np.intp)
        self.cols = cols.astype(np.intp)
        keep_r = np.ones(n_rows, dtype=bool)
        keep_r[self.rows] = False
        keep_c = np.ones(n_cols, dtype=bool)
        keep_c[self.cols] = False
        self.unmatched_rows = np.flatnonzero(keep_r)
        self.unmatched_cols = np.flatnonzero(keep_c)

    def __len__(self) -> int:
        return int(len(self.rows))


def assign(similarity: np.ndarray, min_similarity: float, gate: np.ndarray | None = None) -> Assignment:
    """Maximise total similarity over one-to-one pairs with gate >= min_similarity.

    `gate` defaults to the similarity itself; OC-SORT passes IoU there while
    the similarity also holds its momentum term. Pairs below the gate never
    match, even when the solver would pair them for lack of anything better.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    n_rows, n_cols = similarity.shape
    empty = np.zeros(0, dtype=np.intp)
    if n_rows == 0 or n_cols == 0:
        return Assignment(empty, empty, n_rows, n_cols)
    allowed = (similarity if gate is None else gate) >= min_similarity
    if not allowed.any():
        return Assignment(empty, empty, n_rows, n_cols)
    # Solve only over rows/cols that have at least one admissible pair:
    # with many new or far-away objects this keeps the problem small.
    rows_live = np.flatnonzero(allowed.any(axis=1))
    cols_live = np.flatnonzero(allowed.any(axis=0))
    sub_allowed = allowed[np.ix_(rows_live, cols_live)]
    cost = np.where(sub_allowed, 1.0 - similarity[np.ix_(rows_live, cols_live)], _GATED)
    r, c = linear_sum_assignment(cost)
    ok = sub_allowed[r, c]
    return Assignment(rows_live[r[ok]], cols_live[c[ok]], n_rows, n_cols)
