"""The runtime's analytics hook: each stream's zones after its tracker, events out, counts into the metrics.

`Pipeline` calls `process(frame, tracks)` once per frame on its own thread,
right after tracking. Per stream it runs that stream's `StreamAnalytics`
(pure), names the clip of each event when clips are on (`ClipPlanner`, so the
event carries the clip's path), and publishes the events on the `EventBus`,
whose sinks deliver them on their own threads. Source state changes of live
streams become `stream_down` / `stream_up` events (from the source's thread).

A stream's zones: its own `zones:` file (SourceConfig.zones), else the
run's (`--zones`), else none (it still gets stream events). Streams added
while running (`trident serve`) are attached with `attach(source, zones)`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from pipeline.analytics.stream import StreamAnalytics
from pipeline.analytics.zones import Zones, load_zones
from pipeline.contracts import Event
from pipeline.errors import TridentError
from pipeline.events.base import EventBus, EventSink, ThreadedEventSink

if TYPE_CHECKING:
    from pipeline.sinks.clips import ClipConfig, ClipPlanner
    from pipeline.sources.base import Source, SourceState

log = logging.getLogger("trident.analytics")


def _as_zones(value: Any) -> Zones | None:
    if value is None or value == "":
        return None
    if isinstance(value, Zones):
        return value
    from pathlib import Path

    if isinstance(value, (str, Path)):
        return load_zones(value)
    from pipeline.analytics.zones import zones_from_data

    return zones_from_data(value)


class AnalyticsStage:
    def __init__(self, zones: Any, class_names: tuple[str, ...], bus: EventBus | None = None, clips: "ClipConfig | None" = None):
        self.class_names = tuple(class_names)
        if isinstance(zones, Mapping) and not {"lines", "polygons"} & set(zones):
            self._default, self._per_stream = None, {sid: _as_zones(z) for sid, z in zones.items()}
        else:
            self._default, self._per_stream = _as_zones(zones), {}
        for z in [self._default, *self._per_stream.values()]:
            if z is not None:
                z.check_classes(self.class_names)  # before anything starts
        self.bus = bus if bus is not None else EventBus()
        self.clips = clips if clips is not None and clips.dir else None
        self.streams: dict[str, StreamAnalytics] = {}
        self.planners: dict[str, ClipPlanner] = {}
        self._counts: dict[str, dict] = {}  # latest counts per stream, read by the metrics probe
        self._lock = threading.Lock()
        self._tracking = True
        self.close_timeout_s = 10.0  # at shutdown, for every event sink together (event_delivery.close_timeout_s)

    @classmethod
    def build(cls, zones: Any, events: Sequence = (), class_names: tuple[str, ...] = (), clips: "ClipConfig | None" = None, delivery=None) -> "AnalyticsStage":
        """From the Python API's arguments: `events` may mix `--events` URIs and EventSink objects."""
        from pipeline.events.factory import EventDelivery, make_event_bus

        uris = [e for e in events if isinstance(e, str)]
        bus = make_event_bus(uris, delivery or EventDelivery())
        for sink in events:
            if isinstance(sink, EventSink):
                if isinstance(sink, ThreadedEventSink) and not sink.started:
                    sink.start()
                bus.add(sink)
        try:
            stage = cls(zones, class_names, bus, clips)
            stage.close_timeout_s = (delivery or EventDelivery()).close_timeout_s
            return stage
        except BaseException:
            bus.close(1.0)
            raise

    # --- wiring (Pipeline.__init__, and trident serve for streams added later) ---------------------
    def bind(self, pipeline: Any) -> None:
        self._tracking = bool(pipeline.trackers) or getattr(pipeline, "_tracker_cfg", None) is not None
        for source in pipeline.sources.values():
            self.attach(source)
        pipeline.metrics.add_probe(self._probe)

    def zones_of(self, source: "Source") -> Zones | None:
        if source.stream_id in self._per_stream:
            return self._per_stream[source.stream_id]
        own = getattr(source.cfg, "zones", "")
        return _as_zones(own) if own else self._default

    def attach(self, source: "Source", zones: Zones | None = None) -> None:
        """Give one stream its analytics (zones from `zones`, its config or the run) and its stream events."""
        zones = zones if zones is not None else self.zones_of(source)
        sid = source.stream_id
        if zones and not self._tracking:
            raise TridentError(f"{sid}: zones count tracks, but tracking is off; drop --tracker none (or the zones)")
        with self._lock:
            if zones:
                self.streams[sid] = StreamAnalytics(sid, zones, self.class_names)
                self._counts[sid] = self.streams[sid].counts()
            if self.clips is not None:
                from pipeline.sinks.clips import ClipPlanner

                self.planners[sid] = ClipPlanner(sid, self.clips)
        source.state_listeners.append(self._on_state)

    def detach(self, stream_id: str) -> None:
        with self._lock:
            self.streams.pop(stream_id, None)
            self.planners.pop(stream_id, None)
            self._counts.pop(stream_id, None)

    # --- the frame path -------------------------------------------------------------------------
    def process(self, frame: Any, tracks: Any) -> tuple[tuple[Event, ...], dict | None]:
        analytics = self.streams.get(frame.stream_id)
        if analytics is None:
            return (), None
        events = analytics.update(frame.index, frame.pts, frame.wall_time, tracks)
        if events:
            planner = self.planners.get(frame.stream_id)
            if planner is not None:
                events = planner.assign(events)
            for event in events:
                self.bus.publish(event)
        counts = analytics.counts()
        self._counts[frame.stream_id] = counts
        return tuple(events), counts

    # --- source threads: stream down / up -------------------------------------------------------
    def _on_state(self, source: "Source", old: "SourceState", new: "SourceState") -> None:
        from pipeline.sources.base import SourceState
        from pipeline.sources.uri import redact

        if not source.live:
            return  # a file starting and ending is not a camera going down
        if new == SourceState.STREAMING:
            kind, extra = "stream_up", {"after": old.value}
        elif old == SourceState.STREAMING and new == SourceState.RECONNECTING:
            kind, extra = "stream_down", {"state": new.value}
        elif new == SourceState.CLOSED and source.error:
            kind, extra = "stream_down", {"state": new.value, "reason": redact(source.error, source.cfg.uri)}
        else:
            return
        extra["uri"] = redact(source.cfg.uri)
        self.bus.publish(Event(source.stream_id, source.stats.frames, None, time.time(), kind, extra=extra))

    # --- metrics and shutdown -------------------------------------------------------------------
    def _probe(self, metrics: Any) -> None:
        for sid, counts in list(self._counts.items()):
            if sid in metrics.streams:  # a stream removed from the metrics stays removed
                metrics.streams[sid].counts = counts
        metrics.events = self.bus.stats()

    def counts(self, stream_id: str) -> dict | None:
        return self._counts.get(stream_id)

    def close(self, timeout: float | None = None) -> None:
        self.bus.close(timeout if timeout is not None else self.close_timeout_s)
