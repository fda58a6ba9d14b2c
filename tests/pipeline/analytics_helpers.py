"""Hand-made track sequences for the analytics tests: a track is a list of anchor positions per frame."""

from __future__ import annotations

import numpy as np

from pipeline.analytics import StreamAnalytics, zones_from_data
from pipeline.contracts import Tracks

CLASSES = ("person", "car")


def box_at(x: float, y: float, w: float = 20.0, h: float = 40.0) -> list[float]:
    """A box whose bottom centre (the default anchor) is (x, y)."""
    return [x - w / 2, y - h, x + w / 2, y]


def tracks(rows: list[tuple]) -> Tracks:
    """rows of (track_id, x, y) observed, (track_id, x, y, False) coasting, optional class id 5th."""
    if not rows:
        return Tracks.empty()
    ids = np.array([r[0] for r in rows], np.int64)
    boxes = np.array([box_at(r[1], r[2]) for r in rows], np.float32)
    observed = [r[3] if len(r) > 3 else True for r in rows]
    det_index = np.array([i if o else -1 for i, o in enumerate(observed)], np.int32)
    classes = np.array([r[4] if len(r) > 4 else 0 for r in rows], np.int32)
    return Tracks(ids, boxes, np.full(len(rows), 0.9, np.float32), classes, det_index)


def run(zones: dict, frames: list[list[tuple]], fps: float = 10.0, pts: list[float] | None = None):
    """Feed the frames through one stream's analytics; returns (events, analytics)."""
    analytics = StreamAnalytics("cam", zones_from_data(zones), CLASSES)
    events = []
    for i, rows in enumerate(frames):
        t = pts[i] if pts is not None else i / fps
        events += analytics.update(i, t, 1_700_000_000.0 + t, tracks(rows))
    return events, analytics


def walk(track_id: int, start: tuple[float, float], end: tuple[float, float], steps: int) -> list[tuple]:
    return [(track_id, start[0] + (end[0] - start[0]) * k / (steps - 1), start[1] + (end[1] - start[1]) * k / (steps - 1)) for k in range(steps)]
