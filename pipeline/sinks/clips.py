"""Clips on events: an MP4 per event, or per burst of events, with the seconds before and after it.

Two halves that follow one rule, so the clip's path can be in the event the
moment it is sent (events are not held back until the clip is written):

- `ClipPlanner` (the runtime's thread, pure): an event at `pts` belongs to the
  clip being recorded if `pts <= end` of that clip, and extends its end to
  `pts + post_roll_s`; otherwise it opens a new clip. The path goes into the
  event's `clip` field. The file is complete about `post_roll_s` after the
  last event of its burst (plus encoding), or when the stream ends.
- `ClipRecorder` (a sink on its own thread): a ring buffer of the stream's
  last `pre_roll_s` seconds of frames (annotated pictures, or raw frames),
  bounded by time and by `buffer_mb`; when a frame's events name a new clip it
  writes the buffer to that clip's MP4 and keeps writing until the first frame
  at or past the clip's end.

Frames are kept by reference (the pictures are already made), so the ring costs
memory, `pre_roll_s` x fps x frame size (capped by `buffer_mb`), and no copy or
encode until a clip is recorded.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.contracts import Event, FrameResult
from pipeline.errors import TridentError
from pipeline.sinks.annotation import Picture
from pipeline.sinks.base import Sink

log = logging.getLogger("trident.clips")

CLIP_KINDS = ("line_cross", "zone_enter", "zone_exit", "dwell")


@dataclass(frozen=True)
class ClipConfig:
    dir: str = ""  # "": no clips
    pre_roll_s: float = 5.0
    post_roll_s: float = 5.0
    annotated: bool = True  # the annotated picture (boxes, zones, counts) or the raw frame
    buffer_mb: int = 512  # per stream: the pre-roll ring drops its oldest frames past this
    kinds: tuple[str, ...] = CLIP_KINDS  # events that start or extend a clip

    def __post_init__(self) -> None:
        if self.pre_roll_s < 0 or self.post_roll_s < 0:
            raise TridentError(f"clips: --pre-roll and --post-roll must be >= 0 seconds, got {self.pre_roll_s} and {self.post_roll_s}")
        if self.buffer_mb < 1:
            raise TridentError(f"clips.buffer_mb must be >= 1, got {self.buffer_mb}")
        bad = [k for k in self.kinds if k not in CLIP_KINDS]
        if bad:
            raise TridentError(f"clips.kinds: {', '.join(bad)} cannot start a clip; use some of {', '.join(CLIP_KINDS)}")


class ClipPlanner:
    """Names the clip each event of one stream belongs to (see the module docstring)."""

    def __init__(self, stream_id: str, cfg: ClipConfig):
        self.stream_id, self.cfg = stream_id, cfg
        self.folder = Path(cfg.dir)
        self.path: str | None = None
        self.end = float("-inf")
        self.planned = 0

    def assign(self, events: list[Event]) -> list[Event]:
        out = []
        for ev in events:
            if ev.kind not in self.cfg.kinds or ev.pts is None:
                out.append(ev)
                continue
            if self.path is None or ev.pts > self.end:
                stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(ev.wall_time))
                self.path = str(self.folder / f"{self.stream_id}-{stamp}-f{ev.frame_index:06d}.mp4")
                self.planned += 1
            self.end = max(self.end, ev.pts + self.cfg.post_roll_s)
            out.append(dataclasses.replace(ev, extra={**ev.extra, "clip": self.path}))
        return out


class ClipRecorder(Sink[Any]):
    """Writes one stream's clips. Takes `Picture`s (annotated) or `FrameResult`s (raw frames)."""

    def __init__(self, stream_id: str, cfg: ClipConfig, fallback_fps: float = 15.0):
        self.name = f"clips:{stream_id}"
        self.cfg, self.fallback_fps = cfg, fallback_fps
        self._ring: collections.deque[Picture] = collections.deque()
        self._bytes = 0
        self._writer = None
        self._path: str | None = None
        self._end = float("-inf")
        self.written: list[str] = []  # finished clip files, in order

    def write(self, item: Any) -> None:
        picture = item if isinstance(item, Picture) else Picture(item, item.frame.image)
        result: FrameResult = picture.result
        pts = result.frame.pts
        self._ring.append(picture)
        self._bytes += picture.image.nbytes
        while self._ring and (self._ring[0].result.frame.pts < pts - self.cfg.pre_roll_s or self._bytes > self.cfg.buffer_mb * 2**20):
            self._bytes -= self._ring.popleft().image.nbytes
        wrote = False
        for ev in result.events:
            clip = ev.extra.get("clip")
            if clip is None:
                continue
            if clip != self._path:
                self._finish()
                self._start(clip)  # writes the ring, this frame included
                wrote = True
            self._end = max(self._end, ev.pts + self.cfg.post_roll_s)
        if self._writer is not None:
            if not wrote:
                self._writer.write(picture)
            if pts >= self._end:
                self._finish()

    def _start(self, path: str) -> None:
        from pipeline.sinks.video import VideoSink

        frames = list(self._ring)
        span = frames[-1].result.frame.pts - frames[0].result.frame.pts
        # the rate the frames really arrived at: a live stream that dropped frames still plays in real time
        fps = (len(frames) - 1) / span if len(frames) > 1 and span > 0 else self.fallback_fps
        self._path, self._writer = path, VideoSink(Path(path), fps=fps)
        for picture in frames:
            self._writer.write(picture)

    def _finish(self) -> None:
        if self._writer is None:
            return
        try:
            self._writer.close()
        finally:
            self.written.append(self._path)
            log.info("%s: clip %s", self.name, self._path)
            self._writer = None

    def close(self) -> None:
        self._finish()
        self._ring.clear()
