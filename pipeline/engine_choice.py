"""Which runtime and how many threads `trident run` gives the engine.

Threads: on a CPU the engine shares the cores with the stream's decoder,
drawing and encoder threads and the post-process. Measured on the 2-core AMD
EPYC (benchmarks/bench_e2e.py --budget, vtest.avi, A/B alternated): ONNX
Runtime on both cores spent 44-54 ms of CPU a frame on inference (its pool
spins up and waits on the other threads) against 30-38 ms on one core, for
the same frames per second under load. So unless `engine.threads` says
otherwise, the engine gets every usable core but one (at least one), and
`trident bench`, which times the engine alone, keeps all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engines.onnxruntime_engine import default_threads


def pipeline_threads(cores: int | None = None) -> int:
    """Intra-op threads for an engine inside the pipeline: the usable cores but one, at least one."""
    cores = default_threads() if cores is None else cores
    return max(1, cores - 1)


def engine_options(model: str, device: str, threads: int) -> dict[str, Any]:
    """Loader options for `model` in a pipeline run: the thread count for CPU runtimes."""
    suffix = Path(model).suffix.lower()
    if "://" in model or suffix not in (".onnx", ".xml"):
        return {}
    if device not in ("auto", "cpu", "openvino"):
        return {"threads": threads} if threads else {}
    return {"threads": threads or pipeline_threads()}


def load_run_engine(model: str, device: str = "auto", threads: int = 0) -> Any:
    """The engine `trident run` uses for `model` on `device`."""
    from engines.loader import load_engine

    return load_engine(model, device=device, **engine_options(model, device, threads))
