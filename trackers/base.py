"""What every tracker shares: input checks, time handling, similarity, output.

An algorithm subclasses `BaseTracker` and implements `_associate`, which only
decides which live tracks take which detections this frame (through
`self.table.update / mark_missed / spawn`). Prediction over the real time gap,
pruning and building `Tracks` happen here once, so SORT and ByteTrack cannot
drift apart on them.
"""

from __future__ import annotations

import abc
import math
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.contracts import Detections, Tracks

from pipeline.errors import TridentError
from trackers.config import TrackerConfig
from trackers.kalman import check_camera_motion
from trackers.matching import box_iou, gate_classes, mask_iou
from trackers.track import RemovedTrack, TrackState, TrackTable

__all__ = ["Tracker", "BaseTracker"]


@runtime_checkable
class Tracker(Protocol):
    """The tracker contract the pipeline relies on."""

    config: TrackerConfig

    def update(self, detections: Detections, frame_time: float, camera_motion: np.ndarray | None = None) -> Tracks: ...

    def predict(self, frame_time: float, camera_motion: np.ndarray | None = None) -> Tracks: ...

    def reset(self) -> None: ...


class BaseTracker(abc.ABC):
    """Shared machinery; see the module docstring."""

    # The row store; an algorithm that remembers more per track subclasses it.
    table_class: type[TrackTable] = TrackTable

    def __init__(self, config: TrackerConfig) -> None:
        if not isinstance(config, TrackerConfig):
            raise TridentError(f"a tracker needs a TrackerConfig, got {type(config).__name__}")
        self.config = config
        self.table = self.table_class(config)
        self._last_time: float | None = None
        self._frames = 0

    @property
    def removed_history(self) -> tuple[RemovedTrack, ...]:
        """The most recent removed tracks, oldest first (at most config.removed_history)."""
        return tuple(self.table.removed)

    @property
    def frame_count(self) -> int:
        """Frames seen since construction or the last reset()."""
        return self._frames

    def reset(self, keep_ids: bool = False) -> None:
        """Forget all tracks and time; IDs start again at 1 (a new stream).

        With `keep_ids` (the same stream after its clock restarted) every live
        track ends instead, into the removed history, and the ID counter goes
        on: tracks after the restart get new IDs, so no ID in that stream's
        output names two objects.
        """
        if keep_ids:
            self.table.state[:] = TrackState.REMOVED
            self.table.prune(self._last_time if self._last_time is not None else 0.0)
        else:
            self.table.clear()
        self._last_time = None
        self._frames = 0

    def update(self, detections: Detections, frame_time: float, camera_motion: np.ndarray | None = None) -> Tracks:
        """Track one frame. `frame_time` is in seconds and must increase; a
        larger step than 1/fps (dropped frames, a reconnect) is predicted over.

        `camera_motion` (optional) is how the camera moved since the previous
        call: a 2x3 affine or 3x3 homography taking the previous frame's
        pixels to this frame's (pipeline/camera_motion.py estimates it). The
        tracks are carried through it before association.

        Detections narrower or shorter than `config.min_box_side`, or with
        NaN/inf values, are ignored: never matched, never the start of a
        track, never named by det_index.
        """
        if not isinstance(detections, Detections):
            raise TridentError(
                f"tracker.update expects pipeline.contracts.Detections, got {type(detections).__name__}; "
                "wrap boxes/scores/class_ids in Detections(...)"
            )
        now = _check_time(frame_time, self._last_time)
        H = None if camera_motion is None else check_camera_motion(camera_motion)
        steps = 1.0 if self._last_time is None else self.config.frames_between(now - self._last_time)
        first = self._frames == 0
        if H is not None:
            self.table.warp(H)
        self.table.predict(steps, detections)
        boxes = detections.boxes
        side = self.config.min_box_side
        usable = ((boxes[:, 2] - boxes[:, 0]) >= side) & ((boxes[:, 3] - boxes[:, 1]) >= side)
        if side == 0:
            # Even with no size floor a zero-area box cannot be tracked: it
            # has IoU 0 with everything.
            usable &= ((boxes[:, 2] - boxes[:, 0]) > 0) & ((boxes[:, 3] - boxes[:, 1]) > 0)
        # Detections rejects NaN/inf at construction, except under `python -O`
        # where contracts are not checked; such rows must not poison a filter.
        usable &= np.isfinite(boxes).all(axis=1) & np.isfinite(detections.scores)
        self._associate(detections, usable, now, first)
        self.table.prune(now)
        self._last_time = now
        self._frames += 1
        return self.table.output(now)

    def predict(self, frame_time: float, camera_motion: np.ndarray | None = None) -> Tracks:
        """Advance every track to `frame_time` on a frame the detector did not see (the pipeline's
        `infer_every`): the filter predicts, no track counts as missed (nothing looked for it), so
        none is lost or removed for it; lost tracks still expire by time. Reported tracks have
        det_index -1 and their predicted boxes. `update()` after it predicts from here on."""
        now = _check_time(frame_time, self._last_time)
        H = None if camera_motion is None else check_camera_motion(camera_motion)
        steps = 1.0 if self._last_time is None else self.config.frames_between(now - self._last_time)
        if H is not None:
            self.table.warp(H)
        self.table.predict(steps, Detections.empty())
        self.table.prune(now)
        self._last_time = now
        self._frames += 1
        return self.table.output(now)

    @abc.abstractmethod
    def _associate(self, dets: Detections, usable: np.ndarray, now: float, first: bool) -> None:
        """Match this frame's usable detections to the (already predicted)
        tracks, mark the rest missed and spawn new tracks."""

    def partition(self, dets: Detections, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """This frame's (confident detection rows, weak detection rows, established track rows, tentative track rows).

        Confident: score >= high_score; weak: low_score <= score < high_score (ByteTrack's
        second stage); established: confirmed or lost tracks, which may take either."""
        cfg, state = self.config, self.table.state
        high = np.flatnonzero(usable & (dets.scores >= cfg.high_score))
        low = np.flatnonzero(usable & (dets.scores >= cfg.low_score) & (dets.scores < cfg.high_score))
        established = np.flatnonzero((state == int(TrackState.CONFIRMED)) | (state == int(TrackState.LOST)))
        return high, low, established, np.flatnonzero(state == int(TrackState.TENTATIVE))

    def similarity(self, rows: np.ndarray, det_rows: np.ndarray, dets: Detections, fuse_score: bool = False,
                   track_boxes: np.ndarray | None = None) -> np.ndarray:
        """[len(rows), len(det_rows)] similarity of predicted tracks to detections.

        Box IoU of the predicted boxes (or of `track_boxes`, one per row),
        blended with mask IoU against each track's last mask when configured,
        zeroed across classes when association is class-aware, times the
        detection score when fused.
        """
        sim = box_iou(self.table.boxes(rows) if track_boxes is None else track_boxes, dets.boxes[det_rows])
        w = self.config.mask_iou_weight
        if w > 0 and dets.masks is not None and self.table.masks is not None and sim.size:
            track_masks = self.table.masks[rows]
            has_mask = track_masks.areas() > 0
            if has_mask.any():
                m = mask_iou(track_masks[has_mask], dets.masks[det_rows])
                sim[has_mask] = (1.0 - w) * sim[has_mask] + w * m
        if self.config.class_aware:
            sim = gate_classes(sim, self.table.class_id[rows], dets.class_ids[det_rows])
        if fuse_score:
            sim = sim * dets.scores[det_rows].astype(np.float64)[None, :]
        return sim


def _check_time(frame_time: float, last: float | None) -> float:
    try:
        now = float(frame_time)
    except (TypeError, ValueError):
        raise TridentError(f"frame_time must be a number of seconds, got {frame_time!r}") from None
    if not math.isfinite(now):
        raise TridentError(f"frame_time must be finite, got {frame_time!r}")
    if last is not None and now <= last:
        raise TridentError(
            f"frame_time must increase: got {now} after {last}; call tracker.reset() when a stream restarts "
            "its clock, or pass a monotonic time"
        )
    return now
