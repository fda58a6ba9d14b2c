"""Start, watch and stop the `tritonserver` of `trident serve-model` (PyTriton, in an interpreter of its own).

The server runs `engines/triton_server/serve.py` by path in a venv that holds
only nvidia-pytriton, onnxruntime and numpy (no torch, no Trident). That venv
must be made from an interpreter whose standard library matches the one
embedded in PyTriton's Python-backend stub: Debian's /usr/bin/python3 (3.11.2)
works; other 3.11 builds can fail at model load with
`'_thread.RLock' object has no attribute '_recursion_count'`.
`make_server_venv` builds it; `find_server_python` picks it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pipeline.errors import TridentError

SERVER_SCRIPT = Path(__file__).parent / "triton_server" / "serve.py"
SERVER_PACKAGES = ("nvidia-pytriton==0.7.0", "onnxruntime>=1.18", "numpy>=1.24")
BASE_PYTHON = "/usr/bin/python3"
STUB_MISMATCH = "_recursion_count"  # the stub/stdlib disagreement named in the module docstring


def default_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "trident" / "triton-server"


def can_serve(python: str | Path) -> bool:
    """True when `python` imports what the server script needs."""
    try:
        return subprocess.run([str(python), "-c", "import pytriton, onnxruntime, numpy, tritonclient.grpc"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def make_server_venv(folder: str | Path | None = None, base_python: str = BASE_PYTHON) -> Path:
    """Create (or reuse) the server venv; returns its python. Takes ~35 s on this machine with a warm pip cache."""
    folder = Path(folder) if folder else default_venv()
    python = folder / "bin" / "python"
    if python.exists() and can_serve(python):
        return python
    if not Path(base_python).exists():
        raise TridentError(f"{base_python} does not exist; pass --base-python with a Python 3.10-3.12 whose PyTriton stub loads (Debian's /usr/bin/python3 does)")
    steps = ([base_python, "-m", "venv", "--clear", str(folder)], [str(python), "-m", "pip", "install", "-q", *SERVER_PACKAGES])
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise TridentError(f"making the server venv failed at `{' '.join(cmd[:4])} ...`: {tail[0][:300]}")
    return python


def find_server_python(explicit: str | None) -> Path:
    """--python, else the default venv (`trident serve-model --make-venv`), else this interpreter if it can serve."""
    if explicit:
        if not can_serve(explicit):
            raise TridentError(f"--python {explicit} cannot import pytriton/onnxruntime/numpy; make a venv with `trident serve-model --make-venv DIR`")
        return Path(explicit)
    venv_python = default_venv() / "bin" / "python"
    if venv_python.exists() and can_serve(venv_python):
        return venv_python
    if can_serve(sys.executable):
        return Path(sys.executable)
    raise TridentError(
        "serve-model needs an interpreter with nvidia-pytriton, onnxruntime and numpy; run `trident serve-model --make-venv` "
        f"once (builds {default_venv()} from {BASE_PYTHON}) or pass --python PATH"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """One `serve.py` (PyTriton + tritonserver) serving `repo/name`; start() returns once the model is ready."""

    def __init__(self, repo: str | Path, name: str, python: str | Path, grpc_port: int, http_port: int = 0, metrics_port: int = 0,
                 host: str = "127.0.0.1", threads: int = 0, log_path: str | Path | None = None):
        self.repo, self.name, self.python, self.host = Path(repo), name, Path(python), host
        self.grpc_port = grpc_port
        self.http_port = http_port or free_port(host)
        self.metrics_port = metrics_port or free_port(host)
        self.threads = threads
        self.log_path = Path(log_path) if log_path else self.repo / f"{name}.server.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        # -P: the script's folder is not put on sys.path, so nothing next to it can shadow a package
        return [str(self.python), "-P", str(SERVER_SCRIPT), "--repo", str(self.repo), "--name", self.name, "--host", self.host,
                "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port), "--metrics-port", str(self.metrics_port),
                "--threads", str(self.threads), "--parent-pid", str(os.getpid())]

    def start(self, timeout_s: float = 180.0) -> "ServerProcess":
        import tritonclient.grpc as grpcclient

        log = open(self.log_path, "ab")
        # its own session: stop() signals the group, so PyTriton's tritonserver child never outlives it
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        client = grpcclient.InferenceServerClient(f"{self.host}:{self.grpc_port}")
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise TridentError(self._failure(f"exited with code {self.process.returncode} before the model was ready"))
                try:
                    if client.is_model_ready(self.name, client_timeout=2.0):
                        return self
                except Exception:
                    pass  # not listening yet
                time.sleep(0.5)
        finally:
            client.close()
        self.stop()
        raise TridentError(self._failure(f"did not get '{self.name}' ready within {timeout_s:.0f} s"))

    def _failure(self, what: str) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if STUB_MISMATCH in text:
            return (f"the Triton server {what}: PyTriton's Python-backend stub does not match {self.python} ({STUB_MISMATCH}); "
                    f"make the server venv from Debian's {BASE_PYTHON}: `trident serve-model --make-venv`, then pass --python")
        lines = [ln for ln in text.strip().splitlines() if ln.strip()][-3:]
        return f"the Triton server {what}; last log lines ({self.log_path}): " + " | ".join(ln[:200] for ln in lines)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # our own session (start_new_session), nothing else is in it
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "ServerProcess":
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
