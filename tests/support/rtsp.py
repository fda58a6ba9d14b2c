"""Start and stop the test RTSP server (tests/support/rtsp_server.py) on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")


def rtsp_available() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    def __init__(self, port: int | None = None, fps: int = 15, clip: Path | None = None, user: str | None = None, password: str | None = None):
        self.port = port or free_port()
        self.fps, self.clip = fps, clip
        self.user, self.password = user, password  # set: the server answers only this user (basic auth)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def start(self, timeout: float = 15.0) -> "RtspServer":
        cmd = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), "--fps", str(self.fps)]
        if self.clip:
            cmd += ["--clip", str(self.clip)]
        if self.user is not None:
            cmd += ["--user", self.user, "--password", self.password or ""]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        if "READY" not in line or time.monotonic() > deadline:
            self.kill()
            raise RuntimeError(f"RTSP server did not start: {line!r}")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def __enter__(self) -> "RtspServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
