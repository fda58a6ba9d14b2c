"""TensorRT 10 engine: named-tensor API on a CUDA stream, torch CUDA tensors as buffers (no pycuda)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engines.base import check_images, require_module
from engines.postprocess import RawOutputs
from engines.spec import INPUT_NAME, check_outputs_match
from engines.tensorrt_sidecar import check_engine_compat, read_sidecar
from pipeline.errors import TridentError


def _torch_dtype(trt_dtype: Any):
    import tensorrt as trt
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8, trt.uint8: torch.uint8, trt.bool: torch.bool}
    if trt_dtype not in table:
        raise TridentError(f"engine tensor type {trt_dtype} is not supported; rebuild the engine from a Trident ONNX file")
    return table[trt_dtype]


class TensorRTEngine:
    def __init__(self, path: str | Path, device_index: int = 0):
        import tensorrt as trt
        import torch

        self.path = Path(path)
        self.spec, build_info = read_sidecar(self.path)
        if not torch.cuda.is_available():
            raise TridentError(f"{self.path.name} is a TensorRT engine and needs a CUDA GPU; none is visible. Use the .onnx file on CPU")
        self.device = torch.device("cuda", device_index)
        check_engine_compat(build_info, trt.__version__, torch.cuda.get_device_name(self.device), self.path.name)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise TridentError(f"TensorRT could not deserialise {self.path.name}: the file is truncated or corrupt - rebuild it with `trident build-engine`")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(device=self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.output_names = [n for n in self.spec.output_names if n in names]
        missing = set(self.spec.output_names) - set(names)
        if missing or INPUT_NAME not in names:
            raise TridentError(f"{self.path.name} lacks tensors {sorted(missing | ({INPUT_NAME} - set(names)))} named in its sidecar; rebuild it")
        check_outputs_match(self.spec, {n: tuple(self.engine.get_tensor_shape(n)) for n in names if n != INPUT_NAME}, self.path.name)
        self._out_dtypes = {n: _torch_dtype(self.engine.get_tensor_dtype(n)) for n in self.output_names}

    def infer(self, images: Any) -> RawOutputs:
        import torch

        check_images(images, self.spec, self.path.name)
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        images = images.to(self.device, non_blocking=True).contiguous()
        self.context.set_input_shape(INPUT_NAME, tuple(images.shape))
        self.context.set_tensor_address(INPUT_NAME, images.data_ptr())
        outputs = []
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            buf = torch.empty(shape, dtype=self._out_dtypes[name], device=self.device)
            self.context.set_tensor_address(name, buf.data_ptr())
            outputs.append(buf)
        # the stream must see the input copy made on the current stream before TensorRT reads it
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise TridentError(f"TensorRT execution failed for {self.path.name}; see the TensorRT log above")
        self.stream.synchronize()
        return RawOutputs.from_sequence(self.output_names, [o.float() for o in outputs])

    def close(self) -> None:
        self.context = None
        self.engine = None


def load(path: str | Path, device: str = "auto", device_index: int = 0, **options: Any) -> TensorRTEngine:
    """Loader registered for .engine/.plan files (entry point group trident.engines)."""
    require_module("tensorrt", "pip install 'trident-vision[tensorrt]' on x86_64, or use JetPack's TensorRT on Jetson", Path(path).name)
    if device not in ("auto", "cuda", "tensorrt") and not device.startswith("cuda:"):
        raise TridentError(f"{Path(path).name} is a TensorRT engine and runs on a CUDA GPU; --device {device} cannot run it (use the .onnx file)")
    if device.startswith("cuda:"):
        device_index = int(device.split(":", 1)[1])
    if options:
        raise TridentError(f"the TensorRT engine does not take option(s) {sorted(options)}")
    return TensorRTEngine(path, device_index=device_index)
