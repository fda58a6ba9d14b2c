"""Plane geometry for zones, vectorised over a frame's tracks: anchors, crossings, inside tests, distances.

Everything is in frame pixels with the image's axes (x right, y down). The side
of a point relative to a directed segment a->b is the sign of the cross product
(b - a) x (p - a); with y pointing down, a positive value is on the walker's
right when walking from a to b.
"""

from __future__ import annotations

import numpy as np

ANCHORS = ("bottom_center", "center", "top_center")


def anchor_points(boxes: np.ndarray, anchor: str) -> np.ndarray:
    """float64[N,2] anchor of each xyxy box. bottom_center is where a person or car touches the ground."""
    boxes = np.asarray(boxes, np.float64)
    x = (boxes[:, 0] + boxes[:, 2]) * 0.5
    if anchor == "bottom_center":
        y = boxes[:, 3]
    elif anchor == "center":
        y = (boxes[:, 1] + boxes[:, 3]) * 0.5
    elif anchor == "top_center":
        y = boxes[:, 1]
    else:
        raise ValueError(f"unknown anchor {anchor!r}")
    return np.stack([x, y], axis=1)


def _cross(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    return ax * by - ay * bx


def crossings(p: np.ndarray, q: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For moves p[i] -> q[i] (float[N,2]) against a polyline (float[K,2], K >= 2):

    returns (crossed bool[N], right bool[N]): whether the move crosses any segment of
    the line, and whether it ended on the right side of the first segment it crossed.

    Sides are half-open (a point exactly on the line counts as the left side), so a
    move that ends on the line and the next move that leaves it count one crossing,
    never two. The crossing must fall within a segment's extent (its end points
    included), not on the segment's infinite extension.
    """
    n = len(p)
    crossed = np.zeros(n, bool)
    right = np.zeros(n, bool)
    if n == 0:
        return crossed, right
    for a, b in zip(line[:-1], line[1:]):
        dx, dy = b[0] - a[0], b[1] - a[1]
        side_p = _cross(dx, dy, p[:, 0] - a[0], p[:, 1] - a[1]) > 0
        side_q = _cross(dx, dy, q[:, 0] - a[0], q[:, 1] - a[1]) > 0
        # the line's end points on either side of the move (or on it): the crossing is within the segment
        mx, my = q[:, 0] - p[:, 0], q[:, 1] - p[:, 1]
        oa = _cross(mx, my, a[0] - p[:, 0], a[1] - p[:, 1])
        ob = _cross(mx, my, b[0] - p[:, 0], b[1] - p[:, 1])
        hit = (side_p != side_q) & (oa * ob <= 0) & ~crossed
        right[hit] = side_q[hit]
        crossed |= hit
    return crossed, right


def distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """float64[N]: each point's distance to the nearest segment of the polyline."""
    best = np.full(len(points), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        ab = b - a
        denom = float(ab @ ab) or 1.0
        t = np.clip(((points - a) @ ab) / denom, 0.0, 1.0)
        nearest = a + t[:, None] * ab
        best = np.minimum(best, np.hypot(*(points - nearest).T))
    return best


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """bool[N]: even-odd rule; a point on the boundary may fall either way (it is measure zero)."""
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), bool)
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        spans = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= spans & (x < x_at)
    return inside


def polygon_area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
