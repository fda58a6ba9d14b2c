"""Sinks receive items (FrameResults, or annotated pictures) on their own thread through a bounded, blocking queue.

A sink that raises is recorded and switched off (the pipeline and the other
sinks go on); `close()` always drains, flushes and joins with a timeout, so a
stuck writer cannot hang shutdown.
"""

from __future__ import annotations

import logging
import threading
from typing import Generic, Sequence, TypeVar

from pipeline.queues import BoundedQueue, Closed

log = logging.getLogger("trident.sink")

T = TypeVar("T")


class Sink(Generic[T]):
    """Subclasses write one stream's items somewhere. Called from one thread only.

    The pipeline hands its sinks FrameResults (`Sink[FrameResult]`); a stage that
    fans out (see `sinks/annotation.py`) hands its own items to the sinks it feeds."""

    name = "sink"
    feeds: Sequence["SinkRunner"] = ()  # runners this sink hands items to; its close() closes them

    def write(self, item: T) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release; must leave a valid file even after a partial run."""


class SinkRunner(Generic[T]):
    def __init__(self, sink: Sink[T], queue_size: int = 32):
        self.sink = sink
        self.queue: BoundedQueue[T] = BoundedQueue(queue_size, "block", name=f"{sink.name}.results")
        self.error: str | None = None
        self.written = 0
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
        try:
            while True:
                try:
                    item = self.queue.get()
                except Closed:
                    return
                if self.error is not None:
                    continue  # keep draining so producers never block on a dead sink
                try:
                    self.sink.write(item)
                    self.written += 1
                except Exception as exc:  # one broken sink must not stop the others
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.error("%s failed and is switched off: %s", self.sink.name, self.error)
        finally:
            try:
                self.sink.close()
            except Exception as exc:
                self.error = self.error or f"close failed: {exc}"
                log.error("%s failed to close: %s", self.sink.name, exc)

    def close(self, timeout: float = 30.0) -> None:
        self.queue.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("%s did not finish within %.0f s", self.sink.name, timeout)
