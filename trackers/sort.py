"""SORT: one Hungarian association of every live track against confident boxes.

Bewley et al., "Simple Online and Realtime Tracking" (2016): predict each
track with a constant-velocity Kalman filter, match predicted boxes to the
frame's detections by IoU, start tracks from the leftovers. Written from the
paper; the reference implementation is GPL and none of its code is used.

Differences from the paper, shared with ByteTrack through `BaseTracker`: the
filter runs over real time gaps, the lost buffer is in seconds, and a track
is reported once it has been matched `min_hits` frames in a row.
"""

from __future__ import annotations

import numpy as np

from pipeline.contracts import Detections
from trackers.base import BaseTracker
from trackers.matching import assign

__all__ = ["SortTracker"]


class SortTracker(BaseTracker):
    """SORT over `TrackerConfig`: uses `high_score` as the detection floor
    (lower-scored detections are ignored entirely) and `match_iou` as the gate."""

    def _associate(self, dets: Detections, usable: np.ndarray, now: float, first: bool) -> None:
        cfg = self.config
        table = self.table
        det_rows = np.flatnonzero(usable & (dets.scores >= cfg.high_score))
        # Every live track competes at once: SORT has no priority between
        # confirmed, lost and tentative tracks.
        rows = np.arange(len(table))
        match = assign(self.similarity(rows, det_rows, dets), cfg.match_iou)
        table.update(rows[match.rows], det_rows[match.cols], dets, now)
        table.mark_missed(rows[match.unmatched_rows])
        born = det_rows[match.unmatched_cols]
        born = born[dets.scores[born] >= cfg.new_track_score]
        table.spawn(born, dets, now, confirmed=first and cfg.confirm_on_first_frame)
