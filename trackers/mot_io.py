"""MOTChallenge text files: read, write, and convert to and from the contracts.

One row per box: ``frame,id,x,y,w,h,conf,class,visibility`` with 1-based
frames and (x, y) the top-left corner. Detection files use id -1; MOT15-style
files have ten columns (the last three are world coordinates, -1). Only the
first six columns are required: conf defaults to 1, class and visibility to
-1 ("not given").

A malformed row is a `TridentError` naming the file and the line, never a
silently skipped box: a metric computed on half a file looks plausible and
is wrong.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from pipeline.contracts import Detections, Tracks

from pipeline.errors import TridentError

__all__ = ["MotSequence", "read_mot", "write_mot", "tracks_to_sequence"]

_MIN_COLS = 6
_MAX_COLS = 10


@dataclass(frozen=True, eq=False)
class MotSequence:
    """All rows of one MOT file, sorted by (frame, id). boxes are xywh (float64)."""

    frames: np.ndarray      # int64[N], 1-based
    ids: np.ndarray         # int64[N], -1 for detections without identity
    boxes: np.ndarray       # float64[N,4] x, y, w, h
    scores: np.ndarray      # float64[N] conf column (gt: 0 marks rows to ignore)
    classes: np.ndarray     # int64[N], -1 when not given
    visibility: np.ndarray  # float64[N], -1 when not given

    def __len__(self) -> int:
        return int(len(self.frames))

    @property
    def last_frame(self) -> int:
        return int(self.frames.max()) if len(self) else 0

    def frame_slices(self) -> dict[int, slice]:
        """frame number -> slice of its rows (rows are sorted by frame)."""
        if not len(self):
            return {}
        starts = np.flatnonzero(np.r_[True, self.frames[1:] != self.frames[:-1]])
        ends = np.r_[starts[1:], len(self.frames)]
        return {int(self.frames[s]): slice(int(s), int(e)) for s, e in zip(starts, ends)}

    def select(self, keep: np.ndarray) -> "MotSequence":
        return MotSequence(*(getattr(self, f)[keep] for f in _FIELDS))

    def detections(self, rows: slice) -> Detections:
        """The rows of one frame as `Detections` (xyxy float32)."""
        b = self.boxes[rows]
        xyxy = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1).astype(np.float32)
        return Detections(
            boxes=xyxy,
            scores=self.scores[rows].astype(np.float32),
            class_ids=self.classes[rows].astype(np.int32),
        )

    def iter_frames(self, first: int = 1, last: int | None = None) -> Iterator[tuple[int, Detections]]:
        """(frame, Detections) for every frame in [first, last], empty where the file has none."""
        slices = self.frame_slices()
        last = self.last_frame if last is None else last
        empty = slice(0, 0)
        for f in range(first, last + 1):
            yield f, self.detections(slices.get(f, empty))


_FIELDS = ("frames", "ids", "boxes", "scores", "classes", "visibility")


def _sorted(frames, ids, boxes, scores, classes, visibility) -> MotSequence:
    order = np.lexsort((ids, frames))
    return MotSequence(
        frames=np.asarray(frames, np.int64)[order],
        ids=np.asarray(ids, np.int64)[order],
        boxes=np.asarray(boxes, np.float64).reshape(-1, 4)[order],
        scores=np.asarray(scores, np.float64)[order],
        classes=np.asarray(classes, np.int64)[order],
        visibility=np.asarray(visibility, np.float64)[order],
    )


def _parse_row(path: str, lineno: int, line: str) -> list[float]:
    parts = [p.strip() for p in (line.split(",") if "," in line else line.split())]
    if not (_MIN_COLS <= len(parts) <= _MAX_COLS):
        raise TridentError(
            f"{path}:{lineno}: expected {_MIN_COLS} to {_MAX_COLS} comma-separated values "
            f"(frame,id,x,y,w,h,conf,class,visibility), got {len(parts)}: {line.strip()[:80]!r}"
        )
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise TridentError(f"{path}:{lineno}: non-numeric value in {line.strip()[:80]!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise TridentError(f"{path}:{lineno}: NaN or inf in {line.strip()[:80]!r}")
    frame, track_id, _, _, w, h = values[:6]
    if frame != int(frame) or frame < 1:
        raise TridentError(f"{path}:{lineno}: frame must be an integer >= 1 (MOT frames are 1-based), got {parts[0]}")
    if track_id != int(track_id):
        raise TridentError(f"{path}:{lineno}: id must be an integer, got {parts[1]}")
    if w < 0 or h < 0:
        raise TridentError(f"{path}:{lineno}: negative box size w={parts[4]} h={parts[5]}")
    if len(values) >= 8 and values[7] != int(values[7]):
        raise TridentError(f"{path}:{lineno}: class must be an integer, got {parts[7]}")
    return values


def read_mot(path: str | os.PathLike) -> MotSequence:
    """Read a MOTChallenge gt/det/result file. Blank lines are allowed."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        raise TridentError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TridentError(f"{path}: is a directory, expected a MOTChallenge .txt file") from None
    except UnicodeDecodeError:
        raise TridentError(f"{path}: not a text file (MOTChallenge files are comma-separated text)") from None
    rows = np.zeros((len(lines), 9))
    n = 0
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        values = _parse_row(path, lineno, line)
        row = rows[n]
        row[:6] = values[:6]
        row[6] = values[6] if len(values) > 6 else 1.0
        row[7] = values[7] if len(values) > 7 else -1.0
        # Ten columns is the MOT15 layout: 7-9 are world coordinates, not class/visibility.
        if len(values) == 10:
            row[7] = -1.0
            row[8] = -1.0
        else:
            row[8] = values[8] if len(values) > 8 else -1.0
        n += 1
    rows = rows[:n]
    return _sorted(rows[:, 0], rows[:, 1], rows[:, 2:6], rows[:, 6], rows[:, 7], rows[:, 8])


def write_mot(path: str | os.PathLike, seq: MotSequence) -> None:
    """Write rows as ``frame,id,x,y,w,h,conf,class,visibility`` (nine columns)."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(len(seq)):
            x, y, w, h = seq.boxes[i]
            fh.write(
                f"{seq.frames[i]},{seq.ids[i]},{x:.3f},{y:.3f},{w:.3f},{h:.3f},"
                f"{seq.scores[i]:.5f},{seq.classes[i]},{seq.visibility[i]:g}\n"
            )


def tracks_to_sequence(frames: Iterable[tuple[int, Tracks]]) -> MotSequence:
    """Collect (frame, Tracks) pairs into one sequence, ready for `write_mot`."""
    parts = [(f, t) for f, t in frames if len(t)]
    if not parts:
        z = np.zeros(0)
        return _sorted(z, z, np.zeros((0, 4)), z, z, z)
    frames_col = np.concatenate([np.full(len(t), f) for f, t in parts])
    xyxy = np.concatenate([t.boxes for _, t in parts]).astype(np.float64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    return _sorted(
        frames_col,
        np.concatenate([t.track_ids for _, t in parts]),
        xywh,
        np.concatenate([t.scores for _, t in parts]),
        np.concatenate([t.class_ids for _, t in parts]),
        np.full(len(frames_col), -1.0),
    )
