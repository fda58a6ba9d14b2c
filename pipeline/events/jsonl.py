"""`--events FILE.jsonl`: one event per line, flushed per event, so a killed run leaves whole lines."""

from __future__ import annotations

from pathlib import Path

from pipeline.contracts import Event
from pipeline.errors import TridentError
from pipeline.events.base import DEFAULT_QUEUE, ThreadedEventSink


class JsonlEventSink(ThreadedEventSink):
    def __init__(self, path: str | Path, queue_size: int = DEFAULT_QUEUE):
        super().__init__(f"jsonl:{Path(path).name}", queue_size)
        self.path = Path(path)
        if self.path.is_dir():
            raise TridentError(f"--events {self.path} is a directory; pass a file name such as {self.path / 'events.jsonl'}")
        if not self.path.parent.is_dir():
            raise TridentError(f"--events {self.path}: the folder {self.path.parent} does not exist; create it or choose another path")
        try:  # opened here, on the caller's thread: an unwritable file refuses the run before it starts
            self._f = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise TridentError(f"--events {self.path} cannot be written: {exc.strerror or exc}; choose a writable path") from None

    def deliver(self, event: Event) -> None:
        self._f.write(event.to_json() + "\n")
        self._f.flush()
        self.sent += 1

    def shutdown(self) -> None:
        self._f.close()
