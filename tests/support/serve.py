"""Run `trident serve`'s service and API in-process on a free loopback port, and talk to it over real HTTP.

The service is the real one (CameraService + FastAPI app + uvicorn on a real
socket); only the engine is the test's choice (tests/pipeline/fakes.FakeEngine
keeps the frame path fast).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

from pipeline.config import build_run_config


class Served:
    def __init__(self, engine: Any, token: str = "", config: dict | None = None, **options: Any):
        import uvicorn

        from pipeline.serve.app import LOOPBACK_HOSTS, create_app
        from pipeline.serve.command import bind
        from pipeline.serve.service import CameraService, ServeOptions

        self.token = token
        self.service = CameraService(build_run_config(config or {}), engine, ServeOptions(**options)).start()
        app = create_app(self.service, token, None if token else LOOPBACK_HOSTS)
        self._sock = bind("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start within 20 s")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.service.begin_close()
        self.server.should_exit = True
        self._thread.join(15)
        self.service.close()
        self._sock.close()

    # --- requests ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None, auth: bool = True, raw: bytes | None = None):
        """(status, headers, body bytes); JSON bodies are sent as JSON."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        if self.token and auth:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        conn.close()
        return out

    def json(self, method: str, path: str, body: Any = None, **kw: Any):
        status, _, data = self.request(method, path, body, **kw)
        return status, json.loads(data) if data else None

    def wait_for(self, name: str, predicate, timeout: float = 30.0) -> dict:
        """Poll GET /streams/{name} until `predicate(entry)`; the last entry either way."""
        deadline = time.monotonic() + timeout
        while True:
            _, entry = self.json("GET", f"/streams/{name}")
            if predicate(entry) or time.monotonic() > deadline:
                return entry
            time.sleep(0.1)


def mjpeg_parts(port: int, path: str, count: int, token: str = "", timeout: float = 30.0) -> tuple[str, list[tuple[dict, bytes]], float]:
    """Read `count` parts of a multipart MJPEG response: (content type, [(part headers, jpeg)], seconds taken)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    resp = conn.getresponse()
    ctype = resp.getheader("Content-Type", "")
    if resp.status != 200:
        raise AssertionError(f"GET {path}: {resp.status} {resp.read()[:200]!r}")
    boundary = ctype.split("boundary=")[1].encode()
    parts, started = [], time.monotonic()
    try:
        while len(parts) < count:
            line = resp.readline()
            if not line:
                break  # the server ended the response
            if line.strip() != b"--" + boundary:
                continue
            headers = {}
            while (line := resp.readline().strip()):
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            if "content-length" not in headers:
                break  # the boundary after the last part, then the end of the response
            parts.append((headers, resp.read(int(headers["content-length"]))))
    finally:
        conn.close()
    return ctype, parts, time.monotonic() - started
