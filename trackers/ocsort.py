"""OC-SORT: a Kalman tracker that trusts observations over its own predictions.

Cao et al., "Observation-Centric SORT: Rethinking SORT for Robust
Multi-Object Tracking" (CVPR 2023). While an object is hidden a Kalman track
only predicts, and every step the error of its velocity is extrapolated
further; when the object comes back the prediction is far off (no match) or,
if it does match, the filter's velocity is still wrong and the track drifts
off again. OC-SORT leans on the detections instead. Written from the paper;
no code of the authors' (or any other) implementation is used.

Stage 2 differs from ByteTrack's on purpose: as in the paper's BYTE variant,
lost tracks too may take a low-score box. An object coming out from behind
another is first seen weakly; ByteTrack waits for a confident box to revive
its track, OC-SORT takes the weak one (at the stricter `low_match_iou`).
On the synthetic benchmark this is most of OC-SORT's gain over ByteTrack.

Three additions to ByteTrack's stages (thresholds are `TrackerConfig` fields):

- observation-centric momentum (OCM, `momentum_weight`, `momentum_frames`):
  the first association adds to IoU how well the direction from a track's
  earlier observation to each detection agrees with the direction the track
  has been moving, weighted by the detection's score. Unlike the paper, a
  direction only counts once the track has moved further than box jitter
  (`momentum_min_motion`): the direction of a slow object measured from
  jittery boxes is noise, and on the synthetic benchmark it caused more
  fragmented tracks than it saved;
- observation-centric recovery (OCR, `recovery_iou`): tracks left unmatched
  after the first stages are tried once more against leftover confident
  detections, by IoU with their last *observed* box, not the drifted
  prediction, which re-finds objects that stopped or turned while hidden;
- observation-centric re-update (ORU, `observation_reupdate`): when a lost
  track is matched again, its filter is rewound to the state of its last
  observation and re-run over a straight virtual path of boxes from that
  observation to the new one, one nominal frame at a time (the real time gap
  sets how many), so it leaves the occlusion with the object's real average
  velocity.

Stages per frame:

1. confirmed + lost tracks  x  high-score detections   (IoU + momentum; IoU >= match_iou)
2. every still-unmatched confirmed or lost track
                            x  low-score detections    (IoU >= low_match_iou)
3. every still-unmatched established track, by its last observed box
                            x  high-score leftovers    (IoU >= recovery_iou)
4. tentative tracks         x  high-score leftovers    (IoU >= tentative_match_iou)
5. high-score leftovers with score >= new_track_score start tracks.
"""

from __future__ import annotations

import numpy as np

from pipeline.contracts import Detections
from trackers.base import BaseTracker
from trackers.config import TrackerConfig
from trackers.kalman import cxcywh_to_xyxy, warp_boxes, warp_states, xyxy_to_cxcywh
from trackers.matching import assign
from trackers.track import TrackState, TrackTable

__all__ = ["OcSortTracker", "ObservationTable"]

CONFIRMED, LOST, TENTATIVE = int(TrackState.CONFIRMED), int(TrackState.LOST), int(TrackState.TENTATIVE)

# The re-update walks at most this many virtual steps; a longer gap (a lost
# buffer of minutes) takes proportionally longer steps, so one re-found track
# never costs more than ~60 small filter steps.
MAX_VIRTUAL_STEPS = 60


class ObservationTable(TrackTable):
    """TrackTable plus what OC-SORT keeps of each track's observations: the
    last `momentum_frames + 1` observed boxes (newest last) and the filter
    state right after the last observation (where a re-update restarts)."""

    FIELDS = TrackTable.FIELDS + ("obs", "n_obs", "x_obs", "P_obs")

    def __init__(self, config: TrackerConfig) -> None:
        self.window = config.momentum_frames + 1
        super().__init__(config)

    def clear(self) -> None:
        super().clear()
        self.obs = np.zeros((0, self.window, 4))
        self.n_obs = np.zeros(0, np.int64)
        self.x_obs = np.zeros((0, 8))
        self.P_obs = np.zeros((0, 8, 8))

    def warp(self, H: np.ndarray) -> None:
        if len(self.ids) == 0:
            return
        super().warp(H)
        self.x_obs, self.P_obs = warp_states(self.x_obs, self.P_obs, H)
        self.obs = warp_boxes(self.obs.reshape(-1, 4), H).reshape(self.obs.shape)

    def spawn(self, det_rows: np.ndarray, dets: Detections, now: float, confirmed: bool) -> None:
        n = len(det_rows)
        if n == 0:
            return
        super().spawn(det_rows, dets, now, confirmed)
        obs = np.zeros((n, self.window, 4))
        obs[:, -1] = dets.boxes[det_rows]
        self.obs = np.concatenate([self.obs, obs])
        self.n_obs = np.concatenate([self.n_obs, np.ones(n, np.int64)])
        self.x_obs = np.concatenate([self.x_obs, self.x[-n:]])
        self.P_obs = np.concatenate([self.P_obs, self.P[-n:]])

    def update(self, rows: np.ndarray, det_rows: np.ndarray, dets: Detections, now: float) -> None:
        if len(rows) == 0:
            return
        if self.config.observation_reupdate:
            back = self.state[rows] == LOST
            if back.any():
                self._reupdate(rows[back], dets.boxes[det_rows[back]].astype(np.float64), now)
        super().update(rows, det_rows, dets, now)
        self.obs[rows, :-1] = self.obs[rows, 1:]
        self.obs[rows, -1] = dets.boxes[det_rows]
        self.n_obs[rows] = np.minimum(self.n_obs[rows] + 1, self.window)
        self.x_obs[rows] = self.x[rows]
        self.P_obs[rows] = self.P[rows]

    def _reupdate(self, rows: np.ndarray, boxes: np.ndarray, now: float) -> None:
        """Replace the (drifted) predictions of re-found `rows` by the filter
        re-run from their last observation along a straight path to `boxes`;
        the caller's ordinary update then applies the real observation."""
        gap = np.maximum(self.config.frames_between(now - self.last_seen[rows]), 1e-6)
        n = np.clip(np.rint(gap), 1, MAX_VIRTUAL_STEPS).astype(np.int64)
        step = gap / n
        start = xyxy_to_cxcywh(self.last_box[rows])
        delta = xyxy_to_cxcywh(boxes) - start
        x, P = self.x_obs[rows].copy(), self.P_obs[rows].copy()
        for k in range(1, int(n.max())):
            live = np.flatnonzero(n > k)
            xk, Pk = self.kf.predict(x[live], P[live], step[live])
            virtual = start[live] + (k / n[live])[:, None] * delta[live]
            x[live], P[live] = self.kf.update(xk, Pk, cxcywh_to_xyxy(virtual))
        self.x[rows], self.P[rows] = self.kf.predict(x, P, step)


class OcSortTracker(BaseTracker):
    """OC-SORT over `TrackerConfig`; see the module docstring for the stages."""

    table_class = ObservationTable

    def _associate(self, dets: Detections, usable: np.ndarray, now: float, first: bool) -> None:
        cfg = self.config
        table = self.table
        high, low, established, tentative = self.partition(dets, usable)

        # 1. Confident detections go to established tracks, IoU + momentum.
        iou = self.similarity(established, high, dets, fuse_score=cfg.fuse_score)
        if cfg.momentum_weight > 0 and iou.size:
            sim = iou + self.momentum(established, high, dets, where=iou >= cfg.match_iou)
        else:
            sim = iou
        m1 = assign(sim, cfg.match_iou, gate=iou)
        left_tracks = established[m1.unmatched_rows]
        left_high = high[m1.unmatched_cols]

        # 2. BYTE: every track left over, lost ones too, may continue on a weak box.
        m2 = assign(self.similarity(left_tracks, low, dets), cfg.low_match_iou)
        was_tracked = left_tracks

        # 3. Recovery by the last observed box.
        rest = left_tracks[m2.unmatched_rows]
        if cfg.observation_recovery:
            m3 = assign(self.similarity(rest, left_high, dets, track_boxes=table.last_box[rest]), cfg.recovery_iou)
            recovered, recovered_dets = rest[m3.rows], left_high[m3.cols]
            rest, left_high = rest[m3.unmatched_rows], left_high[m3.unmatched_cols]
        else:
            recovered = recovered_dets = np.zeros(0, np.intp)

        # 4. Newborn tracks only get confident leftovers; one miss removes them.
        m4 = assign(self.similarity(tentative, left_high, dets), cfg.tentative_match_iou)

        table.update(
            np.concatenate([established[m1.rows], was_tracked[m2.rows], recovered, tentative[m4.rows]]),
            np.concatenate([high[m1.cols], low[m2.cols], recovered_dets, left_high[m4.cols]]),
            dets,
            now,
        )
        table.mark_missed(np.concatenate([rest, tentative[m4.unmatched_rows]]))

        # 5. Births.
        born = left_high[m4.unmatched_cols]
        born = born[dets.scores[born] >= cfg.new_track_score]
        table.spawn(born, dets, now, confirmed=first and cfg.confirm_on_first_frame)

    def momentum(self, rows: np.ndarray, det_rows: np.ndarray, dets: Detections, where: np.ndarray | None = None) -> np.ndarray:
        """[len(rows), len(det_rows)] momentum term of the first association.

        Each track's direction runs from its oldest kept observation to its
        newest; each candidate's from that same old observation to the
        detection. Their angle a (0..pi) scores (pi/2 - a)/pi, in [-1/2, 1/2],
        times the detection score (a weak box should not steer by direction),
        `momentum_weight`, and how far the track moved over the window
        (`momentum_min_motion`). A track with one observation has no
        direction and gets 0. `where` (bool, same shape) limits the work to
        the pairs that can match at all; the rest are 0.
        """
        out = np.zeros((len(rows), len(det_rows)))
        table = self.table
        n = table.n_obs[rows]
        anchor = table.obs[rows, table.window - n]
        newest = table.obs[rows, -1]
        a = 0.5 * (anchor[:, :2] + anchor[:, 2:])
        v = 0.5 * (newest[:, :2] + newest[:, 2:]) - a
        norm = np.hypot(v[:, 0], v[:, 1])
        # A direction measured over less motion than the detector's jitter is
        # noise: it counts from momentum_min_motion box sizes of travel and
        # fully from twice that.
        floor = self.config.momentum_min_motion
        if floor > 0:
            size = np.maximum(0.5 * (newest[:, 2] - newest[:, 0] + newest[:, 3] - newest[:, 1]), 1.0)
            trust = np.clip(norm / (floor * size) - 1.0, 0.0, 1.0)
        else:
            trust = np.ones(len(rows))
        trust[(n < 2) | (norm <= 1e-6)] = 0.0
        pairs = trust[:, None] > 0 if where is None else where & (trust[:, None] > 0)
        r, c = np.nonzero(np.broadcast_to(pairs, out.shape))
        if len(r) == 0:
            return out
        u = v[r] / norm[r, None]
        d_boxes = dets.boxes[det_rows[c]].astype(np.float64)
        d = 0.5 * (d_boxes[:, :2] + d_boxes[:, 2:]) - a[r]
        d /= np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
        cos = np.clip(u[:, 0] * d[:, 0] + u[:, 1] * d[:, 1], -1.0, 1.0)
        # (pi/2 - arccos(cos)) / pi, written as arcsin.
        out[r, c] = np.arcsin(cos) / np.pi * self.config.momentum_weight * dets.scores[det_rows[c]] * trust[r]
        return out
