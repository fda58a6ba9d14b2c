"""Which runtime and how many threads `trident run` gives the engine.

Threads: on a CPU the engine shares the cores with the stream's decoder,
drawing and encoder threads and the post-process. Measured on the 2-core AMD
EPYC (benchmarks/bench_e2e.py --budget-only --variant, vtest.avi, 300 frames,
A/B alternated): on a machine loaded by other jobs, ONNX Runtime on both
cores spent 44-54 ms of CPU a frame against 30-38 ms on one, for the same
frames per second; on the same machine idle, both cores gave 18.5 FPS
against 15.5 on one (inference 30 vs 39 ms a frame). A box that runs Trident
is the idle case, so unless `engine.threads` says otherwise the engine gets
every usable core, as `trident bench` gives it; set `engine.threads` lower
on a machine that has other work to do.
"""

from __future__ import annotations

import importlib.util
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from engines.onnxruntime_engine import default_threads

log = logging.getLogger("trident.run")


def pipeline_threads(cores: int | None = None) -> int:
    """Intra-op threads for an engine inside the pipeline: the usable cores (module docstring says why)."""
    cores = default_threads() if cores is None else cores
    return max(1, cores)


def engine_options(model: str, device: str, threads: int) -> dict[str, Any]:
    """Loader options for `model` in a pipeline run: the thread count for CPU runtimes."""
    suffix = Path(model).suffix.lower()
    if "://" in model or suffix not in (".onnx", ".xml"):
        return {}
    if device not in ("auto", "cpu", "openvino"):
        return {"threads": threads} if threads else {}
    return {"threads": threads or pipeline_threads()}


def load_run_engine(model: str, device: str = "auto", threads: int = 0) -> Any:
    """The engine `trident run` uses for `model` on `device`; `auto` with an INT8 ONNX on a CPU-only
    host with OpenVINO installed runs the measured rule of `faster_cpu_runtime`."""
    from engines.loader import load_engine

    options = engine_options(model, device, threads)
    if device == "auto" and Path(model).suffix.lower() == ".onnx" and importlib.util.find_spec("openvino") and _cpu_only() and is_quantized(model):
        return faster_cpu_runtime(model, options.get("threads"))
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


def faster_cpu_runtime(model: str, threads: int | None) -> Any:
    """For an INT8 model with `--device auto` on a CPU-only host with OpenVINO installed (FP32
    stays on ONNX Runtime: OpenVINO in f32 was slower here, and needs no timing to say so):
    open `model` on ONNX Runtime and on OpenVINO, time both alternately on a blank batch
    (AUTO_RUNS each, after their own warm-up), keep OpenVINO only if its median is under
    AUTO_MARGIN x ONNX Runtime's, and close the other. Measured on the 2-core AMD EPYC: FP32
    OpenVINO (f32) 150 ms vs ONNX Runtime 101 ms, INT8 84 vs 86 ms, so ONNX Runtime stays;
    the rule exists for the Intel CPUs (VNNI/AMX) where OpenVINO's INT8 kernels pull ahead."""
    import numpy as np

    from engines.onnxruntime_engine import OnnxRuntimeEngine
    from engines.openvino_engine import OpenVinoEngine

    ort_engine = OnnxRuntimeEngine(model, device="cpu", threads=threads)
    try:
        ov_engine = OpenVinoEngine(model, threads=threads)
    except Exception as exc:  # an OpenVINO that cannot take the model leaves the default
        log.warning("OpenVINO cannot run %s (%s); using ONNX Runtime", Path(model).name, exc)
        return ort_engine
    blank = np.zeros((ort_engine.spec.batch_range[0], 3, *ort_engine.spec.input_hw), np.uint8)
    times: dict[str, list[float]] = {"onnxruntime": [], "openvino": []}
    for _ in range(AUTO_RUNS):
        for name, engine in (("onnxruntime", ort_engine), ("openvino", ov_engine)):
            started = time.perf_counter()
            engine.infer(blank)
            times[name].append(time.perf_counter() - started)
    ort_ms, ov_ms = (statistics.median(times[k]) * 1e3 for k in ("onnxruntime", "openvino"))
    pick_ov = ov_ms < AUTO_MARGIN * ort_ms
    log.info("device auto: ONNX Runtime %.1f ms, OpenVINO %.1f ms a batch -> %s", ort_ms, ov_ms, "OpenVINO" if pick_ov else "ONNX Runtime")
    (ort_engine if pick_ov else ov_engine).close()
    return ov_engine if pick_ov else ort_engine
