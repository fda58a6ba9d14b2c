"""The Engine protocol and the input checks every runtime shares.

This module imports no concrete engine: runtimes register through the
``trident.engines`` entry points and `engines.loader.load_engine` finds them.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipeline.errors import TridentError

if TYPE_CHECKING:
    from engines.postprocess import RawOutputs
    from engines.spec import ModelSpec


@runtime_checkable
class Engine(Protocol):
    """Runs the exported network: uint8 [B,3,H,W] BGR images in, the raw export outputs out.

    Post-processing is not an engine's job: every engine hands its RawOutputs
    to engines.postprocess.postprocess, so all runtimes share one NMS, one mask
    assembly and one letterbox undo. Outputs may be numpy arrays or torch
    tensors on any device; the post-process works where they are.
    """

    spec: "ModelSpec"
    # How many `infer` calls may run at once from different threads (optional attribute, 1 when
    # absent): the pipeline keeps that many batches in the engine (pipeline/inference_stage.py).
    # ONNX Runtime sessions take concurrent runs; OpenVINO's requests, TensorRT's context and
    # Triton's shared-memory slots are one caller's at a time.

    def infer(self, images: Any) -> "RawOutputs": ...

    def close(self) -> None: ...


def check_images(images: Any, spec: "ModelSpec", where: str) -> None:
    """Shape, dtype and batch checks shared by all engines, with one clear message each."""
    shape = tuple(images.shape)
    dtype = str(images.dtype).replace("torch.", "")
    if len(shape) != 4 or shape[1] != 3:
        raise TridentError(f"{where}: images must be [B,3,H,W], got {list(shape)}")
    if dtype != "uint8":
        raise TridentError(f"{where}: images must be uint8 (normalisation is inside the model), got {dtype}")
    if not spec.accepts_hw(shape[2:]):
        built = f"{spec.input_hw[0]}x{spec.input_hw[1]}"
        if spec.dynamic_hw:
            built = f"multiples of 32 up to {built}"
        raise TridentError(
            f"{where}: images are {shape[2]}x{shape[3]} but the engine was built for {built}; "
            "letterbox frames to the engine input (engines.preprocess.batch_input_hw + letterbox_batch) "
            "or re-export with --imgsz"
        )
    spec.check_batch(shape[0])


def require_module(module: str, install: str, what: str) -> None:
    """One clear message when a runtime's package is missing, before anything imports it."""
    if importlib.util.find_spec(module) is None:
        raise TridentError(f"{what} needs the '{module}' package, which is not installed; {install}")


def as_numpy(x: Any) -> Any:
    """numpy array of a numpy array or a torch tensor on any device."""
    import numpy as np

    if isinstance(x, np.ndarray):
        return x
    return x.detach().cpu().numpy()
