"""Frame sources: files, RTSP/network cameras, webcams, GStreamer pipelines (Jetson)."""

from __future__ import annotations

import threading

from pipeline.queues import BoundedQueue
from pipeline.sources.base import EndOfStream, FatalError, RetryableError, Source, SourceConfig, SourceState
from pipeline.sources.uri import classify, redact, stream_name

__all__ = [
    "EndOfStream",
    "FatalError",
    "RetryableError",
    "Source",
    "SourceConfig",
    "SourceState",
    "classify",
    "make_source",
    "redact",
    "stream_name",
]

# A live queue holds 2 frames: one being decoded into while the engine works, one waiting. Each frame
# more is one frame interval more latency (4 at 10 fps: up to 400 ms) and buys nothing on a live
# camera, whose frames cannot be caught up on anyway (drop_oldest drops and counts them).
LIVE_QUEUE, FILE_QUEUE = 2, 16


def make_source(cfg: SourceConfig, stop: threading.Event, stream_id: str | None = None, wakeup: threading.Event | None = None) -> Source:
    """The source for cfg.uri, with its own bounded queue (policy by kind unless configured)."""
    kind = classify(cfg.uri) if cfg.kind == "auto" else cfg.kind
    if kind == "file":
        from pipeline.sources.file import FileSource as cls
    elif kind == "rtsp":
        from pipeline.sources.rtsp import RtspSource as cls
    elif kind == "webcam":
        from pipeline.sources.capture import WebcamSource as cls
    else:
        from pipeline.sources.capture import GStreamerSource as cls
    sid = stream_id or cfg.stream_id or stream_name(cfg.uri)
    policy = cfg.queue_policy or ("drop_oldest" if cls.live else "block")
    size = cfg.queue_size or (LIVE_QUEUE if cls.live else FILE_QUEUE)
    return cls(cfg, sid, BoundedQueue(size, policy, name=f"{sid}.frames", wakeup=wakeup), stop)
