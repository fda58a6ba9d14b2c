"""`--events mqtt://[user:pass@]HOST[:PORT]/TOPIC` (or mqtts://): events to an MQTT broker with paho-mqtt.

Each event is published with QoS 1 (the broker acknowledges it; paho resends
what was not acknowledged after a reconnect) on `TOPIC/<stream>/<kind>`, so a
subscriber can take one camera (`TOPIC/cam1/#`) or one kind (`TOPIC/+/line_cross`).
paho's network thread connects in the background and reconnects with a
capped backoff; while the broker is away, events wait in paho's outgoing
buffer, bounded by `offline_buffer` messages: past it, new events are dropped
and counted, and the buffered ones are delivered when the broker is back.
`sent` counts broker acknowledgements, so it is what really arrived.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import unquote

from pipeline.contracts import Event
from pipeline.errors import TridentError
from pipeline.events.base import DEFAULT_QUEUE, ThreadedEventSink
from pipeline.sources.uri import redact, split_userinfo

log = logging.getLogger("trident.events")


@dataclass(frozen=True)
class MqttOptions:
    qos: int = 1
    offline_buffer: int = 1000  # messages held while the broker is unreachable; more are dropped and counted
    reconnect_min_s: int = 1  # paho's reconnect backoff: doubles from min to max
    reconnect_max_s: int = 5
    keepalive_s: int = 30


def parse_mqtt_uri(uri: str) -> tuple[str, int, str, str | None, str | None, bool]:
    """(host, port, topic, user, password, tls) of mqtt://user:pass@host:port/topic; errors name the fix."""
    head, userinfo, rest = split_userinfo(uri)
    scheme = head[:-3].lower()
    if scheme not in ("mqtt", "mqtts"):
        raise TridentError(f"--events {redact(uri)}: not an mqtt:// or mqtts:// address")
    hostport, _, topic = rest.partition("/")
    topic = topic.strip("/") or "trident"
    if any(c in topic for c in "+#"):
        raise TridentError(f"--events {redact(uri)}: the topic {topic!r} has a wildcard (+ or #); publish to a plain topic such as trident/events")
    host, sep, port_text = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    if not sep:
        host, port_text = hostport, ""
    if not host:
        raise TridentError(f"--events {redact(uri)}: no broker host; write mqtt://HOST:PORT/TOPIC, e.g. mqtt://127.0.0.1:1883/trident")
    try:
        port = int(port_text) if port_text else (8883 if scheme == "mqtts" else 1883)
    except ValueError:
        raise TridentError(f"--events {redact(uri)}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise TridentError(f"--events {redact(uri)}: port {port} is not 1..65535")
    user = password = None
    if userinfo is not None:
        u, _, p = userinfo.partition(":")
        user, password = unquote(u), (unquote(p) if p else None)
    return host, port, topic, user, password, scheme == "mqtts"


def _import_paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise TridentError("--events mqtt:// needs paho-mqtt: pip install 'trident-vision[events]' (or pip install paho-mqtt)") from None
    return mqtt


class MqttEventSink(ThreadedEventSink):
    def __init__(self, uri: str, options: MqttOptions = MqttOptions(), queue_size: int = DEFAULT_QUEUE):
        mqtt = _import_paho()
        host, port, self.topic, user, password, tls = parse_mqtt_uri(uri)
        super().__init__(f"mqtt:{redact(uri)}", queue_size)
        if options.qos not in (0, 1, 2):
            raise TridentError(f"mqtt qos must be 0, 1 or 2, got {options.qos}")
        if options.offline_buffer < 1:
            raise TridentError(f"mqtt offline_buffer must be >= 1 message, got {options.offline_buffer}")
        self.options, self.address = options, redact(uri)
        self._mqtt = mqtt
        self._lock = threading.Lock()
        self.published = 0  # handed to paho (sent or buffered)
        self.buffer_full = 0  # refused by the full offline buffer
        self.unacked_at_close = 0
        self.connects = self.disconnects = 0
        self.connected = threading.Event()
        self._closing = False  # our own disconnect at the end is not an outage
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"trident-{os.getpid()}-{uuid.uuid4().hex[:8]}", clean_session=True)
        if user is not None:
            client.username_pw_set(user, password)
        if tls:
            client.tls_set()
        client.max_queued_messages_set(options.offline_buffer)
        client.reconnect_delay_set(options.reconnect_min_s, options.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        self._host, self._port = host, port

    # paho's network thread -----------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self._warn(f"broker {self.address} refused the connection: {reason_code}")
            return
        self.connects += 1
        self.connected.set()
        log.info("%s: connected", self.name)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if self.connected.is_set() and not self._closing:
            self.disconnects += 1
            self._warn(f"broker {self.address} went away ({reason_code}); reconnecting, events are buffered")
        self.connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        with self._lock:
            self.sent += 1

    # the sink's thread -----------------------------------------------------------------------------
    def open(self) -> None:
        self.client.connect_async(self._host, self._port, keepalive=self.options.keepalive_s)
        self.client.loop_start()

    def deliver(self, event: Event) -> None:
        info = self.client.publish(f"{self.topic}/{event.stream_id}/{event.kind}", event.to_json(), qos=self.options.qos)
        if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
            self.buffer_full += 1
            self._warn(f"offline buffer full ({self.options.offline_buffer} messages); event dropped")
            return
        self.published += 1

    @property
    def pending(self) -> int:
        """Handed to paho and not acknowledged yet (in flight or buffered offline)."""
        with self._lock:
            return max(0, self.published - self.sent) if self.options.qos else 0

    def shutdown(self) -> None:
        # wait for the acknowledgements of what is buffered, until close() runs out of time
        while self.pending and not self.stop.wait(0.02):
            pass
        self.unacked_at_close = self.pending
        self._closing = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        if self.unacked_at_close:
            log.warning("%s: %d event(s) not acknowledged by the broker at close", self.name, self.unacked_at_close)

    def stats(self) -> dict[str, int]:
        base = super().stats()
        with self._lock:
            sent = self.sent
        return {
            **base,
            "sent": sent,
            "dropped": base["dropped"] + self.buffer_full + self.unacked_at_close,
            "queued": base["queued"] + (0 if self.unacked_at_close else self.pending),
            "reconnects": max(0, self.connects - 1),
        }

    def wait_connected(self, timeout: float) -> bool:
        """For tests and benchmarks: whether the first connection was made within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.connected.is_set() and time.monotonic() < deadline:
            self.connected.wait(0.05)
        return self.connected.is_set()
