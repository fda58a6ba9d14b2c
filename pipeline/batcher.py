"""Collect frames from many streams into engine batches.

A batch closes when it holds `max_batch` frames or `max_wait_ms` after its
first frame arrived, whichever comes first: a larger wait fills batches on
many slow cameras (throughput), a smaller one keeps a single camera's
latency low. Streams are visited round-robin so a fast file cannot starve a
camera, and each stream's frames keep their order (one queue per stream,
read front to back).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from pipeline.queues import BoundedQueue, Closed
from pipeline.sources.base import EndOfStream
from pipeline.contracts import Frame
from pipeline.errors import TridentError


# max_batch 0 (auto): an engine that runs several batches at once (ONNX Runtime or OpenVINO on a
# CPU, `concurrent_calls` > 1) gets single frames - on a CPU a batch of 4 costs ~4x a batch of 1, so
# it only makes frames wait; measured on a 2-core AMX Xeon, 4 live 10 fps cameras, FP32 ONNX Runtime:
# max_batch 1 40.0 frames/s, capture->JSONL p50 142 / p99 249 ms against max_batch 4 36.3, 318 / 408
# ms; vtest.avi from a file 37.2-37.6 vs 37.1-38.3 FPS. Other engines (a GPU) get AUTO_GPU_BATCH.
AUTO_GPU_BATCH = 4


@dataclass(frozen=True)
class BatchConfig:
    max_batch: int = 0  # frames per engine call (0 = auto, see above); bounded by the engine's batch range
    max_wait_ms: float = 5.0  # how long a partial batch waits for more frames

    def __post_init__(self) -> None:
        if self.max_batch < 0:
            raise TridentError(f"max_batch must be >= 1 (or 0 = auto), got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise TridentError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")


def auto_max_batch(engine_calls: int) -> int:
    """What max_batch 0 means for an engine that takes `engine_calls` batches at once."""
    return 1 if engine_calls > 1 else AUTO_GPU_BATCH


class Batcher:
    """`keep_open` (a service): with no stream left the batcher stays active and waits for `add()`;
    `add()`/`remove()` are called between `next_batch()` calls by the thread that calls it (the
    runtime's loop: other threads hand it their requests), so none of this needs a lock."""

    def __init__(self, queues: dict[str, BoundedQueue], cfg: BatchConfig, wakeup: threading.Event, keep_open: bool = False):
        self.queues = dict(queues)
        # max_batch 0 is resolved by the runtime, which knows the engine; alone, the Batcher takes the GPU default
        self.cfg = cfg if cfg.max_batch else BatchConfig(auto_max_batch(1), cfg.max_wait_ms)
        self.wakeup = wakeup  # set by producers on every put, so an idle batcher sleeps instead of polling
        self.keep_open = keep_open
        self._order = list(self.queues)
        self._next = 0

    @property
    def active(self) -> bool:
        return bool(self.queues) or self.keep_open

    def add(self, stream_id: str, queue: BoundedQueue) -> None:
        """A stream joins at the end of the round-robin order; it is read from the next batch on."""
        if stream_id in self.queues:
            raise TridentError(f"stream {stream_id!r} is already being batched")
        self.queues[stream_id] = queue
        self._order.append(stream_id)

    def remove(self, stream_id: str) -> None:
        """A stream leaves now; frames still in its queue are not read (the caller closes the queue)."""
        if self.queues.pop(stream_id, None) is not None:
            self._order.remove(stream_id)
            self._next = 0

    def _take_one(self, stream_id: str) -> Frame | EndOfStream | None:
        try:
            return self.queues[stream_id].get(timeout=0)
        except TimeoutError:
            return None
        except Closed:
            return EndOfStream(stream_id, "queue closed")

    def next_batch(self, stop: threading.Event | None = None, block: bool = True) -> tuple[list[Frame], list[EndOfStream]]:
        """Up to max_batch frames in per-stream order, and the streams that ended meanwhile.

        Returns ([], []) only when stopped or when every stream has ended, or (`keep_open`) after an
        idle wait of at most 0.1 s, or (`block=False`: the runtime has a batch in flight to finish)
        at once when no frame is there yet; once one is, the batch fills for `max_wait_ms` as usual.
        """
        frames: list[Frame] = []
        ended: list[EndOfStream] = []
        deadline: float | None = None
        if self.keep_open and not self.queues:
            if block:
                self.wakeup.wait(0.1)  # serving with no camera: sleep until one is added (add_source sets wakeup)
            return frames, ended
        while self.queues and len(frames) < self.cfg.max_batch:
            self.wakeup.clear()
            progressed = False
            for _ in range(len(self._order)):
                if len(frames) >= self.cfg.max_batch:
                    break
                sid = self._order[self._next % len(self._order)]
                self._next += 1
                item = self._take_one(sid)
                if item is None:
                    continue
                progressed = True
                if isinstance(item, EndOfStream):
                    ended.append(item)
                    del self.queues[sid]
                    self._order.remove(sid)
                    self._next = 0
                    if not self._order:
                        break
                else:
                    frames.append(item)
            if frames and deadline is None:
                # counted from the oldest frame's capture, not from when it was taken here: a frame
                # that already waited in its queue (the engine was busy) is not held any longer
                waited = max(0.0, time.time() - min(getattr(f, "wall_time", time.time()) for f in frames))
                deadline = time.monotonic() + max(0.0, self.cfg.max_wait_ms / 1e3 - waited)
            if ended and not frames:
                return frames, ended  # report ends promptly
            if len(frames) >= self.cfg.max_batch or not self.queues:
                break
            if stop is not None and stop.is_set() and not frames:
                break
            if not block and not frames:
                break
            if progressed:
                continue
            if self.keep_open and not frames:
                # serving: hand back after one idle wait, so streams added or removed meanwhile are
                # applied even while every camera is silent (down, reconnecting)
                self.wakeup.wait(0.1)
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            self.wakeup.wait(0.1 if deadline is None else max(0.0, deadline - now))
        return frames, ended
