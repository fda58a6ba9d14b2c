"""The JSON sidecar next to a TensorRT plan (model spec + build info) and the compatibility checks.

A plan is only valid for the TensorRT version and GPU model it was built
with; the sidecar records both so a foreign engine is refused with a message
instead of crashing in deserialisation. Plain Python: tested without a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

from engines.spec import ModelSpec
from pipeline.errors import TridentError


def sidecar_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: Path, spec: ModelSpec, build_info: dict) -> Path:
    path = sidecar_path(engine_path)
    path.write_text(json.dumps({"spec": json.loads(spec.to_json()), "build": build_info}, indent=2, sort_keys=True))
    return path


def read_sidecar(engine_path: Path) -> tuple[ModelSpec, dict]:
    path = sidecar_path(engine_path)
    if not path.exists():
        raise TridentError(
            f"{engine_path.name} has no sidecar {path.name} (model spec and build info); "
            "build engines with `trident build-engine` and keep the .json next to the plan"
        )
    try:
        data = json.loads(path.read_text())
        spec, build = data["spec"], data["build"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise TridentError(f"{path.name} is not a valid Trident engine sidecar; rebuild the engine with `trident build-engine`") from None
    return ModelSpec.from_json(json.dumps(spec), where=path.name), build


def check_engine_compat(build_info: dict, trt_version: str, gpu_name: str, engine_name: str) -> None:
    """Refuse an engine made by another TensorRT or for another GPU: deserialising it would fail or crash."""
    built_trt, built_gpu = build_info.get("tensorrt_version"), build_info.get("gpu_name")
    if built_trt != trt_version:
        raise TridentError(
            f"{engine_name} was built with TensorRT {built_trt} but this machine has TensorRT {trt_version}; "
            "engines are not portable across versions - rebuild it here with `trident build-engine`"
        )
    if built_gpu != gpu_name:
        raise TridentError(
            f"{engine_name} was built for GPU '{built_gpu}' but this machine has '{gpu_name}'; "
            "engines are tuned to one GPU model - rebuild it here with `trident build-engine`"
        )
