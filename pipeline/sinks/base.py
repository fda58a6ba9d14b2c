"""Sinks receive items (FrameResults, or annotated pictures) on their own thread through a bounded, blocking queue.

A sink that raises is recorded and switched off (the pipeline and the other
sinks go on); `close()` always drains, flushes and joins with a timeout, so a
stuck writer cannot hang shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Generic, Sequence, TypeVar

from pipeline.cpu_budget import name_thread
from pipeline.queues import BoundedQueue, Closed

if TYPE_CHECKING:
    from pipeline.metrics import Metrics

log = logging.getLogger("trident.sink")

T = TypeVar("T")


class Sink(Generic[T]):
    """Subclasses write one stream's items somewhere. Called from one thread only.

    The pipeline hands its sinks FrameResults (`Sink[FrameResult]`); a stage that
    fans out (see `sinks/annotation.py`) hands its own items to the sinks it feeds."""

    name = "sink"
    stage = ""  # the metrics stage its writes are timed as (encode, jsonl, ...); "" = not timed
    feeds: Sequence["SinkRunner"] = ()  # runners this sink hands items to; its close() closes them
    # (wall s, cpu s) of the last write's own work when it differs from the whole write (a stage that
    # waits on the sinks it feeds); None: the whole write is timed
    last_timing: tuple[float, float] | None = None

    def write(self, item: T) -> None:
        raise NotImplementedError

    def wants(self, result: Any) -> bool:
        """Whether this sink needs the item made for `result` (a FrameResult); a stage that makes items
        skips the work when none of its sinks wants it (the live preview while nobody watches)."""
        return True

    def close(self) -> None:
        """Flush and release; must leave a valid file even after a partial run."""


class SinkRunner(Generic[T]):
    def __init__(self, sink: Sink[T], queue_size: int = 32):
        self.sink = sink
        self.queue: BoundedQueue[T] = BoundedQueue(queue_size, "block", name=f"{sink.name}.results")
        self.error: str | None = None
        self.written = 0
        self.metrics: Metrics | None = None  # set by the pipeline (attach_metrics) before the first item
        self._thread = threading.Thread(target=self._loop, name=f"sink-{sink.name}", daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        if self.error is None:
            self.queue.put(item)

    def errors(self) -> dict[str, str]:
        """Sink name -> error, for this sink and every sink it feeds."""
        found = {self.sink.name: self.error} if self.error else {}
        for runner in self.sink.feeds:
            found.update(runner.errors())
        return found

    def _loop(self) -> None:
        name_thread(self.sink.stage or "sink")  # x264's and other library threads it starts inherit the name
        try:
            while True:
                try:
                    item = self.queue.get()
                except Closed:
                    return
                if self.error is not None:
                    continue  # keep draining so producers never block on a dead sink
                try:
                    started, cpu = time.perf_counter(), time.thread_time()
                    self.sink.write(item)
                    self.written += 1
                    if self.metrics is not None:
                        self._record(item, time.perf_counter() - started, time.thread_time() - cpu)
                except Exception as exc:  # one broken sink must not stop the others
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.error("%s failed and is switched off: %s", self.sink.name, self.error)
        finally:
            if self.metrics is not None and self.metrics.sample_threads is not None:
                self.metrics.sample_threads()  # before close ends the encoder's worker threads
            try:
                self.sink.close()
            except Exception as exc:
                self.error = self.error or f"close failed: {exc}"
                log.error("%s failed to close: %s", self.sink.name, exc)

    def _record(self, item: T, wall: float, cpu: float) -> None:
        stage, metrics = self.sink.stage, self.metrics
        if not stage or stage not in metrics.stages:
            return
        if self.sink.last_timing is not None:
            wall, cpu = self.sink.last_timing
        metrics.stage(stage, wall)
        metrics.cpu(stage, cpu)
        frame = getattr(item, "frame", None) or getattr(getattr(item, "result", None), "frame", None)
        if frame is not None:
            metrics.output_written(stage, max(0.0, time.time() - frame.wall_time))

    def close(self, timeout: float = 30.0) -> None:
        self.queue.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("%s did not finish within %.0f s", self.sink.name, timeout)


def attach_metrics(runner: SinkRunner, metrics: "Metrics") -> None:
    """Time `runner`'s writes, and those of every runner its sink feeds, into `metrics`."""
    runner.metrics = metrics
    for fed in runner.sink.feeds:
        attach_metrics(fed, metrics)
