"""One stream's analytics: its zones' counters driven by its Tracks, frame by frame, into Events.

Pure and synchronous like the trackers: no threads, no I/O, one instance per
stream, `update()` once per frame in the stream's order. It remembers each
track's last *observed* box (the start of its next move) and forgets a track
when the tracker stops reporting it, so memory follows the live tracks.
"""

from __future__ import annotations

import numpy as np

from pipeline.analytics.lines import LineCounter
from pipeline.analytics.polygons import PolygonCounter
from pipeline.analytics.zones import Zones
from pipeline.contracts import Event, Tracks


class StreamAnalytics:
    def __init__(self, stream_id: str, zones: Zones, class_names: tuple[str, ...]):
        zones.check_classes(class_names)
        self.stream_id, self.zones, self.class_names = stream_id, zones, class_names
        self.lines = [LineCounter(z, class_names) for z in zones.lines]
        self.polygons = [PolygonCounter(z, class_names) for z in zones.polygons]
        self._last_box: dict[int, np.ndarray] = {}  # track id -> its last observed box

    def reset(self) -> None:
        """The stream's clock restarted (its tracker was reset): every track is gone."""
        self.update(0, 0.0, 0.0, Tracks.empty())
        self._last_box.clear()

    def update(self, frame_index: int, pts: float, wall_time: float, tracks: Tracks | None) -> list[Event]:
        tracks = tracks if tracks is not None else Tracks.empty()
        present = set(tracks.track_ids.tolist())
        observed = np.flatnonzero(tracks.det_index >= 0)
        ids = tracks.track_ids[observed]
        boxes, scores, classes = tracks.boxes[observed], tracks.scores[observed], tracks.class_ids[observed]
        has_prev = np.fromiter((int(t) in self._last_box for t in ids), bool, len(ids))
        moved = np.flatnonzero(has_prev)
        prev = np.stack([self._last_box[int(t)] for t in ids[moved]]) if len(moved) else np.zeros((0, 4), np.float32)
        events: list[Event] = []

        def event(kind: str, zone: str, tid: int, cls: int, box, extra: dict) -> None:
            name = self.class_names[cls] if 0 <= cls < len(self.class_names) else str(cls)
            events.append(Event(self.stream_id, frame_index, pts, wall_time, kind, zone, tid, cls, tuple(float(v) for v in box), {"class": name, **extra}))

        for counter in self.lines:
            for r, direction in counter.update(ids[moved], prev, boxes[moved], classes[moved], present):
                i = moved[r]
                event("line_cross", counter.zone.name, int(ids[i]), int(classes[i]), boxes[i], {"score": round(float(scores[i]), 4), "direction": direction})
        for counter in self.polygons:
            for ch in counter.update(pts, ids, boxes, scores, classes, present):
                extra = {"score": round(ch.score, 4), "dwell_s": round(ch.seconds, 3), "occupancy": counter.occupancy}
                if ch.reason:
                    extra["reason"] = ch.reason
                event(ch.kind, counter.zone.name, ch.track_id, ch.class_id, ch.box, extra)
        for tid in [t for t in self._last_box if t not in present]:
            del self._last_box[tid]
        for t, box in zip(ids.tolist(), boxes):
            self._last_box[t] = box
        return events

    def counts(self) -> dict[str, dict]:
        """Zone name -> its counts (lines: in/out; polygons: occupancy, entered, exited, dwell), each by class too."""
        return {c.zone.name: c.counts() for c in [*self.lines, *self.polygons]}
