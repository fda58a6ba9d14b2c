"""`TrackerConfig`: every threshold of SORT, ByteTrack and OC-SORT in one frozen dataclass.

Each field's comment says what moving it trades, so tuning is a decision and
not a guess. Times are in seconds (the tracker runs on real `frame_time`), and
`fps` converts a time gap into the nominal number of frames the Kalman filter
predicts over.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from pipeline.errors import TridentError

__all__ = ["TrackerConfig", "ALGORITHMS", "CMC_METHODS"]

ALGORITHMS = ("bytetrack", "ocsort", "sort")
# Camera-motion estimators of pipeline/camera_motion.py (the tracker only takes the transform).
CMC_METHODS = ("none", "sparse", "ecc")


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of one tracker instance; build it with `make_tracker(config)`."""

    # "bytetrack" (two-stage: high then low scores), "ocsort" (ByteTrack's
    # stages plus observation-centric re-update, momentum and recovery) or
    # "sort" (one stage, high scores only). ByteTrack recovers occluded
    # objects whose score drops; OC-SORT also keeps identities through longer
    # occlusions and non-linear motion at some extra cost per frame; SORT is
    # simpler and never lets a weak detection steer a track.
    algorithm: str = "bytetrack"

    # Nominal frame rate. A gap of g seconds is g*fps filter steps, so dropped
    # frames and reconnects are predicted over the real time. Too low makes
    # fast objects jump further than the filter expects per step.
    fps: float = 30.0

    # Detections at or above this score take part in the first association
    # (and are the only ones SORT sees). Higher: fewer false tracks, more
    # identities lost when confidence dips. 0.4 (ByteTrack's paper uses 0.5-0.6
    # for a strong detector) because small real-time models score partly
    # occluded objects lower; see benchmarks/eval_trackers_synth.py.
    high_score: float = 0.4

    # ByteTrack and OC-SORT: detections in [low_score, high_score) may extend an
    # existing track in the second stage but never start one. Lower: more
    # occluded objects kept, more risk of following clutter.
    low_score: float = 0.1

    # A detection needs at least this score to start a new track. Higher than
    # high_score so a borderline detection extends tracks but does not spawn
    # them; lower: objects are picked up sooner, more false tracks.
    new_track_score: float = 0.5

    # Minimum IoU between a predicted track box and a high-score detection to
    # match them. Lower tolerates fast motion and poor predictions, higher
    # avoids swapping identities between neighbours.
    match_iou: float = 0.2

    # ByteTrack/OC-SORT second stage: minimum IoU for a low-score detection to extend
    # a track. Kept stricter than match_iou because low scores are less
    # trustworthy.
    low_match_iou: float = 0.5

    # Minimum IoU for a tentative (unconfirmed) track to take a detection.
    # Higher: fewer false tracks born from flicker, slower confirmation of
    # fast objects.
    tentative_match_iou: float = 0.3

    # Consecutive matched frames before a track is Confirmed and reported.
    # Higher: fewer false positives, later first output for every object.
    min_hits: int = 2

    # Confirm every track born in the tracker's first frame at once (objects
    # already in view when a stream starts). Off: the first min_hits-1 frames
    # of each such object are missing from the output.
    confirm_on_first_frame: bool = True

    # How long (seconds) a Lost track may go unmatched before it is Removed.
    # Longer: identities survive longer occlusions, more chance that a
    # different object inherits a stale identity.
    lost_buffer_s: float = 1.0

    # Report Lost tracks (predicted box, det_index -1) for this many seconds
    # after their last match. Detectors miss objects for a frame or two all the
    # time (blur, partial occlusion, a score just under the threshold): 0.1 s
    # bridges those gaps with the filter's prediction (synthetic val, simulated
    # detector: HOTA +7 for ByteTrack and OC-SORT, FN -32%, FP up from ~0.1% to
    # 2% of boxes). Longer: fewer gaps, more boxes where the object has gone
    # (0.3 s already scores lower). 0 reports only matched tracks.
    report_coasting_s: float = 0.1

    # Report the Kalman-filtered box of a matched track instead of the
    # detector's box. Filtered boxes are steadier (less detector jitter);
    # detector boxes line up exactly with the detection's mask and follow
    # sudden changes at once.
    output_filtered_boxes: bool = True

    # Only match tracks and detections of the same class. Off: a detector
    # that flips classes between frames does not break identities, but
    # objects of different classes can swap tracks.
    class_aware: bool = True

    # ByteTrack first stage: cost uses IoU * score instead of IoU, so confident
    # detections win ties. Helps crowded scenes; can starve low-ish scores.
    fuse_score: bool = False

    # When > 0 and detections carry masks, association similarity blends box
    # IoU with mask IoU against each track's last mask (weight of the mask
    # term). Separates overlapping objects of different shape; costs one
    # full-frame mask per track and a matrix product per frame.
    mask_iou_weight: float = 0.0

    # Detections narrower or shorter than this (pixels) are ignored: a
    # zero-area box has no IoU with anything and would make the filter's
    # size-scaled noise singular. Raise it to drop specks.
    min_box_side: float = 1.0

    # How many Removed tracks are remembered (for inspection). Bounded so a
    # long-running stream never grows memory; ByteTrack's original list grew
    # forever.
    removed_history: int = 128

    # Kalman process noise of the position per nominal frame, as a fraction
    # of box size. Higher: follows sudden moves, noisier boxes; lower:
    # smoother boxes that lag behind.
    kf_position_std: float = 1.0 / 20.0

    # Kalman process noise of the velocity per nominal frame (fraction of box
    # size). Higher: adapts to turns and braking faster, but predictions over
    # a gap wander more; lower: steadier extrapolation through occlusions.
    kf_velocity_std: float = 1.0 / 160.0

    # Kalman measurement noise as a fraction of box size. Higher trusts the
    # motion model over the detector (smoother, laggier boxes).
    kf_measurement_std: float = 1.0 / 20.0

    # Initial velocity uncertainty of a new track (fraction of box size per
    # frame). Higher lets a new track learn its speed from the first matches
    # faster, at the cost of wild first predictions.
    kf_init_velocity_std: float = 10.0 / 160.0

    # OC-SORT: weight of the motion-direction term in the first association
    # (observation-centric momentum): a detection in the direction the track
    # has been moving gains up to weight/2 * score over its IoU, one against
    # it loses as much. Higher: fewer swaps between crossing objects, but a
    # track that turns sharply may lose its object to one going straight. 0
    # turns momentum off.
    momentum_weight: float = 0.2

    # OC-SORT: the track's direction is measured between its last observation
    # and the one this many observations earlier. Longer: steadier direction
    # under box jitter, slower to notice a turn.
    momentum_frames: int = 3

    # OC-SORT: a track's direction only counts in the momentum term once it
    # has moved this many box sizes over the window (full weight at twice
    # that). Lower trusts the direction of slow objects, whose boxes' jitter
    # can point anywhere (more swaps among crowded, slow objects); higher
    # keeps momentum for fast movers only. 0 is the paper's behaviour.
    momentum_min_motion: float = 0.2

    # OC-SORT observation-centric recovery: tracks still unmatched after the
    # first stages get a second chance against leftover confident detections,
    # by IoU with the track's last *observed* box instead of its prediction
    # (which drifts while an object is hidden). Lower: more stopped or
    # reversed objects re-found, more risk of taking a neighbour's detection
    # or a newcomer's where the old object left the frame. 0.5, stricter than
    # the paper's 0.3: on the synthetic benchmark 0.3 handed more identities
    # to newcomers than it saved.
    recovery_iou: float = 0.5

    # OC-SORT: run the recovery stage at all. Off: a lost track can only be
    # re-found where its prediction says, as in ByteTrack.
    observation_recovery: bool = True

    # OC-SORT observation-centric re-update: when a lost track is re-found,
    # its filter is rewound to the last observation and re-run over a
    # straight virtual path to the new one, so the velocity learnt during
    # the occlusion is the object's real average motion instead of the
    # drifted prediction's error. Off: one ordinary update (cheaper; the
    # filter may overshoot right after an occlusion).
    observation_reupdate: bool = True

    # Camera-motion compensation, estimated from the frames by the pipeline
    # (pipeline/camera_motion.py) and passed to update(): "none", "sparse"
    # (sparse optical flow + RANSAC affine on a downscaled grey image, ~1-3
    # ms a frame) or "ecc" (dense ECC alignment, slower, for scenes without
    # corners). Keeps tracks on their objects when the camera pans, zooms or
    # shakes; on a fixed camera it only costs time. The tracker itself never
    # looks at images: update(dets, t, camera_motion=M) takes the transform.
    cmc: str = "none"

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise TridentError(f"tracker algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.cmc not in CMC_METHODS:
            raise TridentError(f"tracker config cmc must be one of {', '.join(CMC_METHODS)}, got {self.cmc!r}")
        positive = ("fps", "kf_position_std", "kf_velocity_std", "kf_measurement_std", "kf_init_velocity_std")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise TridentError(f"tracker config {name} must be a finite number > 0, got {value!r}")
        unit = ("high_score", "low_score", "new_track_score", "match_iou", "low_match_iou", "tentative_match_iou",
                "mask_iou_weight", "momentum_weight", "recovery_iou")
        for name in unit:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise TridentError(f"tracker config {name} must be in [0, 1], got {value!r}")
        if self.low_score > self.high_score:
            raise TridentError(f"tracker config low_score ({self.low_score}) must not exceed high_score ({self.high_score})")
        for name in ("lost_buffer_s", "report_coasting_s", "min_box_side", "momentum_min_motion"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise TridentError(f"tracker config {name} must be a finite number >= 0, got {value!r}")
        for name, least in (("min_hits", 1), ("removed_history", 0), ("momentum_frames", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise TridentError(f"tracker config {name} must be an integer >= {least}, got {value!r}")
        for name in ("confirm_on_first_frame", "output_filtered_boxes", "class_aware", "fuse_score",
                     "observation_recovery", "observation_reupdate"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TridentError(f"tracker config {name} must be true or false, got {value!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrackerConfig":
        """Build from a mapping (a parsed YAML/JSON file); an unknown key is an error naming it."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise TridentError(f"unknown tracker config key {key!r}; known keys: {', '.join(sorted(known))}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def frames_between(self, seconds: float) -> float:
        """Nominal filter steps in a gap of `seconds`."""
        return seconds * self.fps
