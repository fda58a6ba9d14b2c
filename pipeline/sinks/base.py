"""Sinks receive FrameResults on their own thread through a bounded, blocking queue.

A sink that raises is recorded and switched off (the pipeline and the other
sinks go on); `close()` always drains, flushes and joins with a timeout, so a
stuck writer cannot hang shutdown.
"""

from __future__ import annotations

import logging
import threading

from pipeline.queues import BoundedQueue, Closed
from pipeline.contracts import FrameResult

log = logging.getLogger("trident.sink")


class Sink:
    """Subclasses write one stream's results somewhere. Called from one thread only."""

    name = "sink"

    def write(self, result: FrameResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release; must leave a valid file even after a partial run."""


class SinkRunner:
    def __init__(self, sink: Sink, queue_size: int = 32):
        self.sink = sink
        self.queue: BoundedQueue[FrameResult] = BoundedQueue(queue_size, "block", name=f"{sink.name}.results")
        self.error: str | None = None
        self.written = 0
        self._thread = threading.Thread(target=self._loop, name=f"sink-{sink.name}", daemon=True)
        self._thread.start()

    def submit(self, result: FrameResult) -> None:
        if self.error is None:
            self.queue.put(result)

    def _loop(self) -> None:
        try:
            while True:
                try:
                    result = self.queue.get()
                except Closed:
                    return
                if self.error is not None:
                    continue  # keep draining so producers never block on a dead sink
                try:
                    self.sink.write(result)
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
