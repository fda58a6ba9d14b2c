"""The Engine protocol and `load_engine`, which picks the runtime from the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from engines.postprocess import RawOutputs
from engines.spec import ModelSpec
from pipeline.errors import TridentError

TORCH_SUFFIXES = (".pt", ".pth")
ONNX_SUFFIXES = (".onnx",)
TENSORRT_SUFFIXES = (".engine", ".plan")


@runtime_checkable
class Engine(Protocol):
    """Runs the exported network: uint8 [B,3,H,W] BGR images in, the raw export outputs out.

    Post-processing is not an engine's job: every engine hands its RawOutputs
    to engines.postprocess.postprocess, so all runtimes share one NMS, one mask
    assembly and one letterbox undo.
    """

    spec: ModelSpec

    def infer(self, images: Any) -> RawOutputs: ...

    def close(self) -> None: ...


def check_images(images: Any, spec: ModelSpec, where: str) -> None:
    """Shape, dtype and batch checks shared by all engines, with one clear message each."""
    shape = tuple(images.shape)
    dtype = str(images.dtype).replace("torch.", "")
    if len(shape) != 4 or shape[1] != 3:
        raise TridentError(f"{where}: images must be [B,3,H,W], got {list(shape)}")
    if dtype != "uint8":
        raise TridentError(f"{where}: images must be uint8 (normalisation is inside the model), got {dtype}")
    if tuple(shape[2:]) != tuple(spec.input_hw):
        raise TridentError(
            f"{where}: images are {shape[2]}x{shape[3]} but the engine was built for "
            f"{spec.input_hw[0]}x{spec.input_hw[1]}; letterbox frames to the engine input (pipeline.preprocess) "
            "or re-export with --imgsz"
        )
    spec.check_batch(shape[0])


def _require(module: str, install: str, what: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise TridentError(f"{what} needs the '{module}' package, which is not installed; {install}")


def load_engine(path: str | Path, device: str = "auto", **options: Any) -> Engine:
    """Open a model file with the runtime its suffix calls for.

    .pt/.pth -> TorchEngine (eager reference, needs the training package),
    .onnx -> OnnxRuntimeEngine (the embedded default), .engine/.plan -> TensorRTEngine.
    """
    path = Path(path)
    if not path.exists():
        raise TridentError(f"model file {path} does not exist; pass a .onnx, .engine/.plan or .pt file")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        _require("onnxruntime", "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)", f"{path.name}")
        from engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, device=device, **options)
    if suffix in TENSORRT_SUFFIXES:
        _require("tensorrt", "pip install 'trident-vision[tensorrt]' on x86_64, or use JetPack's TensorRT on Jetson", f"{path.name}")
        from engines.tensorrt_engine import TensorRTEngine

        return TensorRTEngine(path, **options)
    if suffix in TORCH_SUFFIXES:
        _require("torch", "pip install torch torchvision", f"{path.name}")
        from engines.torch_engine import TorchEngine

        return TorchEngine(path, device=device, **options)
    raise TridentError(
        f"don't know how to run '{path.name}': expected a file ending in "
        f"{', '.join(ONNX_SUFFIXES + TENSORRT_SUFFIXES + TORCH_SUFFIXES)}"
    )


def as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    return x.detach().cpu().numpy()
