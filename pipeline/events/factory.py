"""`--events URI` -> an event sink: mqtt:// (broker), http(s):// (webhook), FILE.jsonl (JSON Lines)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from pipeline.errors import TridentError
from pipeline.events.base import EventBus, EventSink, ThreadedEventSink
from pipeline.sources.uri import redact, split_userinfo

FORMS = "mqtt://HOST:PORT/TOPIC, http://HOST/PATH (webhook) or FILE.jsonl"


@dataclass(frozen=True)
class EventDelivery:
    """How event sinks deliver (`event_delivery:` in the run config)."""

    queue_size: int = 1024  # events waiting per sink; the oldest are dropped (and counted) past it
    close_timeout_s: float = 10.0  # at the end of a run, time left for every sink together to deliver what is queued
    mqtt_qos: int = 1
    mqtt_offline_buffer: int = 1000  # events held while the broker is unreachable
    webhook_timeout_s: float = 5.0
    webhook_retries: int = 4
    webhook_backoff_s: float = 0.5  # first retry after this, doubling up to webhook_backoff_max_s
    webhook_backoff_max_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("queue_size", "mqtt_offline_buffer"):
            if getattr(self, name) < 1:
                raise TridentError(f"event_delivery.{name} must be >= 1, got {getattr(self, name)}")
        if self.mqtt_qos not in (0, 1, 2):
            raise TridentError(f"event_delivery.mqtt_qos must be 0, 1 or 2, got {self.mqtt_qos}")
        if self.webhook_retries < 0:
            raise TridentError(f"event_delivery.webhook_retries must be >= 0, got {self.webhook_retries}")
        for name in ("close_timeout_s", "webhook_timeout_s", "webhook_backoff_s", "webhook_backoff_max_s"):
            if not getattr(self, name) > 0:
                raise TridentError(f"event_delivery.{name} must be > 0 seconds, got {getattr(self, name)}")


def make_event_sink(uri: str, delivery: EventDelivery = EventDelivery()) -> EventSink:
    """The sink for one `--events` value, not started yet; a bad address is one error naming the forms."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("mqtt", "mqtts"):
        from pipeline.events.mqtt import MqttEventSink, MqttOptions

        return MqttEventSink(uri, MqttOptions(qos=delivery.mqtt_qos, offline_buffer=delivery.mqtt_offline_buffer), delivery.queue_size)
    if scheme in ("http", "https"):
        from pipeline.events.webhook import WebhookEventSink, WebhookOptions

        if not split_userinfo(uri)[2].split("/", 1)[0]:
            raise TridentError(f"--events {redact(uri)}: no host; write http://HOST:PORT/PATH")
        options = WebhookOptions(delivery.webhook_timeout_s, delivery.webhook_retries, delivery.webhook_backoff_s, delivery.webhook_backoff_max_s)
        return WebhookEventSink(uri, options, delivery.queue_size)
    if scheme:
        raise TridentError(f"--events {redact(uri)}: unknown scheme {scheme}://; use {FORMS}")
    if not uri.lower().endswith(".jsonl"):
        raise TridentError(f"--events {uri!r} is neither an address nor a .jsonl file; use {FORMS}")
    from pipeline.events.jsonl import JsonlEventSink

    return JsonlEventSink(uri, delivery.queue_size)


def make_event_bus(uris: Iterable[str], delivery: EventDelivery = EventDelivery()) -> EventBus:
    """Every sink opened (files) and checked (addresses) before any starts; one that fails closes the others."""
    sinks: list[EventSink] = []
    try:
        for uri in uris:
            sinks.append(make_event_sink(uri, delivery))
    except BaseException:
        for sink in sinks:
            sink.close(0.5)
        raise
    for sink in sinks:
        if isinstance(sink, ThreadedEventSink):
            sink.start()
    return EventBus(sinks)
