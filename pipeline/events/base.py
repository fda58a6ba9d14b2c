"""Event sinks and the bus that feeds them, never blocking the frame path.

The runtime's thread (line crossings, zone changes) and source threads
(stream down/up) hand each Event to the `EventBus`, which hands it to every
sink's `submit()`. A sink's `submit()` returns at once: a `ThreadedEventSink`
puts the event in its own bounded `drop_oldest` queue and delivers it on its
own thread, so a broker that is down or a webhook that takes 30 s costs the
pipeline nothing but the events that queue had to drop, and those are
counted (`stats()`: sent, dropped, failed, queued) and reported in the
summary, the metrics JSON and Prometheus.

In-process consumers (`trident serve`'s recent-events list and live feed)
are sinks too: `RecentEvents` keeps the last N events and hands new ones to
subscribers' own bounded queues.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Iterable

from pipeline.contracts import Event
from pipeline.queues import BoundedQueue, Closed

log = logging.getLogger("trident.events")

DEFAULT_QUEUE = 1024


class EventSink:
    """`submit()` must return at once (any thread may call it); `close(timeout)` flushes what it can."""

    name = "events"

    def submit(self, event: Event) -> None:
        raise NotImplementedError

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued within `timeout` seconds; what is left is counted as dropped."""

    def stats(self) -> dict[str, int]:
        return {}


class ThreadedEventSink(EventSink):
    """Subclasses implement `deliver(event)` (runs on the sink's own thread; raise to count a failure)
    and may override `open()` / `shutdown()` (also on that thread)."""

    def __init__(self, name: str, queue_size: int = DEFAULT_QUEUE):
        self.name = name
        self.queue: BoundedQueue[Event] = BoundedQueue(queue_size, "drop_oldest", name=f"{name}.events")
        self.sent = 0
        self.failed = 0  # delivery given up (retries spent, write error)
        self.abandoned = 0  # still queued when close() ran out of time
        self.stop = threading.Event()  # set when close() runs out of time: deliveries give up their retries
        self._thread = threading.Thread(target=self._loop, name=f"events-{name}", daemon=True)
        self._started = False
        self._last_warning = -1e9

    def start(self) -> "ThreadedEventSink":
        self._started = True
        self._thread.start()
        return self

    @property
    def started(self) -> bool:
        return self._started

    def submit(self, event: Event) -> None:
        self.queue.put(event)  # drop_oldest: never waits

    def open(self) -> None:
        """Called once on the sink's thread before the first delivery."""

    def deliver(self, event: Event) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Called once on the sink's thread after the last delivery."""

    def _loop(self) -> None:
        try:
            self.open()
            while True:
                try:
                    event = self.queue.get()
                except Closed:
                    return
                if self.stop.is_set():
                    self.abandoned += 1
                    continue
                try:
                    self.deliver(event)
                except Exception as exc:  # one lost event, counted; the sink goes on with the next
                    self.failed += 1
                    self._warn(f"event {event.kind} not delivered: {exc}")
        except Exception:
            log.exception("%s: event sink failed", self.name)
        finally:
            try:
                self.shutdown()
            except Exception as exc:
                log.warning("%s: close failed: %s", self.name, exc)

    def _warn(self, message: str) -> None:
        """At most one warning per 10 s: a receiver that is down must not flood the log."""
        now = time.monotonic()
        if now - self._last_warning >= 10.0:
            self._last_warning = now
            log.warning("%s: %s (failed so far: %d, dropped: %d)", self.name, message, self.failed, self.queue.dropped)

    def close(self, timeout: float = 10.0) -> None:
        self.queue.close()
        if not self._started:  # never ran: release what the constructor opened
            self.shutdown()
            return
        self._thread.join(timeout)
        if self._thread.is_alive():  # still delivering: stop retrying, count the rest, give it a moment
            self.stop.set()
            self._thread.join(5.0)
            if self._thread.is_alive():
                log.error("%s did not stop within %.0f s; %d event(s) left undelivered", self.name, timeout + 5, len(self.queue))

    def stats(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "dropped": self.queue.dropped + self.abandoned + len(self.queue) * int(self.stop.is_set()),
            "failed": self.failed,
            "queued": len(self.queue),
        }


class EventBus:
    """Fans every event out to the sinks; sinks may be added and removed while running (thread-safe)."""

    def __init__(self, sinks: Iterable[EventSink] = ()):
        self._sinks: list[EventSink] = list(sinks)
        self._lock = threading.Lock()
        self.published = 0

    @property
    def sinks(self) -> list[EventSink]:
        with self._lock:
            return list(self._sinks)

    def add(self, sink: EventSink) -> EventSink:
        with self._lock:
            self._sinks.append(sink)
        return sink

    def remove(self, sink: EventSink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def publish(self, event: Event) -> None:
        with self._lock:
            sinks = list(self._sinks)
            self.published += 1
        for sink in sinks:
            try:
                sink.submit(event)
            except Exception as exc:  # a consumer's bug must not reach the frame path
                log.warning("%s: submit failed: %s", sink.name, exc)

    def close(self, timeout: float = 10.0) -> None:
        """Close every sink, sharing one deadline, so shutdown is bounded however many sinks are stuck."""
        deadline = time.monotonic() + timeout
        for sink in self.sinks:
            sink.close(max(0.5, deadline - time.monotonic()))

    def stats(self) -> dict[str, dict[str, int]]:
        return {sink.name: sink.stats() for sink in self.sinks}


class RecentEvents(EventSink):
    """The last `keep` events in memory, and live feeds: `subscribe()` gives a bounded queue of new events.

    For in-process readers such as an HTTP API (recent events, server-sent events). A slow subscriber
    loses its oldest events (counted on its queue), never slows the bus."""

    def __init__(self, keep: int = 200, name: str = "recent"):
        self.name = name
        self._recent: collections.deque[Event] = collections.deque(maxlen=keep)
        self._subscribers: list[BoundedQueue[Event]] = []
        self._lock = threading.Lock()
        self.seen = 0

    def submit(self, event: Event) -> None:
        with self._lock:
            self._recent.append(event)
            self.seen += 1
            subscribers = list(self._subscribers)
        for q in subscribers:
            q.put(event)

    def recent(self, n: int | None = None, stream_id: str | None = None) -> list[Event]:
        with self._lock:
            events = [e for e in self._recent if stream_id is None or e.stream_id == stream_id]
        return events if n is None else events[-n:]

    def subscribe(self, queue_size: int = 256) -> BoundedQueue[Event]:
        q: BoundedQueue[Event] = BoundedQueue(queue_size, "drop_oldest", name=f"{self.name}.subscriber")
        with self._lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: BoundedQueue[Event]) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)
        q.close()

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for q in subscribers:
            q.close()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"sent": self.seen, "dropped": sum(q.dropped for q in self._subscribers), "failed": 0, "queued": 0}
