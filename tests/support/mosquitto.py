"""A real MQTT broker for tests: Debian's mosquitto on a free 127.0.0.1 port, stoppable and restartable.

Persistence is on, so a subscriber's durable session (clean_session=False, QoS 1)
and the messages queued for it survive a restart, as they would in production.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"


def available() -> bool:
    return Path(MOSQUITTO).exists() or shutil.which("mosquitto") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = folder, port or free_port()
        self.conf = folder / "mosquitto.conf"
        (folder / "db").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder / 'db'}/\nautosave_interval 1\nlog_dest stderr\n"
            # run as root, mosquitto drops to user `mosquitto`, who cannot write the test's folder
            f"user {getpass.getuser()}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "Broker":
        exe = MOSQUITTO if Path(MOSQUITTO).exists() else shutil.which("mosquitto")
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=open(self.folder / "broker.log", "ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {(self.folder / 'broker.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: it saves its persistence database and exits
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def uri(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}/trident"


class Subscriber:
    """Collects every message on `topic` with its receipt time; a durable session that survives restarts."""

    def __init__(self, port: int, topic: str = "trident/#", client_id: str = "trident-test-subscriber"):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[float, str, bytes]] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("test subscriber did not subscribe within 10 s")

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((time.time(), msg.topic, msg.payload))

    def payloads(self) -> list[dict]:
        import json

        with self._lock:
            return [json.loads(p) for _, _, p in self.messages]

    def wait_for(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len({p["id"] for p in self.payloads()}) >= n:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
