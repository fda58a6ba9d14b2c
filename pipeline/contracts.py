"""Data contracts shared by every package: frames, detections, tracks, results.

This module depends on numpy alone so that `engines` and `trackers` can use
the contracts without importing the streaming runtime.

Shapes and dtypes are part of the contract. They are checked once, at
construction, unless Python runs with ``-O`` (``__debug__`` is False), so a
wrong array fails where it is made, not three stages later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import ContractError
from pipeline.masks import InstanceMasks

__all__ = ["Frame", "Detections", "InstanceMasks", "SemanticMap", "Tracks", "FrameResult", "Event", "EVENT_KINDS", "EVENT_SCHEMA"]


def _check_array(owner: str, name: str, value: Any, dtype: np.dtype | type, shape: tuple) -> None:
    """Check ``value`` is an ndarray of ``dtype`` whose shape matches ``shape``.

    ``shape`` holds ints (exact) or None (any size) per axis.
    """
    if not isinstance(value, np.ndarray):
        raise ContractError(
            f"{owner}.{name} must be a numpy array, got {type(value).__name__}; "
            f"convert it with np.asarray(..., dtype=np.{np.dtype(dtype).name})"
        )
    want = "[" + ",".join("*" if s is None else str(s) for s in shape) + "]"
    if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        raise ContractError(f"{owner}.{name} must have shape {want}, got {list(value.shape)}")
    if value.dtype != np.dtype(dtype):
        raise ContractError(
            f"{owner}.{name} must be {np.dtype(dtype).name}, got {value.dtype.name}; "
            f"cast it with .astype(np.{np.dtype(dtype).name})"
        )


def _check_length(owner: str, n: int, **arrays: np.ndarray | None) -> None:
    for name, arr in arrays.items():
        if arr is not None and len(arr) != n:
            raise ContractError(f"{owner}.{name} has {len(arr)} rows but {owner}.boxes has {n}; every field needs one row per box")


def _check_boxes(owner: str, boxes: np.ndarray) -> None:
    if boxes.size and not np.isfinite(boxes).all():
        bad = int((~np.isfinite(boxes)).any(axis=1).sum())
        raise ContractError(f"{owner}.boxes has {bad} row(s) with NaN or inf; drop or fix them before building {owner}")
    if boxes.size and ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
        bad = int(((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).sum())
        raise ContractError(f"{owner}.boxes has {bad} row(s) with x2<x1 or y2<y1; boxes are xyxy (left, top, right, bottom)")


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame of one stream.

    image: uint8[H,W,3] BGR. pts: presentation time in seconds from the
    stream's start (gaps after a reconnect show up here). wall_time: host clock
    (time.time()) when the frame was decoded, for end-to-end latency.
    """

    stream_id: str
    index: int
    pts: float
    image: np.ndarray
    wall_time: float

    def __post_init__(self) -> None:
        if __debug__:
            if not isinstance(self.stream_id, str) or not self.stream_id:
                raise ContractError("Frame.stream_id must be a non-empty string naming the source")
            if int(self.index) < 0:
                raise ContractError(f"Frame.index must be >= 0, got {self.index}")
            _check_array("Frame", "image", self.image, np.uint8, (None, None, 3))
            if self.image.shape[0] == 0 or self.image.shape[1] == 0:
                raise ContractError(f"Frame.image is empty ({self.image.shape}); the decoder returned no pixels")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one frame, in frame pixels.

    boxes float32[N,4] xyxy, scores float32[N], class_ids int32[N],
    masks: one box-local instance mask per row (`InstanceMasks`) or None.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: InstanceMasks | None = None

    def __post_init__(self) -> None:
        if __debug__:
            _check_array("Detections", "boxes", self.boxes, np.float32, (None, 4))
            n = len(self.boxes)
            _check_array("Detections", "scores", self.scores, np.float32, (n,))
            _check_array("Detections", "class_ids", self.class_ids, np.int32, (n,))
            if self.masks is not None:
                if not isinstance(self.masks, InstanceMasks):
                    raise ContractError(
                        f"Detections.masks must be pipeline.masks.InstanceMasks, got {type(self.masks).__name__}; "
                        "wrap full-frame bool[N,H,W] masks with InstanceMasks.from_dense(masks)"
                    )
                if len(self.masks) != n:
                    raise ContractError(f"Detections.masks has {len(self.masks)} masks but Detections.boxes has {n}; one mask per box")
            _check_boxes("Detections", self.boxes)
            if n and not np.isfinite(self.scores).all():
                raise ContractError("Detections.scores has NaN or inf; scores must be finite probabilities")

    @classmethod
    def empty(cls, frame_hw: tuple[int, int] | None = None) -> "Detections":
        """No detections; with ``frame_hw`` they carry (zero) masks of that frame size."""
        masks = None if frame_hw is None else InstanceMasks.empty((int(frame_hw[0]), int(frame_hw[1])))
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int32),
            masks=masks,
        )

    def __len__(self) -> int:
        return int(len(self.boxes))

    def select(self, index: np.ndarray | slice) -> "Detections":
        """Rows picked by a boolean mask, an index array or a slice."""
        return Detections(
            boxes=np.ascontiguousarray(self.boxes[index]),
            scores=np.ascontiguousarray(self.scores[index]),
            class_ids=np.ascontiguousarray(self.class_ids[index]),
            masks=None if self.masks is None else self.masks[index],
        )

    def masks_rle(self) -> list[dict]:
        """COCO run-length encoding of each mask ({"size": [H, W], "counts": str})."""
        if self.masks is None:
            raise ContractError("Detections.masks is None: this model or engine produced no instance masks")
        return self.masks.rle()


@dataclass(frozen=True, eq=False)
class SemanticMap:
    """Per-pixel class labels of one frame: labels uint8[H,W] indexing class_names."""

    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if __debug__:
            _check_array("SemanticMap", "labels", self.labels, np.uint8, (None, None))
            if not self.class_names:
                raise ContractError("SemanticMap.class_names is empty; pass the model's semantic class names")
            if self.labels.size and int(self.labels.max()) >= len(self.class_names):
                raise ContractError(
                    f"SemanticMap.labels has label {int(self.labels.max())} but only "
                    f"{len(self.class_names)} class names; the model and its class list disagree"
                )


@dataclass(frozen=True, eq=False)
class Tracks:
    """Tracker output for one frame.

    det_index[i] is the row of the frame's Detections that track i was updated
    with, or -1 when the track is only predicted (coasting). Masks and other
    per-detection data follow a track through it.
    """

    track_ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    det_index: np.ndarray

    def __post_init__(self) -> None:
        if __debug__:
            _check_array("Tracks", "boxes", self.boxes, np.float32, (None, 4))
            m = len(self.boxes)
            _check_array("Tracks", "track_ids", self.track_ids, np.int64, (m,))
            _check_array("Tracks", "scores", self.scores, np.float32, (m,))
            _check_array("Tracks", "class_ids", self.class_ids, np.int32, (m,))
            _check_array("Tracks", "det_index", self.det_index, np.int32, (m,))
            if m and len(np.unique(self.track_ids)) != m:
                raise ContractError("Tracks.track_ids has duplicates; each track appears once per frame")
            if m and (self.det_index < -1).any():
                raise ContractError("Tracks.det_index must be a detection row or -1 (coasting)")

    @classmethod
    def empty(cls) -> "Tracks":
        return cls(
            track_ids=np.zeros((0,), np.int64),
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int32),
            det_index=np.zeros((0,), np.int32),
        )

    def __len__(self) -> int:
        return int(len(self.boxes))


@dataclass(frozen=True, eq=False)
class FrameResult:
    """Everything the pipeline knows about one frame when it reaches the sinks."""

    frame: Frame
    detections: Detections
    semantic: SemanticMap | None = None
    tracks: Tracks | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # from the analytics stage (pipeline/analytics), when zones are configured: the frame's events
    # and the stream's counts after this frame (what the annotated video draws)
    events: tuple["Event", ...] = ()
    counts: dict[str, Any] | None = None
    # False on a frame the network skipped (`infer_every` > 1, pipeline/interval.py): detections are
    # the tracks' predicted boxes carrying the last inferred frame's scores, classes and masks
    inferred: bool = True

    def __post_init__(self) -> None:
        if __debug__:
            if not isinstance(self.frame, Frame):
                raise ContractError(f"FrameResult.frame must be a Frame, got {type(self.frame).__name__}")
            if not isinstance(self.detections, Detections):
                raise ContractError(f"FrameResult.detections must be Detections, got {type(self.detections).__name__}")
            h, w = self.frame.image.shape[:2]
            if self.detections.masks is not None and self.detections.masks.frame_hw != (h, w):
                raise ContractError(
                    f"FrameResult: masks are of a {self.detections.masks.frame_hw} frame but the frame is {(h, w)}; "
                    "mask boxes must be in frame pixels (undo the letterbox)"
                )
            if self.semantic is not None and self.semantic.labels.shape != (h, w):
                raise ContractError(
                    f"FrameResult: semantic labels are {self.semantic.labels.shape} but the frame is {(h, w)}"
                )
            if self.tracks is not None and len(self.tracks) and int(self.tracks.det_index.max()) >= len(self.detections):
                raise ContractError("FrameResult: a track's det_index points past the frame's detections")


EVENT_KINDS = ("line_cross", "zone_enter", "zone_exit", "dwell", "stream_down", "stream_up")
EVENT_SCHEMA = "trident.event/1"  # `schema` in every event's JSON; bumped when a field changes meaning


@dataclass(frozen=True, eq=False)
class Event:
    """Something that happened on one stream: a line crossed, a zone entered or left, a dwell, a stream down/up.

    `pts` is the frame's presentation time (None for stream_down/up, which have no frame);
    `wall_time` is the host clock (time.time()) when that frame was decoded, or when the
    stream changed state. `zone`, `track_id`, `class_id` and `box` are None for stream
    events. `extra` holds the kind's own fields (class name, score, direction, dwell
    seconds, occupancy, clip path, reason); `to_dict()` is the one JSON schema every
    event sink writes (README, "Zones, counting and events").
    """

    stream_id: str
    frame_index: int
    pts: float | None
    wall_time: float
    kind: str
    zone: str | None = None
    track_id: int | None = None
    class_id: int | None = None
    box: tuple[float, float, float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: _event_id())

    def __post_init__(self) -> None:
        if __debug__:
            if self.kind not in EVENT_KINDS:
                raise ContractError(f"Event.kind must be one of {', '.join(EVENT_KINDS)}, got {self.kind!r}")
            if not isinstance(self.stream_id, str) or not self.stream_id:
                raise ContractError("Event.stream_id must be a non-empty string naming the stream")

    def to_dict(self) -> dict[str, Any]:
        """The documented schema: fixed keys first, then the kind's extra fields (never overriding them)."""
        from datetime import datetime, timezone

        record: dict[str, Any] = {
            "schema": EVENT_SCHEMA,
            "id": self.id,
            "kind": self.kind,
            "stream": self.stream_id,
            "frame": int(self.frame_index),
            "pts": None if self.pts is None else round(float(self.pts), 4),
            "time": datetime.fromtimestamp(self.wall_time, timezone.utc).isoformat(timespec="milliseconds"),
            "wall_time": round(float(self.wall_time), 6),
            "zone": self.zone,
            "track_id": None if self.track_id is None else int(self.track_id),
            "class_id": None if self.class_id is None else int(self.class_id),
            "box": None if self.box is None else [round(float(v), 2) for v in self.box],
        }
        for key, value in self.extra.items():
            record.setdefault(key, value)
        return record

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict(), separators=(",", ":"))


def _event_id() -> str:
    """A unique id per event, so receivers can drop the duplicates QoS 1 and webhook retries may deliver."""
    import uuid

    return uuid.uuid4().hex
