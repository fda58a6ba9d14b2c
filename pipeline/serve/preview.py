"""The live picture of one stream for `trident serve`: the last annotated JPEG, made only when wanted.

A `PreviewSink` is one more picture sink of the stream's `AnnotationStage`
(pipeline/sinks/annotation.py), so it shows exactly what the MP4 shows. It
costs the frame path nothing while nobody looks: its `wants()` tells the stage
to skip drawing. With viewers it asks for at most `max_fps` pictures a second,
whatever the stream's rate and however many viewers there are: each picture
is encoded once, on this sink's own thread, and every MJPEG viewer and
snapshot shares the same bytes. A viewer that reads slower than that simply
skips to the newest picture; nothing queues up behind it.

Viewers wait from another thread (uvicorn's event loop): `watch()` registers a
callback called after each new JPEG (the server turns it into an asyncio wake
with `call_soon_threadsafe`); `snapshot()` blocks a worker thread for at most
its timeout.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from pipeline.errors import TridentError
from pipeline.sinks.annotation import Picture
from pipeline.sinks.base import Sink

# How old a JPEG may be and still answer a snapshot without asking for a new one: one preview
# interval at the default rate, so a watched stream's snapshot costs no extra encode.
SNAPSHOT_FRESH_S = 0.2


@dataclass(frozen=True)
class Jpeg:
    data: bytes
    seq: int  # increases by one per JPEG made: a viewer sends a part when it changes
    frame_index: int
    width: int
    height: int
    made_at: float  # time.monotonic()


class PreviewSink(Sink[Picture]):
    def __init__(self, stream_id: str, max_fps: float = 5.0, quality: int = 80):
        if not max_fps > 0:
            raise TridentError(f"preview rate must be > 0 frames per second, got {max_fps!r}; e.g. --preview-fps 5")
        if not 1 <= quality <= 100:
            raise TridentError(f"preview JPEG quality must be 1..100, got {quality!r}")
        self.name = f"preview:{stream_id}"
        self.stage = "preview"
        self.stream_id, self.max_fps, self.quality = stream_id, max_fps, quality
        self._cond = threading.Condition()
        self._viewers: set[Callable[[], None]] = set()
        self._snapshot_due = False  # a snapshot asked for a fresh picture: the next frame is drawn, once
        self._next_due = 0.0
        self._last: Jpeg | None = None
        self.closed = False
        self.encoded = 0  # JPEGs made: the preview's whole cost is this many draws and encodes
        self.encode_s = 0.0  # wall seconds spent encoding them (this sink's thread)
        self.encode_cpu_s = 0.0  # and CPU seconds

    # --- the frame path (annotation thread, then this sink's thread) -----------------------------
    def wants(self, result: object) -> bool:
        """On the stream's annotation thread, once per frame: draw this one for me?"""
        now = time.monotonic()
        if self._snapshot_due:
            self._snapshot_due = False  # one picture answers every snapshot waiting now
        elif not self._viewers or now < self._next_due:
            return False
        # the next slot counts from now, not from the last slot: a stream slower than the cap is
        # drawn every frame, a faster one at the cap, and a pause never causes a burst afterwards
        self._next_due = now + 1.0 / self.max_fps
        return True

    def write(self, picture: Picture) -> None:
        import cv2

        started, cpu = time.perf_counter(), time.thread_time()
        ok, buf = cv2.imencode(".jpg", picture.image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise TridentError(f"{self.stream_id}: OpenCV could not encode the preview JPEG")
        h, w = picture.image.shape[:2]
        with self._cond:
            seq = self._last.seq + 1 if self._last else 1
            self._last = Jpeg(buf.tobytes(), seq, picture.result.frame.index, w, h, time.monotonic())
            self.encoded += 1
            self.encode_s += time.perf_counter() - started
            self.encode_cpu_s += time.thread_time() - cpu
            viewers = list(self._viewers)
            self._cond.notify_all()
        for wake in viewers:
            wake()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            viewers = list(self._viewers)
            self._cond.notify_all()
        for wake in viewers:
            wake()  # each MJPEG viewer sees `closed` and ends its response

    # --- readers (HTTP threads) -------------------------------------------------------------------
    @property
    def latest(self) -> Jpeg | None:
        return self._last

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def watch(self, wake: Callable[[], None]) -> None:
        """Start asking for pictures; `wake()` is called (on the sink's thread) after each new JPEG and at close."""
        with self._cond:
            self._viewers.add(wake)
            self._next_due = 0.0  # a new viewer gets a picture at the next frame

    def unwatch(self, wake: Callable[[], None]) -> None:
        with self._cond:
            self._viewers.discard(wake)

    def snapshot(self, timeout: float = 3.0) -> Jpeg | None:
        """The newest annotated JPEG: a recent one as it is, else one made from the next frame.

        Waits at most `timeout` for that frame; then (a stream that is down, or ended) the last
        JPEG made, however old, or None when the stream never gave a picture."""
        deadline = time.monotonic() + timeout
        with self._cond:
            last = self._last
            if self.closed or (last is not None and time.monotonic() - last.made_at <= SNAPSHOT_FRESH_S):
                return last
            self._snapshot_due = True
            while not self.closed:
                if self._last is not None and self._last is not last:
                    return self._last
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._last
