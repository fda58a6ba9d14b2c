"""Line crossing counts: a track's anchor moving across a line between two observed positions.

A crossing is the segment between a track's two consecutive *observed* anchor
positions (frames where the tracker matched a detection, `det_index >= 0`)
intersecting the line, not a centroid found inside a band around it, so a fast
object that jumps over the line between frames is counted and a slow one
standing near it is not. Coasting (predicted-only) positions never count:
the move is measured from the last observed position to the next one.

Each track counts once per line and direction: a crossing in the direction it
was last counted in is ignored. A crossing back counts at once when the track
had moved at least `hysteresis_px` away from the line since its counted
crossing; otherwise it is held, and counts only if the track then gets that
far on the new side (a box that jitters across the line while its object
stands on it is one crossing, and a real return is still counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.analytics.geometry import anchor_points, crossings, distance_to_polyline
from pipeline.analytics.zones import LineZone


@dataclass
class _LineTrack:
    counted: str  # direction of the last counted crossing
    far: float  # furthest distance from the line since then, on the counted side
    pending: str | None = None  # a crossing back not counted yet (too close to the line)


class LineCounter:
    """Counts for one line of one stream; `update` returns (row, direction) for each new crossing."""

    def __init__(self, zone: LineZone, class_names: tuple[str, ...]):
        self.zone, self.class_names = zone, class_names
        self.line = zone.array
        self.allowed = {class_names.index(c) for c in zone.classes} if zone.classes else None
        self._tracks: dict[int, _LineTrack] = {}
        self.total = {"in": 0, "out": 0}
        self.by_class: dict[str, dict[str, int]] = {}

    def update(self, ids: np.ndarray, prev_boxes: np.ndarray, boxes: np.ndarray, class_ids: np.ndarray, present: set[int]) -> list[tuple[int, str]]:
        """`ids`, `prev_boxes`, `boxes`, `class_ids`: the observed tracks that have a previous observed box.

        `present`: every track id in this frame's Tracks (coasting too); state of the others is dropped.
        """
        for tid in [t for t in self._tracks if t not in present]:
            del self._tracks[tid]
        if not len(ids):
            return []
        keep = np.ones(len(ids), bool) if self.allowed is None else np.isin(class_ids, list(self.allowed))
        p, q = anchor_points(prev_boxes, self.zone.anchor), anchor_points(boxes, self.zone.anchor)
        crossed, right = crossings(p, q, self.line)
        crossed &= keep
        # distances only matter for tracks with state (counted before): the common case is none
        rows = [r for r in range(len(ids)) if keep[r] and (crossed[r] or int(ids[r]) in self._tracks)]
        if not rows:
            return []
        dist = distance_to_polyline(q[rows], self.line)
        hyst = self.zone.hysteresis_px
        found: list[tuple[int, str]] = []
        for r, d_line in zip(rows, dist):
            tid = int(ids[r])
            st = self._tracks.get(tid)
            if crossed[r]:
                direction = "in" if right[r] else "out"
                if st is None:
                    self._tracks[tid] = _LineTrack(direction, float(d_line))
                    found.append((r, direction))
                elif direction != st.counted:
                    if st.far >= hyst:  # it had really left the line: a real return
                        st.counted, st.far, st.pending = direction, float(d_line), None
                        found.append((r, direction))
                    else:
                        st.pending = direction
                else:  # back to the side it was counted on: the held crossing was jitter
                    st.pending = None
                    st.far = max(st.far, float(d_line))
            elif st is not None:
                if st.pending is not None:
                    if d_line >= hyst:
                        st.counted, st.far, st.pending = st.pending, float(d_line), None
                        found.append((r, st.counted))
                else:
                    st.far = max(st.far, float(d_line))
        for r, direction in found:
            self.total[direction] += 1
            name = self._name(int(class_ids[r]))
            self.by_class.setdefault(name, {"in": 0, "out": 0})[direction] += 1
        return found

    def _name(self, class_id: int) -> str:
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else str(class_id)

    def counts(self) -> dict:
        return {"type": "line", **self.total, "by_class": {k: dict(v) for k, v in sorted(self.by_class.items())}}
