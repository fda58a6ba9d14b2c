"""The engine on its own thread, one batch ahead of the post-process.

Measured on the 2-core AMD EPYC (vtest.avi, bundled model): with letterbox,
inference, post-process and tracking one after the other on the calling
thread, a frame took ~45 ms of that thread while the process used only ~1.5
of its 2 cores - the post-process and tracker (~15 ms) waited for the engine
and the engine waited for them. Here the letterbox and `engine.infer` of
batch n+1 run on a `trd:infer` thread while the calling thread post-processes,
tracks and hands batch n to the sinks; the engine and its threads are owned
by that one thread, the trackers and sinks stay with the caller (no locks on
either side).

At most `workers` batches are in the engine (one per worker thread) while the
caller finishes the oldest, plus, for files only, one queued behind them (so a
worker never waits for the caller to submit), so a frame is never more than
`workers` (+1) batches ahead of its results, and the runtime submits a new batch without waiting
only when frames are already there (`Batcher.next_batch(block=False)`): a
live camera's frame is post-processed as soon as its inference ends, never
held for the next frame to arrive.

Every engine returns fresh output arrays per call (ONNX Runtime, OpenVINO and
Triton copy out, TensorRT and torch allocate), so batch n's outputs are still
intact while batch n+1 runs.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from engines.base import Engine
from engines.preprocess import batch_input_hw, letterbox_batch
from pipeline.cpu_budget import name_thread


@dataclass
class Inferred:
    """One batch's network outputs and what they cost, per frame of the batch."""

    raw: Any
    letterboxes: list
    stages: dict[str, float]  # wall seconds per frame: preprocess, infer
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of the infer thread (whole batch)


class InferenceStage:
    """`submit(images)` -> a Future of `Inferred`; `workers` threads, one engine call each at a time.

    `workers` is the engine's `concurrent_calls` (1 when it has none): ONNX Runtime on a CPU
    runs two batches at once, each on one core (pipeline/engine_choice.py says why); the caller
    keeps results in submission order (each batch's future), whatever order they finish in."""

    def __init__(self, engine: Engine, device: str):
        self.engine, self.device = engine, device
        self.workers = max(1, int(getattr(engine, "concurrent_calls", 1) or 1))
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="trident-infer", initializer=name_thread, initargs=("infer",))

    def submit(self, images: Sequence[np.ndarray]) -> "Future[Inferred]":
        return self._pool.submit(self._run, list(images))

    def _run(self, images: list[np.ndarray]) -> Inferred:
        spec = self.engine.spec
        t0, c0 = time.perf_counter(), time.thread_time()
        # rect inference: a dynamic-size model gets the batch padded only to the next multiple of 32
        input_hw = batch_input_hw([im.shape[:2] for im in images], spec)
        batch, letterboxes = letterbox_batch(images, input_hw, self.device, spec.resize)
        t1, c1 = time.perf_counter(), time.thread_time()
        raw = self.engine.infer(batch)
        t2, c2 = time.perf_counter(), time.thread_time()
        n = len(images)
        # a batch's cost is shared by its frames: per frame, comparable across batch sizes
        return Inferred(raw, letterboxes, {"preprocess": (t1 - t0) / n, "infer": (t2 - t1) / n}, {"preprocess": c1 - c0, "infer": c2 - c1})

    def close(self) -> None:
        """Waits for a batch still running (at most one inference), then ends the thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)
