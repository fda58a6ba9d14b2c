"""Polygon zones: enter, exit, occupancy and dwell per track, from observed anchor positions.

Only observed positions (`det_index >= 0`) move a track in or out, so a box
the tracker only predicts cannot drift into a zone and trigger anything. A
track that ends (leaves the tracker's output) while inside exits with reason
`lost`, so occupancy returns to zero when people leave unseen. Dwell time is
measured on the stream's clock (`pts`), not by counting frames: frames the
pipeline dropped or a reconnect's gap still count as time spent, and the
`dwell` event fires on the first observed frame at or past `dwell_s`, once per
visit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.analytics.geometry import anchor_points, inside_polygon
from pipeline.analytics.zones import PolygonZone


@dataclass
class _Visit:
    since: float  # pts of the observed frame it entered on
    class_id: int
    box: tuple
    score: float
    dwelt: bool = False


@dataclass(frozen=True)
class ZoneChange:
    kind: str  # zone_enter | zone_exit | dwell
    track_id: int
    class_id: int
    box: tuple
    score: float
    seconds: float  # time inside so far (0 on enter)
    reason: str = ""  # zone_exit: "left" or "lost"


class PolygonCounter:
    def __init__(self, zone: PolygonZone, class_names: tuple[str, ...]):
        self.zone, self.class_names = zone, class_names
        self.polygon = zone.array
        self.allowed = {class_names.index(c) for c in zone.classes} if zone.classes else None
        self._inside: dict[int, _Visit] = {}
        self.entered = self.exited = self.dwells = 0
        self._by_class: dict[str, dict[str, int]] = {}

    def update(self, pts: float, ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, present: set[int]) -> list[ZoneChange]:
        """`ids`..`class_ids`: this frame's observed tracks; `present`: every track id in its Tracks."""
        changes = [self._leave(tid, pts, "lost") for tid in [t for t in self._inside if t not in present]]
        if len(ids):
            keep = np.ones(len(ids), bool) if self.allowed is None else np.isin(class_ids, list(self.allowed))
            inside = inside_polygon(anchor_points(boxes, self.zone.anchor), self.polygon) & keep
            for r in np.flatnonzero(keep | np.isin(ids, list(self._inside))):
                tid, visit = int(ids[r]), self._inside.get(int(ids[r]))
                box, score, cls = tuple(float(v) for v in boxes[r]), float(scores[r]), int(class_ids[r])
                if inside[r] and visit is None:
                    self._inside[tid] = _Visit(pts, cls, box, score)
                    self.entered += 1
                    self._count(cls, "entered")
                    changes.append(ZoneChange("zone_enter", tid, cls, box, score, 0.0))
                elif visit is not None and not inside[r]:
                    visit.box, visit.score = box, score
                    changes.append(self._leave(tid, pts, "left"))
                elif visit is not None:
                    visit.box, visit.score, visit.class_id = box, score, cls
                    stayed = pts - visit.since
                    if self.zone.dwell_s > 0 and not visit.dwelt and stayed >= self.zone.dwell_s:
                        visit.dwelt = True
                        self.dwells += 1
                        self._count(cls, "dwell")
                        changes.append(ZoneChange("dwell", tid, cls, box, score, stayed))
        return changes

    def _leave(self, tid: int, pts: float, reason: str) -> ZoneChange:
        visit = self._inside.pop(tid)
        self.exited += 1
        self._count(visit.class_id, "exited")
        return ZoneChange("zone_exit", tid, visit.class_id, visit.box, visit.score, max(0.0, pts - visit.since), reason)

    def _name(self, class_id: int) -> str:
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else str(class_id)

    def _count(self, class_id: int, key: str) -> None:
        row = self._by_class.setdefault(self._name(class_id), {"entered": 0, "exited": 0, "dwell": 0})
        row[key] += 1

    @property
    def occupancy(self) -> int:
        return len(self._inside)

    def counts(self) -> dict:
        by_class = {k: dict(v, occupancy=0) for k, v in self._by_class.items()}
        for visit in self._inside.values():  # a track's class may have changed since it entered
            by_class.setdefault(self._name(visit.class_id), {"entered": 0, "exited": 0, "dwell": 0, "occupancy": 0})["occupancy"] += 1
        return {
            "type": "polygon",
            "occupancy": self.occupancy,
            "entered": self.entered,
            "exited": self.exited,
            "dwell": self.dwells,
            "by_class": dict(sorted(by_class.items())),
        }
