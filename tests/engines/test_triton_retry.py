"""The Triton engine's answer to "model execute error": an outage while the server says it is not ready
(shutting down, model not loaded), the model's own failure - reported - when server and model say ready.

No server needed: the requests' outcomes are the test's (engines/triton_engine.py `_send_all`)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import engines.triton_engine as te
from engines.spec import ModelSpec
from pipeline.errors import TridentError

EXECUTE_ERROR = RuntimeError("[StatusCode.INTERNAL] Failed to process the request(s) for model 'trident_0_0', message: TritonModelException: Model execute error: Traceback")


def bare_engine(retry_s: float, ready: bool) -> te.TritonEngine:
    engine = object.__new__(te.TritonEngine)  # everything infer() touches, without a connection
    engine.address = te.TritonAddress("127.0.0.1", 1, "trident", "grpc", "off", retry_s)
    engine.stats, engine._lock, engine._shm, engine.protocol = te.WireStats(), threading.Lock(), [], "grpc"
    engine.spec = ModelSpec(input_hw=(32, 32), class_names=("thing",), batch_range=(1, 1, 4))
    engine._send_all = lambda images, pending: {i: EXECUTE_ERROR for i in pending}
    engine._model_ready = lambda: ready
    engine._try_reregister = lambda: None
    return engine


def test_a_model_that_keeps_failing_on_a_ready_server_is_reported_with_the_servers_message(monkeypatch):
    monkeypatch.setattr(te, "_STOPPING_WINDOW_S", 0.3)
    engine = bare_engine(retry_s=60, ready=True)
    started = time.monotonic()
    with pytest.raises(TridentError, match="refused the request for 'trident'.*Model execute error"):
        engine.infer(np.zeros((1, 3, 32, 32), np.uint8))
    assert time.monotonic() - started < 5  # the short window, not the 60 s outage budget


def test_execute_errors_from_a_server_that_is_not_ready_are_an_outage_until_retry_s(monkeypatch):
    monkeypatch.setattr(te, "_STOPPING_WINDOW_S", 0.3)
    engine = bare_engine(retry_s=1.0, ready=False)
    started = time.monotonic()
    with pytest.raises(TridentError, match="did not answer for 1 s"):
        engine.infer(np.zeros((1, 3, 32, 32), np.uint8))
    assert time.monotonic() - started >= 1.0  # waited the whole outage budget, well past the 0.3 s window
    assert engine.stats.outages == 1


def test_the_window_counts_only_errors_in_a_row_from_a_ready_server(monkeypatch):
    """A server being stopped: an execute error while it still says ready, then a not-ready spell longer
    than the window (shutting down, restarting), then the restarted server fails once more before it
    answers. The not-ready spell ends the first run of errors, so the request is retried, not refused."""
    monkeypatch.setattr(te, "_STOPPING_WINDOW_S", 0.3)
    engine = bare_engine(retry_s=30, ready=True)
    started = time.monotonic()
    since = lambda: time.monotonic() - started  # noqa: E731
    engine._model_ready = lambda: since() < 0.05 or since() > 0.6  # ready, 0.55 s not ready, ready again
    # tries at ~0, 0.1, 0.3, 0.7 (backoff): all fail; the one at ~1.5 s is answered
    engine._send_all = lambda images, pending: {i: EXECUTE_ERROR if since() < 1.0 else "answer" for i in pending}
    engine._read = lambda outcome, i: {}
    engine._outputs = []
    monkeypatch.setattr(te, "decode", lambda batch, spec: "decoded")
    assert engine.infer(np.zeros((1, 3, 32, 32), np.uint8)) == "decoded"
    assert since() > 1.0 and engine.stats.outages == 1 and engine.stats.retries >= 4


PYTRITON_STOPPING = RuntimeError(
    "[StatusCode.INTERNAL] Failed to process the request(s) for model 'trident_0_0', message: TritonModelException: "
    "Model execute error: Traceback (most recent call last):\n"
    '  File "/tmp/folder/1/model.py", line 492, in execute\n    raise triton_responses_or_error\n'
    "c_python_backend_utils.TritonModelException: Traceback (most recent call last):\n"
    '  File "/usr/lib/python3.11/multiprocessing/connection.py", line 367, in _send\n    n = write(self._handle, buf)\n'
    "BrokenPipeError: [Errno 32] Broken pipe\n\n\nAt:\n  /tmp/folder/1/model.py(501): execute\n")


def test_a_python_traceback_from_the_server_is_reported_by_its_exception_line():
    assert te._first_line(PYTRITON_STOPPING).endswith("Traceback (most recent call last): ... BrokenPipeError: [Errno 32] Broken pipe")
    assert te._first_line(RuntimeError("[StatusCode.UNAVAILABLE] failed to connect\nmore")) == "[StatusCode.UNAVAILABLE] failed to connect"
    assert te._first_line(RuntimeError("")) == "RuntimeError"


def test_an_execute_error_whose_cause_is_a_broken_pipe_is_an_outage_even_from_a_ready_server(monkeypatch):
    monkeypatch.setattr(te, "_STOPPING_WINDOW_S", 0.05)
    engine = bare_engine(retry_s=30, ready=True)
    started = time.monotonic()
    engine._send_all = lambda images, pending: {i: PYTRITON_STOPPING if time.monotonic() - started < 0.5 else "answer" for i in pending}
    engine._read = lambda outcome, i: {}
    engine._outputs = []
    monkeypatch.setattr(te, "decode", lambda batch, spec: "decoded")
    assert engine.infer(np.zeros((1, 3, 32, 32), np.uint8)) == "decoded"
    assert engine.stats.outages == 1 and engine.stats.retries >= 2
