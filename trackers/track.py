"""Track lifecycle shared by SORT and ByteTrack.

Tracks live in a `TrackTable`: one row per live track in stacked arrays (ids,
states, Kalman mean and covariance, hit counts, last-match times), so a frame
costs a handful of numpy calls instead of a Python loop over track objects.
The algorithms (sort.py, byte_tracker.py) only decide *which* rows match
*which* detections; everything else about a track's life happens here.

Lifecycle::

    Tentative --min_hits consecutive matches--> Confirmed --missed--> Lost
    Tentative --missed--> Removed               Lost --matched--> Confirmed
    Lost --unmatched for lost_buffer_s--> Removed
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

import numpy as np

from pipeline.contracts import Detections, Tracks
from pipeline.masks import InstanceMasks
from trackers.config import TrackerConfig
from trackers.kalman import BoxKalmanFilter, cxcywh_to_xyxy, warp_boxes, warp_states

__all__ = ["TrackState", "IdCounter", "RemovedTrack", "TrackTable"]


class TrackState(enum.IntEnum):
    TENTATIVE = 0   # born, not yet matched min_hits times in a row; never reported
    CONFIRMED = 1   # matched min_hits times in a row, and matched this frame
    LOST = 2        # confirmed once, unmatched now; kept for lost_buffer_s
    REMOVED = 3     # gone; only its summary remains in the removed history


class IdCounter:
    """Track IDs of one tracker instance: 1, 2, 3, ...

    Per instance, never module-global: the original ByteTrack's class-level
    counter made IDs of one stream depend on every other stream in the process.
    """

    def __init__(self) -> None:
        self._next = 1

    def take(self, n: int) -> np.ndarray:
        ids = np.arange(self._next, self._next + n, dtype=np.int64)
        self._next += n
        return ids

    def reset(self) -> None:
        self._next = 1


@dataclass(frozen=True)
class RemovedTrack:
    """What is remembered of a removed track."""

    track_id: int
    class_id: int
    last_box: tuple[float, float, float, float]  # xyxy of its last matched box
    last_seen: float                              # frame_time of its last match
    hits: int                                     # frames it was matched in


# Plain ints for array comparisons (IntEnum member access is slow in a hot loop).
_TENTATIVE, _CONFIRMED, _LOST, _REMOVED = (int(s) for s in TrackState)

class TrackTable:
    """Rows of live tracks plus the bounded history of removed ones."""

    # Per-row arrays, kept aligned by prune(); a subclass that adds rows of
    # its own (OC-SORT's observations) extends this.
    FIELDS: tuple[str, ...] = ("ids", "state", "x", "P", "hits", "streak", "last_seen", "score", "class_id", "det_index", "last_box")

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self.kf = BoxKalmanFilter(
            config.kf_position_std, config.kf_velocity_std, config.kf_measurement_std, config.kf_init_velocity_std
        )
        self.removed: deque[RemovedTrack] = deque(maxlen=config.removed_history)
        self._ids = IdCounter()
        # Last matched mask per track, box-local (so a crowd of tracks costs its boxes, not M frames);
        # only with mask_iou_weight > 0. A track never matched with a mask has an empty one.
        self.masks: InstanceMasks | None = None
        self.clear()

    def clear(self) -> None:
        """Forget every track and restart IDs at 1."""
        self.ids = np.zeros(0, np.int64)
        self.state = np.zeros(0, np.int8)
        self.x = np.zeros((0, 8))
        self.P = np.zeros((0, 8, 8))
        self.hits = np.zeros(0, np.int64)          # total matched frames
        self.streak = np.zeros(0, np.int64)        # consecutive matched frames
        self.last_seen = np.zeros(0, np.float64)   # frame_time of the last match
        self.score = np.zeros(0, np.float32)       # score of the last matched detection
        self.class_id = np.zeros(0, np.int32)
        self.det_index = np.zeros(0, np.int32)     # detection row matched this frame, -1 if none
        self.last_box = np.zeros((0, 4))           # last matched xyxy box
        self.masks = None
        self.removed.clear()
        self._ids.reset()

    def __len__(self) -> int:
        return int(len(self.ids))

    def boxes(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Predicted xyxy boxes of the given rows."""
        return cxcywh_to_xyxy(self.x[rows, :4])

    def predict(self, steps: float, dets: Detections) -> None:
        """Start a frame: advance every track by `steps` nominal frames and
        clear the previous frame's matches."""
        self.x, self.P = self.kf.predict(self.x, self.P, steps)
        self.det_index[:] = -1
        if self.masks is not None and dets.masks is not None and dets.masks.frame_hw != self.masks.frame_hw:
            # The frame size changed (a reconnect at another resolution): old
            # masks mean nothing now, so those tracks fall back to box IoU.
            self.masks = InstanceMasks.empty(dets.masks.frame_hw, len(self.ids))

    def warp(self, H: np.ndarray) -> None:
        """The camera moved by H (previous frame -> this frame): carry every
        track's state and last box into this frame's pixels, so association
        compares boxes in one coordinate system."""
        if len(self.ids) == 0:
            return
        self.x, self.P = warp_states(self.x, self.P, H)
        self.last_box = warp_boxes(self.last_box, H)

    def update(self, rows: np.ndarray, det_rows: np.ndarray, dets: Detections, now: float) -> None:
        """Correct `rows` with detections `det_rows` (pairwise) and advance their lifecycle."""
        if len(rows) == 0:
            return
        boxes = dets.boxes[det_rows].astype(np.float64)
        self.x[rows], self.P[rows] = self.kf.update(self.x[rows], self.P[rows], boxes)
        self.hits[rows] += 1
        self.streak[rows] += 1
        self.last_seen[rows] = now
        self.score[rows] = dets.scores[det_rows]
        self.class_id[rows] = dets.class_ids[det_rows]
        self.det_index[rows] = det_rows
        self.last_box[rows] = boxes
        state = self.state[rows]
        promote = (state == _LOST) | ((state == _TENTATIVE) & (self.streak[rows] >= self.config.min_hits))
        self.state[rows[promote]] = _CONFIRMED
        if self.masks is not None and dets.masks is not None:
            self.masks = self.masks.replace(rows, dets.masks[det_rows])

    def mark_missed(self, rows: np.ndarray) -> None:
        """Unmatched this frame: tentative tracks die, confirmed ones become Lost."""
        if len(rows) == 0:
            return
        self.streak[rows] = 0
        state = self.state[rows]
        self.state[rows[state == _TENTATIVE]] = _REMOVED
        self.state[rows[state == _CONFIRMED]] = _LOST

    def spawn(self, det_rows: np.ndarray, dets: Detections, now: float, confirmed: bool) -> None:
        """Start one track per detection row."""
        n = len(det_rows)
        if n == 0:
            return
        boxes = dets.boxes[det_rows].astype(np.float64)
        x, P = self.kf.initiate(boxes)
        state = _CONFIRMED if confirmed or self.config.min_hits <= 1 else _TENTATIVE
        self.ids = np.concatenate([self.ids, self._ids.take(n)])
        self.state = np.concatenate([self.state, np.full(n, state, np.int8)])
        self.x = np.concatenate([self.x, x])
        self.P = np.concatenate([self.P, P])
        self.hits = np.concatenate([self.hits, np.ones(n, np.int64)])
        self.streak = np.concatenate([self.streak, np.ones(n, np.int64)])
        self.last_seen = np.concatenate([self.last_seen, np.full(n, now)])
        self.score = np.concatenate([self.score, dets.scores[det_rows]])
        self.class_id = np.concatenate([self.class_id, dets.class_ids[det_rows]])
        self.det_index = np.concatenate([self.det_index, det_rows.astype(np.int32)])
        self.last_box = np.concatenate([self.last_box, boxes])
        if self.config.mask_iou_weight > 0 and dets.masks is not None:
            new = dets.masks[det_rows]
            if self.masks is None:
                # First masks seen: older tracks get empty masks and fall
                # back to box IoU.
                self.masks = InstanceMasks.empty(new.frame_hw, len(self.ids) - n)
            self.masks = InstanceMasks.concat([self.masks, new])
        elif self.masks is not None:
            self.masks = InstanceMasks.concat([self.masks, InstanceMasks.empty(self.masks.frame_hw, n)])

    def prune(self, now: float) -> None:
        """Remove Lost tracks older than lost_buffer_s, then drop Removed rows into the history."""
        expired = (self.state == _LOST) & (now - self.last_seen > self.config.lost_buffer_s)
        self.state[expired] = _REMOVED
        gone = self.state == _REMOVED
        if not gone.any():
            return
        for i in np.flatnonzero(gone):
            self.removed.append(
                RemovedTrack(
                    track_id=int(self.ids[i]),
                    class_id=int(self.class_id[i]),
                    last_box=tuple(float(v) for v in self.last_box[i]),
                    last_seen=float(self.last_seen[i]),
                    hits=int(self.hits[i]),
                )
            )
        keep = ~gone
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name)[keep])
        if self.masks is not None:
            self.masks = self.masks[keep]

    def output(self, now: float) -> Tracks:
        """Confirmed tracks matched this frame, plus Lost ones within report_coasting_s."""
        report = self.state == _CONFIRMED
        if self.config.report_coasting_s > 0:
            # a hair of slack: at 10 fps the third frame is 0.1 s away give or take float rounding
            report |= (self.state == _LOST) & (now - self.last_seen <= self.config.report_coasting_s + 1e-6)
        rows = np.flatnonzero(report)
        if len(rows) == 0:
            return Tracks.empty()
        rows = rows[np.argsort(self.ids[rows], kind="stable")]
        det_index = self.det_index[rows]
        # A coasting track always reports the filter's prediction; a matched
        # one reports the detector's box unless filtered boxes are asked for.
        if self.config.output_filtered_boxes:
            boxes = self.boxes(rows)
        else:
            boxes = np.where(det_index[:, None] >= 0, self.last_box[rows], self.boxes(rows))
        return Tracks(
            track_ids=self.ids[rows].copy(),
            boxes=boxes.astype(np.float32),
            scores=self.score[rows].astype(np.float32),
            class_ids=self.class_id[rows].astype(np.int32),
            det_index=det_index.astype(np.int32),
        )
