"""ONNX Runtime engine: the embedded default, CPU everywhere, CUDA / TensorRT EPs with onnxruntime-gpu."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engines.base import as_numpy, check_images, require_module
from engines.postprocess import RawOutputs
from engines.spec import INPUT_NAME, check_outputs_match, spec_from_metadata
from pipeline.errors import TridentError


def default_threads() -> int:
    """Intra-op threads: the cores this process may use (cgroup/affinity aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def pick_providers(device: str, available: Sequence[str]) -> list[str]:
    """Execution providers in priority order for `device` ("auto", "cpu", "cuda", "tensorrt")."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    wanted = {
        "auto": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    }.get(device)
    if wanted is None:
        raise TridentError(f"unknown device '{device}' for ONNX Runtime; use auto, cpu, cuda or tensorrt")
    if device != "auto" and wanted[0] not in available:
        raise TridentError(
            f"ONNX Runtime has no {wanted[0]} here (available: {', '.join(available)}); "
            "pip install onnxruntime-gpu (and uninstall onnxruntime) on a CUDA machine, or use --device cpu"
        )
    return [p for p in wanted if p in available]


class OnnxRuntimeEngine:
    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None, concurrent: int = 1):
        """`threads`: intra-op threads of each run; `concurrent`: runs the pipeline may have in flight at
        once (an ONNX Runtime session is safe to run from several threads; with one intra-op thread
        each run computes on its caller's thread, so two callers use two cores with no hand-off)."""
        import onnxruntime as ort

        if concurrent < 1:
            raise TridentError(f"engine.concurrent must be >= 1 batch in flight, got {concurrent}")
        self.path = Path(path)
        self.concurrent_calls = concurrent
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only; warnings about unused initialisers are noise to users
        # Idle intra-op threads would otherwise busy-wait after every run, stealing the cores the
        # decode and encode threads of the pipeline need between two inferences.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.providers = pick_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TridentError(
                f"{self.path.name} is not a loadable ONNX model ({first[:200]}); the file may be truncated or corrupt - "
                "re-export it with `trident export`"
            ) from None
        self.spec = spec_from_metadata(self.path, self.session.get_modelmeta().custom_metadata_map)
        self.output_names = [o.name for o in self.session.get_outputs()]
        if [i.name for i in self.session.get_inputs()] != [INPUT_NAME]:
            raise TridentError(f"{self.path.name} must have one input named '{INPUT_NAME}'; re-export it with `trident export`")
        # one warm-up run on a blank batch: it pays ONNX Runtime's first-run allocations here instead of on
        # the first camera frame, and gives the real output shapes (the graph leaves class counts symbolic),
        # so a spec that belongs to another model is refused now, not as garbage later
        blank = np.zeros((self.spec.batch_range[0], 3, *self.spec.input_hw), np.uint8)
        outputs = self.session.run(self.output_names, {INPUT_NAME: blank})
        check_outputs_match(self.spec, {n: o.shape for n, o in zip(self.output_names, outputs)}, self.path.name)

    @property
    def device(self) -> str:
        return "cuda" if self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"

    def infer(self, images: Any) -> RawOutputs:
        check_images(images, self.spec, self.path.name)
        if self.device == "cuda" and getattr(images, "is_cuda", False):
            return self._infer_bound(images)
        feed = np.ascontiguousarray(as_numpy(images))
        outputs = self.session.run(self.output_names, {INPUT_NAME: feed})
        return RawOutputs.from_sequence(self.output_names, outputs)

    def _infer_bound(self, images: Any) -> RawOutputs:
        """I/O binding: ONNX Runtime reads the batch where the GPU preprocess left it (no host round trip)."""
        images = images.contiguous()
        binding = self.session.io_binding()
        binding.bind_input(
            name=INPUT_NAME,
            device_type="cuda",
            device_id=images.device.index or 0,
            element_type=np.uint8,
            shape=tuple(images.shape),
            buffer_ptr=images.data_ptr(),
        )
        for name in self.output_names:
            binding.bind_output(name)  # host memory: the post-process runs on the CPU
        self.session.run_with_iobinding(binding)
        return RawOutputs.from_sequence(self.output_names, binding.copy_outputs_to_cpu())

    def close(self) -> None:
        self.session = None

    def __enter__(self) -> "OnnxRuntimeEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(path: str | Path, device: str = "auto", threads: int | None = None, concurrent: int = 1, **options: Any) -> OnnxRuntimeEngine:
    """Loader registered for .onnx files (entry point group trident.engines)."""
    require_module("onnxruntime", "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)", Path(path).name)
    if options:
        raise TridentError(f"ONNX Runtime does not take option(s) {sorted(options)}; it takes device, threads and concurrent")
    return OnnxRuntimeEngine(path, device=device, threads=threads, concurrent=concurrent)
