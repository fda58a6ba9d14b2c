"""Bounded queues with a named overflow policy.

`block`: the producer waits (with a timeout it retries, so a stop request is
seen) -- files: nothing is lost, the decoder simply runs at the engine's pace.
`drop_oldest`: the oldest item is discarded to make room -- live cameras:
latency stays bounded by the queue length, and every drop is counted.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Generic, TypeVar

from pipeline.errors import TridentError

T = TypeVar("T")

POLICIES = ("block", "drop_oldest")


class Closed(Exception):
    """The queue was closed and is empty: no item will ever come."""


class BoundedQueue(Generic[T]):
    def __init__(self, maxsize: int, policy: str = "block", name: str = "queue", wakeup: threading.Event | None = None):
        if maxsize < 1:
            raise TridentError(f"{name}: queue size must be >= 1, got {maxsize}")
        if policy not in POLICIES:
            raise TridentError(f"{name}: unknown queue policy {policy!r}; use one of {', '.join(POLICIES)}")
        self.maxsize, self.policy, self.name = maxsize, policy, name
        self._items: collections.deque[T] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self.dropped = 0
        self.max_depth = 0
        self.wakeup = wakeup  # optional event set on every put: lets one consumer wait on many queues

    def put(self, item: T, timeout: float | None = None, stop: threading.Event | None = None) -> bool:
        """Add an item. Returns False if it was not added (stop was set, or the queue is closed).

        With `block`, waits in slices of 0.1 s so that `stop` and `close()` are
        noticed; `timeout` bounds the total wait (then raises TimeoutError).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._not_full:
            while len(self._items) >= self.maxsize and not self._closed:
                if self.policy == "drop_oldest":
                    self._items.popleft()
                    self.dropped += 1
                    break
                if stop is not None and stop.is_set():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"{self.name}: full for {timeout:.1f} s")
                self._not_full.wait(0.1 if remaining is None else min(0.1, remaining))
            if self._closed:
                return False
            self._items.append(item)
            self.max_depth = max(self.max_depth, len(self._items))
            self._not_empty.notify()
        if self.wakeup is not None:
            self.wakeup.set()
        return True

    def get(self, timeout: float | None = None) -> T:
        """Next item; raises queue_mod.Empty-like TimeoutError after `timeout`, Closed when closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._not_empty:
            while not self._items:
                if self._closed:
                    raise Closed(self.name)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(self.name)
                self._not_empty.wait(remaining)
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def close(self) -> None:
        """No more puts; getters drain what is left, then see Closed."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        if self.wakeup is not None:
            self.wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "policy": self.policy, "size": self.maxsize, "depth": len(self), "max_depth": self.max_depth, "dropped": self.dropped}
