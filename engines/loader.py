"""`load_engine`: open a model file (or a served model's URI) with the runtime registered for it.

Runtimes register themselves through the ``trident.engines`` entry-point
group (pyproject.toml), keyed by file suffix (``onnx``, ``engine``, ``plan``,
``pt``) or URI scheme (``triton``), the same way the CLI finds its commands.
So this module imports no concrete engine, the eager torch engine can live
with the model definition in `training/`, and a deployed pipeline that opens
an ONNX file never imports training.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from engines.base import Engine
from pipeline.errors import TORCH_MODULES, TridentError, needs_torch

ENTRY_POINT_GROUP = "trident.engines"
# devices that name a runtime rather than a processor: the entry point of that name runs the model
RUNTIME_DEVICES = ("openvino",)


def registered_runtimes() -> dict[str, metadata.EntryPoint]:
    """Suffix or URI scheme (lower case, no dot) -> entry point of its loader."""
    return {ep.name.lower(): ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def runtime_key(model: str | Path) -> str:
    """'triton' for triton://host/model, 'onnx' for model.onnx, '' when there is neither."""
    text = str(model)
    if "://" in text:
        return text.split("://", 1)[0].lower()
    return Path(text).suffix.lower().lstrip(".")


def _loader_for(model: str | Path) -> Callable[..., Engine]:
    runtimes = registered_runtimes()
    key = runtime_key(model)
    if not runtimes:
        raise TridentError(
            "no inference runtimes are registered (entry points 'trident.engines'); "
            "install Trident with pip (pip install -e . in a source tree) so its metadata exists"
        )
    if key not in runtimes:
        known = ", ".join(f".{k}" for k in sorted(runtimes) if k not in RUNTIME_DEVICES)
        what = f"a {key}:// model" if "://" in str(model) else f"'{Path(str(model)).name}'"
        raise TridentError(f"don't know how to run {what}: expected a file ending in {known}, or a URI of a registered runtime")
    try:
        return runtimes[key].load()
    except ImportError as exc:
        _missing_torch(exc, key)
        raise TridentError(f"the runtime for .{key} files cannot be imported ({exc}); reinstall trident-vision") from None


def _missing_torch(exc: ImportError, key: str) -> None:
    """PyTorch is an extra (the core runs ONNX and OpenVINO models): name the one to install."""
    if getattr(exc, "name", None) in TORCH_MODULES:
        raise TridentError(needs_torch(f".{key} models need")) from None


def load_engine(model: str | Path, device: str = "auto", **options: Any) -> Engine:
    """Open `model` (.onnx -> ONNX Runtime, .engine/.plan -> TensorRT, .pt -> eager torch, ...).

    A missing file, an unknown suffix and a runtime whose package is not
    installed are each one TridentError naming the file and the fix.
    """
    if "://" not in str(model):
        path = Path(model)
        if not path.exists():
            known = ", ".join(f".{k}" for k in sorted(registered_runtimes()) if k not in ("triton",) + RUNTIME_DEVICES)
            raise TridentError(f"model file {path} does not exist; pass a {known} file")
        if device in RUNTIME_DEVICES:  # `--device openvino`: that runtime, for any file it reads
            runtimes = registered_runtimes()
            if device not in runtimes:
                raise TridentError(f"--device {device} needs the {device} runtime, which is not registered; reinstall trident-vision")
            return runtimes[device].load()(model, device=device, **options)
    loader = _loader_for(model)
    try:
        return loader(model, device=device, **options)
    except ModuleNotFoundError as exc:
        _missing_torch(exc, runtime_key(model))
        raise
