"""Build TensorRT 10 engines from Trident ONNX files: FP32/FP16/INT8, dynamic batch, caches.

Only `build_engine` and the calibrator touch TensorRT. Everything around them
(cache keys, calibration batches; the sidecar and compatibility checks in
`engines.tensorrt_sidecar`) is plain
Python and tested on machines without a GPU.

Caches:
- engine cache: an engine is reused when the ONNX bytes, TensorRT version,
  GPU name, precision, input size and batch range all match (the key hashes
  all six), because an engine is only valid for exactly that combination;
- timing cache: kernel timings shared across builds on one GPU, so a rebuild
  after a small model change takes seconds, not minutes;
- calibration cache: INT8 scales from a previous calibration of the same ONNX.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from engines.calibration import calibration_batches, list_calibration_images
from engines.spec import INPUT_NAME, ModelSpec, read_onnx_spec
from engines.tensorrt_sidecar import write_sidecar
from pipeline.errors import TridentError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class BuildConfig:
    precision: str = "fp16"
    batch_range: tuple[int, int, int] = (1, 4, 8)  # min, opt, max: the optimisation profile
    workspace_gb: float = 2.0  # builder scratch memory; more lets TensorRT try more tactics
    calib_data: Path | None = None  # folder of images (or a synthetic dataset's images/) for INT8
    calib_images: int = 256  # images used for INT8 calibration; 200-1000 is typical
    calib_batch: int = 8
    cache_dir: Path | None = None  # engine + timing + calibration caches; None disables caching
    dla_core: int | None = None  # Jetson Xavier/Orin: run on this DLA core, GPU fallback for unsupported layers

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise TridentError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        lo, opt, hi = self.batch_range
        if not 1 <= lo <= opt <= hi:
            raise TridentError(f"--batch-range must be MIN OPT MAX with 1 <= MIN <= OPT <= MAX, got {lo} {opt} {hi}")
        if self.workspace_gb <= 0:
            raise TridentError(f"--workspace-gb must be > 0, got {self.workspace_gb}")
        if self.precision == "int8" and self.calib_data is None:
            raise TridentError("INT8 needs calibration images: pass --calib-data DIR (a folder of frames from your cameras)")
        if self.calib_images < 1 or self.calib_batch < 1:
            raise TridentError("calib_images and calib_batch must be >= 1")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def engine_cache_key(onnx_sha256: str, trt_version: str, gpu_name: str, precision: str, input_hw: tuple[int, int], batch_range: tuple[int, int, int]) -> str:
    """A stable key over everything an engine's validity depends on."""
    payload = json.dumps(
        {"onnx": onnx_sha256, "trt": trt_version, "gpu": gpu_name, "precision": precision, "input_hw": list(input_hw), "batch": list(batch_range)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def plan_spec(spec: ModelSpec, cfg: BuildConfig, source: str) -> ModelSpec:
    """The spec a plan built from an ONNX of `spec` carries in its sidecar.

    Always dynamic_hw False: the optimisation profile below fixes height and
    width at input_hw, so a rect (smaller) input would be refused by the plan.
    Rect inference on TensorRT would need a profile (or an engine) per input
    size, each built and timed separately; left for later, and until then a
    4:3 camera is letterboxed to the nominal size on TensorRT.
    """
    return replace(spec, batch_range=tuple(cfg.batch_range), precision=cfg.precision, source=source, dynamic_hw=False)


def build_engine(onnx_path: Path, out_path: Path, cfg: BuildConfig) -> Path:
    """Build (or fetch from the cache) a TensorRT plan for `onnx_path`; writes the plan and its sidecar."""
    import tensorrt as trt
    import torch

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.exists():
        raise TridentError(f"--onnx {onnx_path} does not exist; export one with `trident export`")
    if not torch.cuda.is_available():
        raise TridentError("building a TensorRT engine needs a CUDA GPU; none is visible (check nvidia-smi / CUDA_VISIBLE_DEVICES)")
    spec = read_onnx_spec(onnx_path)
    gpu_name = torch.cuda.get_device_name(0)
    onnx_sha = file_sha256(onnx_path)
    key = engine_cache_key(onnx_sha, trt.__version__, gpu_name, cfg.precision, spec.input_hw, cfg.batch_range)
    build_info = {"tensorrt_version": trt.__version__, "gpu_name": gpu_name, "precision": cfg.precision, "cache_key": key, "onnx_sha256": onnx_sha}
    out_spec = plan_spec(spec, cfg, onnx_path.name)
    cached = cfg.cache_dir / f"{key}.engine" if cfg.cache_dir else None
    if cached is not None and cached.exists():
        shutil.copyfile(cached, out_path)
        write_sidecar(out_path, out_spec, {**build_info, "from_cache": True})
        return out_path

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TridentError(f"TensorRT cannot parse {onnx_path.name}: {errors[:500]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    lo, opt, hi = cfg.batch_range
    h, w = spec.input_hw  # fixed even for a dynamic_hw ONNX: see plan_spec
    profile.set_shape(INPUT_NAME, (lo, 3, h, w), (opt, 3, h, w), (hi, 3, h, w))
    config.add_optimization_profile(profile)
    if cfg.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers that lack a kernel fall back to FP16, not FP32
    calibrator = None
    if cfg.precision == "int8":
        from engines.tensorrt_calibrator import make_entropy_calibrator

        files = list_calibration_images(Path(cfg.calib_data), cfg.calib_images)
        calib_cache = (cfg.cache_dir / f"{onnx_sha[:16]}.calib") if cfg.cache_dir else out_path.with_suffix(".calib")
        calibrator = make_entropy_calibrator(calibration_batches(files, spec.input_hw, cfg.calib_batch, spec.resize), cfg.calib_batch, calib_cache)
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    if cfg.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = cfg.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    timing_path = cfg.cache_dir / "timing.cache" if cfg.cache_dir else None
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path and timing_path.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TridentError(f"TensorRT failed to build an engine from {onnx_path.name}; see the TensorRT log above (try more --workspace-gb)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(bytes(plan))
    write_sidecar(out_path, out_spec, build_info)
    if cfg.cache_dir:
        cfg.cache_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out_path, cached)
        timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return out_path
