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
