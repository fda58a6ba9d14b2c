"""Association between predicted tracks and detections.

Similarities are vectorised numpy (no Python loop over pairs): box IoU by
broadcasting, mask IoU as one matrix product of flattened masks. Gating turns
a similarity below its threshold (or a class mismatch) into "impossible", and
`assign` solves the optimal one-to-one matching with
``scipy.optimize.linear_sum_assignment``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.boxes import box_iou  # re-exported: the one box IoU of the project

__all__ = ["box_iou", "mask_iou", "gate_classes", "assign", "Assignment"]

# Cost given to gated pairs. Finite, so linear_sum_assignment always has a
# feasible solution; any pair left at this cost is dropped afterwards.
_GATED = 1e6


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[M,H,W] x [N,H,W] bool masks -> [M,N] IoU; empty masks give 0.

    Intersections are one float32 matrix product of flattened masks (exact
    for counts below 2**24 pixels per mask, i.e. any frame up to 16 MP).
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mask_iou needs [M,H,W] and [N,H,W] masks of one frame size, got {a.shape} and {b.shape}")
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = (fa @ fb.T).astype(np.float64)
    union = fa.sum(1, dtype=np.float64)[:, None] + fb.sum(1, dtype=np.float64)[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


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


def assign(similarity: np.ndarray, min_similarity: float) -> Assignment:
    """Maximise total similarity over one-to-one pairs with similarity >= min_similarity.

    Pairs below the gate never match, even when the solver would pair them
    for lack of anything better.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    n_rows, n_cols = similarity.shape
    empty = np.zeros(0, dtype=np.intp)
    if n_rows == 0 or n_cols == 0:
        return Assignment(empty, empty, n_rows, n_cols)
    allowed = similarity >= min_similarity
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
