"""ByteTrack: associate every detection box, the weak ones too.

Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every
Detection Box" (ECCV 2022). A detection whose score drops because its object
is partly occluded is still the best evidence of where that object is, so
after confident detections are matched, the tracks left over get a second
chance against the low-score ones. Low-score detections never start tracks,
which keeps the clutter they contain from becoming identities.

Stages per frame (thresholds are `TrackerConfig` fields):

1. confirmed + lost tracks  x  high-score detections   (IoU >= match_iou)
2. still-unmatched tracks that were being tracked last frame
                            x  low-score detections    (IoU >= low_match_iou)
3. tentative tracks         x  high-score leftovers    (IoU >= tentative_match_iou)
4. high-score leftovers with score >= new_track_score start tracks.

Lost tracks only ever take part in stage 1: a track that already lost its
object is not allowed to be revived by a weak, ambiguous box.
"""

from __future__ import annotations

import numpy as np

from pipeline.contracts import Detections
from trackers.base import BaseTracker
from trackers.matching import assign
from trackers.track import TrackState

__all__ = ["ByteTracker"]

# Plain ints: comparing an int8 array with an IntEnum member goes through the
# enum machinery on every call, which is measurable at this call rate.
CONFIRMED, LOST, TENTATIVE = int(TrackState.CONFIRMED), int(TrackState.LOST), int(TrackState.TENTATIVE)


class ByteTracker(BaseTracker):
    """ByteTrack over `TrackerConfig`; see the module docstring for the stages."""

    def _associate(self, dets: Detections, usable: np.ndarray, now: float, first: bool) -> None:
        cfg = self.config
        table = self.table
        high, low, established, tentative = self.partition(dets, usable)

        # 1. Confident detections go to established tracks first.
        m1 = assign(self.similarity(established, high, dets, fuse_score=cfg.fuse_score), cfg.match_iou)
        left_tracks = established[m1.unmatched_rows]
        left_high = high[m1.unmatched_cols]

        # 2. Tracks followed until last frame (still Confirmed, not Lost)
        #    may continue on a weak detection.
        left_state = table.state[left_tracks]
        was_tracked = left_tracks[left_state == CONFIRMED]
        m2 = assign(self.similarity(was_tracked, low, dets), cfg.low_match_iou)

        # 3. Newborn tracks only get confident leftovers; one miss removes them.
        m3 = assign(self.similarity(tentative, left_high, dets), cfg.tentative_match_iou)

        # The stages touch disjoint tracks and detections, so all matches
        # are applied in one batched Kalman update.
        table.update(
            np.concatenate([established[m1.rows], was_tracked[m2.rows], tentative[m3.rows]]),
            np.concatenate([high[m1.cols], low[m2.cols], left_high[m3.cols]]),
            dets,
            now,
        )
        table.mark_missed(
            np.concatenate([was_tracked[m2.unmatched_rows], left_tracks[left_state == LOST], tentative[m3.unmatched_rows]])
        )

        # 4. Births.
        born = left_high[m3.unmatched_cols]
        born = born[dets.scores[born] >= cfg.new_track_score]
        table.spawn(born, dets, now, confirmed=first and cfg.confirm_on_first_frame)
