"""OpenVINO engine: the runtime of Intel-CPU video boxes, behind the same Engine protocol.

It reads the same ONNX files as ONNX Runtime (FP32, and the QDQ INT8 export,
which OpenVINO runs as INT8 kernels) or an OpenVINO IR (`.xml` + `.bin`)
made from one with `save_ir`; the model spec travels in the IR's runtime
info as it does in the ONNX metadata. Raw outputs go to the one shared
post-process like every engine's.

Precision is pinned to f32 (`INFERENCE_PRECISION_HINT`): on CPUs with
bf16 units OpenVINO would otherwise run an FP32 model in bf16 and give other
detections than ONNX Runtime on the same frames. INT8 QDQ models still run
their quantised layers in int8. Threads and streams: `concurrent` batches
may be in flight at once (OpenVINO's NUM_STREAMS: that many infer requests
per compiled shape, each on its own stream of `threads` threads), as
ONNX Runtime's engine takes them; `trident run` gives 2 on 2+ cores, one
thread each (pipeline/engine_choice.py). Measured on a 2-core AMX Xeon,
INT8 at 384x512, the engine alone: 2 streams, 2 callers 93-97 images/s
against 68 for one request on both cores (LATENCY hint); FP32 50 vs 44.
`concurrent` 1 is the LATENCY hint on `threads` (0/None = all usable cores).

    pip install 'trident-vision[openvino]'
    trident run --source clip.mp4 --model model.onnx --device openvino
    trident run --source clip.mp4 --model model.xml           # an IR picks OpenVINO by its suffix
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import as_numpy, check_images, require_module
from engines.postprocess import RawOutputs
from engines.spec import INPUT_NAME, OUTPUT_NAMES, SPEC_METADATA_KEY, check_outputs_match, read_onnx_spec, spec_from_metadata
from pipeline.errors import TridentError

log = logging.getLogger("trident.engines")
INSTALL = "pip install 'trident-vision[openvino]' (or pip install openvino)"
RT_INFO_KEY = "trident_spec"  # IR runtime-info key holding the ModelSpec JSON (ONNX: metadata 'trident.spec')
# compiled shapes kept per engine (batch sizes x the input sizes of the camera aspects in use): as many
# as the 1..8 batch sizes alone used to take. Measured on the n model: ~35 MB and 0.3-0.7 s per shape.
MAX_COMPILED = 8


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _name(port: Any) -> str:
    """The contract name of an output: a tensor may carry several names, the graph's and ours."""
    names = port.get_names()
    return next((n for n in OUTPUT_NAMES if n in names), port.get_any_name())


def _read(core: Any, path: Path) -> tuple[Any, Any]:
    """(ov.Model, ModelSpec) of an .onnx or .xml file, each failure one readable message."""
    suffix = path.suffix.lower()
    if suffix == ".xml" and not path.with_suffix(".bin").exists():
        raise TridentError(f"{path.name} is an OpenVINO IR without its weights file {path.with_suffix('.bin').name}; keep the .bin next to the .xml")
    try:
        model = core.read_model(str(path))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long C++ traces
        raise TridentError(f"{path.name} is not a model OpenVINO can read ({_first_line(exc)}); the file may be truncated or corrupt") from None
    if suffix == ".onnx":
        spec = read_onnx_spec(path)
    else:
        if not model.has_rt_info([RT_INFO_KEY]):
            raise TridentError(f"{path.name} carries no Trident model spec; make the IR from a Trident ONNX with engines.openvino_engine.save_ir")
        spec = spec_from_metadata(path, {SPEC_METADATA_KEY: str(model.get_rt_info([RT_INFO_KEY]).astype(str))})
    return model, spec


class OpenVinoEngine:
    def __init__(self, path: str | Path, device: str = "CPU", threads: int | None = None, concurrent: int = 1):
        """`threads`: threads of each batch in flight (0/None: all usable cores); `concurrent`: batches the
        caller may run at once from its own threads (one stream and one infer request each)."""
        import openvino as ov

        if concurrent < 1:
            raise TridentError(f"engine.concurrent must be >= 1 batch in flight, got {concurrent}")
        self.path = Path(path)
        self.ov_device = device
        self.concurrent_calls = concurrent
        core = ov.Core()
        model, self.spec = _read(core, self.path)
        if len(model.inputs) != 1 or INPUT_NAME not in model.inputs[0].get_names():
            raise TridentError(f"{self.path.name} must have one input named '{INPUT_NAME}'; re-export it with `trident export`")
        # no pinning: on a box shared with decoders, encoders and other processes a thread pinned to a
        # busy core waits for it (measured: pinned 80 ms vs 56 ms unpinned a frame under load)
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False}
        if concurrent > 1:
            self._config.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=concurrent)
        else:
            self._config["PERFORMANCE_HINT"] = "LATENCY"
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads) * concurrent
        self._core, self._model = core, model
        # (batch, height, width) -> `concurrent` infer requests of a model compiled for that static shape
        # (a queue: each caller takes a free one), least recently used first
        self._requests: OrderedDict[tuple[int, int, int], queue.Queue] = OrderedDict()
        self._compile_lock = threading.Lock()
        self._compiling: dict[tuple[int, int, int], threading.Thread] = {}  # shapes compiling in the background
        self.output_names = [_name(o) for o in model.outputs]
        # one warm-up on a blank batch, as ONNX Runtime's: first-run allocations here, and a spec that
        # belongs to another model is refused now by the real output shapes
        blank = np.zeros((self.spec.batch_range[0], 3, *self.spec.input_hw), np.uint8)
        outputs = self._run(blank)
        check_outputs_match(self.spec, {n: o.shape for n, o in zip(self.output_names, outputs)}, self.path.name)

    device = "cpu"  # where the outputs are: host memory, for the post-process and the letterbox

    def _pool(self, shape: tuple[int, int, int]) -> queue.Queue | None:
        """The requests compiled for this (batch, height, width) (OpenVINO's CPU kernels are faster on static
        shapes than on the graph's dynamic axes: a dynamic batch axis ran batch 1 29 % slower); compiled on
        first use. The first batch of a size compiles here, on the caller; a larger batch of a size whose
        single-image shape is ready compiles in the background (INT8 ~1.2 s on a 2-core Xeon: a live
        stream must not stall for it) and None says: run this one as single images meanwhile. Height/width
        vary only for a dynamic_hw model (rect inference: one size per camera aspect), so a few shapes are
        kept and the least recently used one is dropped past MAX_COMPILED (a caller still holding one of
        its requests finishes with it)."""
        with self._compile_lock:
            pool = self._requests.get(shape)
            if pool is not None:
                self._requests.move_to_end(shape)
                return pool
            batch, h, w = shape
            if batch > 1 and (1, h, w) in self._requests:
                if shape not in self._compiling:
                    worker = threading.Thread(target=self._compile_later, args=(shape,), name="trd:infer-compile")
                    self._compiling[shape] = worker
                    worker.start()
                return None
            return self._keep(shape, self._compile(shape))

    def _compile(self, shape: tuple[int, int, int]) -> queue.Queue:
        batch, h, w = shape
        model = self._model.clone()
        model.reshape({INPUT_NAME: [batch, 3, h, w]})
        try:
            compiled = self._core.compile_model(model, self.ov_device, self._config)
        except Exception as exc:
            raise TridentError(f"OpenVINO cannot compile {self.path.name} for {self.ov_device} ({_first_line(exc)})") from None
        pool: queue.Queue = queue.Queue()
        for _ in range(self.concurrent_calls):
            pool.put(compiled.create_infer_request())
        return pool

    def _keep(self, shape: tuple[int, int, int], pool: queue.Queue) -> queue.Queue:
        """Under the lock: `pool` becomes the shape's, the least recently used shapes past MAX_COMPILED go."""
        self._requests[shape] = pool
        while len(self._requests) > MAX_COMPILED:
            self._requests.popitem(last=False)
        return pool

    def _compile_later(self, shape: tuple[int, int, int]) -> None:
        try:
            pool = self._compile(shape)
        except TridentError as exc:  # batches of this size keep running as single images
            log.warning("%s; batches of %d run one image at a time", exc, shape[0])
            return
        with self._compile_lock:
            self._keep(shape, pool)
            del self._compiling[shape]

    def _run(self, feed: np.ndarray) -> list[np.ndarray]:
        pool = self._pool((int(feed.shape[0]), int(feed.shape[2]), int(feed.shape[3])))
        if pool is None:  # this batch size is compiling in the background
            parts = [self._run(feed[i : i + 1]) for i in range(feed.shape[0])]
            return [np.concatenate(outputs) for outputs in zip(*parts)]
        request = pool.get()  # waits only when more callers than `concurrent` share the engine
        try:
            request.infer({INPUT_NAME: feed})
            # copies: the request's output buffers are reused by the next call, the post-process may still hold them
            return [np.array(request.get_output_tensor(i).data) for i in range(len(self.output_names))]
        finally:
            pool.put(request)

    def infer(self, images: Any) -> RawOutputs:
        check_images(images, self.spec, self.path.name)
        feed = np.ascontiguousarray(as_numpy(images))
        return RawOutputs.from_sequence(self.output_names, self._run(feed))

    def close(self) -> None:
        # a compile still running in the background finishes first: OpenVINO aborts the process
        # ("terminate called without an active exception") if its objects go while one runs
        with self._compile_lock:
            workers = list(self._compiling.values())
        for worker in workers:
            worker.join()
        self._requests.clear()
        self._model = None

    def __enter__(self) -> "OpenVinoEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def save_ir(onnx_path: str | Path, xml_path: str | Path) -> Path:
    """Convert a Trident ONNX (FP32 or QDQ INT8) into an OpenVINO IR that carries its spec."""
    require_module("openvino", INSTALL, Path(onnx_path).name)
    import openvino as ov

    spec = read_onnx_spec(onnx_path)
    model = ov.Core().read_model(str(onnx_path))
    model.set_rt_info(spec.to_json(), [RT_INFO_KEY])
    xml_path = Path(xml_path)
    ov.save_model(model, str(xml_path), compress_to_fp16=False)  # FP16 weights would change the outputs
    return xml_path


def load(path: str | Path, device: str = "auto", threads: int | None = None, concurrent: int = 1, **options: Any) -> OpenVinoEngine:
    """Loader for .xml IR files and for `--device openvino` (entry point group trident.engines)."""
    require_module("openvino", INSTALL, Path(path).name)
    if options:
        raise TridentError(f"OpenVINO does not take option(s) {sorted(options)}; it takes device, threads and concurrent")
    ov_device = {"auto": "CPU", "cpu": "CPU", "openvino": "CPU"}.get(device, device.upper() if device in ("gpu", "npu") else None)
    if ov_device is None:
        raise TridentError(f"unknown device '{device}' for OpenVINO; use auto, cpu (or openvino), gpu or npu")
    return OpenVinoEngine(path, device=ov_device, threads=threads, concurrent=concurrent)
