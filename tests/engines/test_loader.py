"""`load_engine` finds runtimes through the `trident.engines` entry points, by suffix or URI scheme."""

from __future__ import annotations

import pytest

from engines import loader
from engines.loader import load_engine, registered_runtimes, runtime_key
from pipeline.errors import TridentError


def test_every_artifact_suffix_has_a_registered_runtime():
    runtimes = registered_runtimes()
    assert {k: runtimes[k].value for k in ("onnx", "engine", "plan", "pt", "pth")} == {
        "onnx": "engines.onnxruntime_engine:load",
        "engine": "engines.tensorrt_engine:load",
        "plan": "engines.tensorrt_engine:load",
        "pt": "training.torch_engine:load",  # the eager engine needs the model definition: training registers it
        "pth": "training.torch_engine:load",
    }


def test_runtime_key_is_the_suffix_or_the_uri_scheme():
    assert runtime_key("runs/Model.ONNX") == "onnx"
    assert runtime_key("triton://127.0.0.1:8001/trident") == "triton"
    assert runtime_key("model") == ""


class _EntryPoint:
    def __init__(self, fn):
        self.fn, self.value = fn, "tests:fake"

    def load(self):
        return self.fn


def test_a_registered_runtime_is_called_with_the_path_device_and_options(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(loader, "registered_runtimes", lambda: {"fake": _EntryPoint(lambda path, **kw: calls.append((path, kw)) or "engine")})
    (tmp_path / "m.fake").write_bytes(b"x")
    assert load_engine(tmp_path / "m.fake", device="cpu", threads=2) == "engine"
    assert calls == [(tmp_path / "m.fake", {"device": "cpu", "threads": 2})]
    # a URI is not a file: it is handed over as is, without an existence check
    monkeypatch.setattr(loader, "registered_runtimes", lambda: {"fake": _EntryPoint(lambda path, **kw: path)})
    assert load_engine("fake://host:1/model") == "fake://host:1/model"


def test_an_unregistered_scheme_or_suffix_names_what_is_known(tmp_path):
    with pytest.raises(TridentError, match="don't know how to run a grpc:// model: expected a file ending in .*\\.onnx"):
        load_engine("grpc://host/model")
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(TridentError, match="don't know how to run 'm.tflite'"):
        load_engine(tmp_path / "m.tflite")


def test_options_a_runtime_does_not_take_are_refused_by_name(tmp_path):
    from tests.engines.helpers import export_tiny_model

    with pytest.raises(TridentError, match="ONNX Runtime does not take option\\(s\\) \\['half'\\]"):
        load_engine(export_tiny_model(tmp_path), device="cpu", half=True)
