"""Event sinks (MQTT, webhooks, JSON Lines, in-process) behind one non-blocking `submit(event)`, fed by an EventBus."""

from pipeline.events.base import EventBus, EventSink, RecentEvents, ThreadedEventSink
from pipeline.events.factory import EventDelivery, make_event_bus, make_event_sink

__all__ = ["EventBus", "EventSink", "RecentEvents", "ThreadedEventSink", "EventDelivery", "make_event_bus", "make_event_sink"]
