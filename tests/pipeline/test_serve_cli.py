"""`trident serve` as a process: refusals are one line before anything starts (another address without a
token, a taken port, an empty token), and SIGTERM/SIGINT stop it with every camera's outputs closed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="trident serve needs the `serve` extra (FastAPI, uvicorn)")

from pipeline.commands import bundled_onnx  # noqa: E402
from pipeline.serve.command import check_binding, is_loopback  # noqa: E402
from pipeline.errors import TridentError  # noqa: E402
from tests.support.rtsp import RtspServer, rtsp_available  # noqa: E402

TRIDENT = str(Path(sys.executable).with_name("trident"))


def _trident(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([TRIDENT, "serve", *args], capture_output=True, text=True, timeout=timeout)


def test_any_address_but_loopback_needs_a_token():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        check_binding(host, "")
    for host in ("0.0.0.0", "::", "192.168.1.10", "camera-host.lan"):
        assert not is_loopback(host)
        with pytest.raises(TridentError, match="pass --token"):
            check_binding(host, "")
        check_binding(host, "a-token")


def test_bad_start_options_are_one_line_and_exit_2(tmp_path):
    empty = tmp_path / "token.txt"
    empty.write_text("\n")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        cases = [
            (["--model", "m.onnx", "--host", "0.0.0.0"], "--host 0.0.0.0 would let anyone"),
            (["--model", "m.onnx", "--token", " "], "--token is empty"),
            (["--model", "m.onnx", "--token-file", str(empty)], "is empty; write the token"),
            (["--model", "m.onnx", "--token-file", str(tmp_path / "missing")], "give a readable file"),
            (["--host", "127.0.0.1"], "no model given"),
            (["--model", str(bundled_onnx()), "--port", str(taken.getsockname()[1])], "cannot listen on 127.0.0.1"),
            (["--model", str(bundled_onnx()), "--preview-fps", "0", "--port", "0"], "preview rate must be > 0"),
        ]
        for args, message in cases:
            done = _trident(*args)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1 and message in lines[0], (args, done.stderr)
    finally:
        taken.close()


def _start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([TRIDENT, "serve", "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("trident serve: http://"):
        proc.kill()
        raise AssertionError(f"no start line: {line!r} {proc.stderr.read()[-2000:]}")
    return proc, line.split()[2].rstrip("/")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.rtsp
@pytest.mark.skipif(not rtsp_available(), reason="GStreamer RTSP server not installed (see .ci/run for the Debian packages)")
def test_sigterm_stops_the_service_with_every_cameras_outputs_flushed_and_closed(tmp_path):
    import av

    with RtspServer() as camera:  # a live pattern that never ends (a looped clip restarts at every loop)
        config = tmp_path / "cameras.yaml"
        config.write_text(f"sources:\n  - {{uri: '{camera.url}', stream_id: gate}}\n")
        proc, url = _start("--model", str(bundled_onnx()), "--config", str(config), "--out", str(tmp_path / "out"))
        try:
            deadline = time.monotonic() + 60
            while (gate := _get(f"{url}/streams/gate"))["frames"] < 10 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert gate["state"] == "streaming" and gate["frames"] >= 10, gate
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped: every camera's outputs were flushed and closed" in out
    (folder,) = (tmp_path / "out" / "gate").iterdir()  # one folder per time the camera was added
    lines = sum(1 for _ in open(folder / "gate.jsonl"))
    with av.open(str(folder / "gate.mp4")) as video:
        decoded = sum(1 for _ in video.decode(video=0))
    assert lines >= 10 and decoded == lines  # the MP4 was finished: every processed frame is in it
    assert sum(1 for _ in open(folder / "gate.mot.txt")) > 0


def test_sigint_stops_a_service_with_no_camera_and_exits_0():
    proc, url = _start("--model", str(bundled_onnx()))
    try:
        assert _get(f"{url}/streams") == {"streams": []}
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "stopped" in out
    assert os.path.exists(TRIDENT)
