"""Which runtime, how many threads and how many batches at once `trident run` gives the engine.

On a CPU the engine shares the cores with the stream's decoder, drawing and
encoder threads and the post-process. Measured on the 2-core AMD EPYC:

- one ONNX Runtime run on two intra-op threads spent 44-54 ms of CPU a frame
  against 30-38 ms on one thread: the hand-offs between the two threads at
  every operator cost a third more CPU, which the other stages then lack;
- two runs at once, each on one thread (two batches in flight, each computing
  on its caller's thread), gave 15-17 ms an image against 19-24 ms for one run
  on two threads (384x512, the engine alone, batch 1 and 4), and end to end
  on vtest.avi ... (README, "End to end").

So unless `engine.threads` / `engine.concurrent` say otherwise, an ONNX Runtime
or OpenVINO CPU engine runs `concurrent` = 2 batches at once on a machine with
2+ cores, each on cores // 2 threads (OpenVINO: one stream and one infer
request per batch); other runtimes run one batch on every usable core
(TensorRT's context takes one caller at a time). Set them lower on a machine
that has other work to do.
"""

from __future__ import annotations

import importlib.util
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from engines.onnxruntime_engine import default_threads
from pipeline.errors import TridentError

log = logging.getLogger("trident.run")


def pipeline_threads(cores: int | None = None, concurrent: int = 1) -> int:
    """Intra-op threads of each of `concurrent` batches in flight: the usable cores shared out."""
    cores = default_threads() if cores is None else cores
    return max(1, cores // max(1, concurrent))


def auto_concurrent(cores: int | None = None) -> int:
    """Batches an ONNX Runtime CPU engine runs at once when `engine.concurrent` is 0 (module docstring)."""
    cores = default_threads() if cores is None else cores
    return 2 if cores >= 2 else 1


def engine_options(model: str, device: str, threads: int, concurrent: int = 0) -> dict[str, Any]:
    """Loader options for `model` in a pipeline run: threads (and batches at once) for CPU runtimes."""
    suffix = Path(model).suffix.lower()
    if "://" in model or suffix not in (".onnx", ".xml"):
        return {}
    if device not in ("auto", "cpu", "openvino"):
        return {"threads": threads} if threads else {}
    onnx_runtime_cpu = suffix == ".onnx" and device in ("auto", "cpu") and (device == "cpu" or _cpu_only())
    if onnx_runtime_cpu or device == "openvino" or suffix == ".xml":
        # an explicit thread count with auto batches: as many batches as fit the cores at that count
        calls = concurrent or (max(1, default_threads() // threads) if threads else auto_concurrent())
        return {"threads": threads or pipeline_threads(concurrent=calls), "concurrent": calls}
    if concurrent > 1:
        raise TridentError(f"engine.concurrent {concurrent}: only ONNX Runtime and OpenVINO on the CPU run several batches at once; set it to 0 or 1 for {Path(model).name} on {device}")
    return {"threads": threads or pipeline_threads()}


def load_run_engine(model: str, device: str = "auto", threads: int = 0, concurrent: int = 0) -> Any:
    """The engine `trident run` uses for `model` on `device`; `auto` with an INT8 ONNX on a CPU-only
    host with OpenVINO installed runs the measured rule of `faster_cpu_runtime`."""
    from engines.loader import load_engine

    options = engine_options(model, device, threads, concurrent)
    if device == "auto" and Path(model).suffix.lower() == ".onnx" and importlib.util.find_spec("openvino") and _cpu_only() and is_quantized(model):
        return faster_cpu_runtime(model, options.get("threads"), options.get("concurrent", 1))
    return load_engine(model, device=device, **options)


def is_quantized(model: str) -> bool:
    """A QDQ INT8 ONNX (QuantizeLinear nodes): the case where the runtimes' kernels differ most."""
    import onnx

    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception:  # unreadable: the loader's own check names the problem
        return False
    return any(node.op_type == "QuantizeLinear" for node in graph.node)


def _cpu_only() -> bool:
    import onnxruntime as ort

    return not {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers())


# OpenVINO must beat ONNX Runtime by this much to be picked: less is within what a shared
# machine's noise moves a few timed runs, and ONNX Runtime is the default every test covers
AUTO_MARGIN = 0.9
AUTO_RUNS = 6


def faster_cpu_runtime(model: str, threads: int | None, concurrent: int = 1) -> Any:
    """For an INT8 model with `--device auto` on a CPU-only host with OpenVINO installed (FP32
    stays on ONNX Runtime without timing: OpenVINO in f32 was slower or no faster where measured):
    open `model` on ONNX Runtime and on OpenVINO, each as the pipeline runs it (`concurrent` batches
    at once of `threads` each), time both alternately on blank batches (AUTO_RUNS rounds each, after
    their own warm-up; a round is `concurrent` batches at once, so both times are per batch of
    throughput), keep OpenVINO only if its median is under AUTO_MARGIN x ONNX Runtime's, and close
    the other. Measured: on a 2-core AMD EPYC, INT8 84 vs 86 ms, so ONNX Runtime stays; on a
    2-core AMX Xeon OpenVINO's INT8 kernels pull ahead (README, "Speed on a CPU")."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from engines.onnxruntime_engine import OnnxRuntimeEngine
    from engines.openvino_engine import OpenVinoEngine

    ort_engine = OnnxRuntimeEngine(model, device="cpu", threads=threads, concurrent=concurrent)
    try:
        ov_engine = OpenVinoEngine(model, threads=threads, concurrent=concurrent)
    except Exception as exc:  # an OpenVINO that cannot take the model leaves the default
        log.warning("OpenVINO cannot run %s (%s); using ONNX Runtime", Path(model).name, exc)
        return ort_engine
    blank = np.zeros((ort_engine.spec.batch_range[0], 3, *ort_engine.spec.input_hw), np.uint8)
    times: dict[str, list[float]] = {"onnxruntime": [], "openvino": []}
    with ThreadPoolExecutor(max_workers=concurrent) as pool:
        for _ in range(AUTO_RUNS):
            started = time.perf_counter()
            list(pool.map(lambda _: ort_engine.infer(blank), range(concurrent)))
            times["onnxruntime"].append((time.perf_counter() - started) / concurrent)
            started = time.perf_counter()
            list(pool.map(lambda _: ov_engine.infer(blank), range(concurrent)))
            times["openvino"].append((time.perf_counter() - started) / concurrent)
    ort_ms, ov_ms = (statistics.median(times[k]) * 1e3 for k in ("onnxruntime", "openvino"))
    pick_ov = ov_ms < AUTO_MARGIN * ort_ms
    log.info("device auto: ONNX Runtime %.1f ms, OpenVINO %.1f ms a batch -> %s", ort_ms, ov_ms, "OpenVINO" if pick_ov else "ONNX Runtime")
    (ort_engine if pick_ov else ov_engine).close()
    return ov_engine if pick_ov else ort_engine
