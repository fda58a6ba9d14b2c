"""A Triton model repository for a Trident model: `DIR/NAME/config.pbtxt` and `DIR/NAME/1/model.onnx|model.plan`.

The repository is usable as it is by the official Triton container
(`tritonserver --model-repository DIR`) and by `trident serve-model`, which
reads the same config.pbtxt. The model spec and the wire plan travel in the
config's `parameters`, so a client (`triton://host:port/NAME`) learns class
names, input size and output encoding from the server and nothing is
configured twice.

config.pbtxt is written here as text (Triton's protobuf text format) so that
writing a repository needs no tritonclient; a test parses it with
tritonclient's own `model_config_pb2`.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from engines.spec import INPUT_NAME, SPEC_METADATA_KEY, ModelSpec, read_onnx_spec
from engines.triton_wire import WIRE_PARAMETER, WirePlan, build_wire_model
from pipeline.errors import TridentError

PLATFORMS = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}
_TRITON_TYPES = {"uint8": "TYPE_UINT8", "float16": "TYPE_FP16", "float32": "TYPE_FP32", "int64": "TYPE_INT64", "int32": "TYPE_INT32"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ServingConfig:
    """How Triton should schedule the model; every field is a trade written where it is set."""

    name: str = "trident"
    platform: str = "onnxruntime_onnx"  # or tensorrt_plan (the plan built from this repository's model.onnx)
    max_batch_size: int = 0  # 0 = the model spec's largest batch
    # () = (max/2, max): a lone request waits up to max_queue_delay_us for company instead of going
    # alone (a preferred size of 1 would send every request at once and no batch would ever form)
    preferred_batch_sizes: tuple[int, ...] = ()
    # How long the first request of a batch waits for others: longer fills batches when the server is
    # idle, shorter keeps a lone camera's latency down. A busy server batches the queue anyway (each
    # batch takes what arrived while the previous one ran), so 1 ms: measured added latency at 4 ms
    # was 11.7 ms p50 over the socket, 5.5 ms at 0 (benchmarks/bench_triton.py).
    max_queue_delay_us: int = 1000
    instances: int = 1  # model copies run in parallel; on a CPU one copy already uses every core
    kind: str = "KIND_CPU"  # KIND_GPU on a CUDA host (ONNX Runtime CUDA EP or TensorRT)
    wire: WirePlan = field(default_factory=WirePlan)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise TridentError(f"model name {self.name!r} must be letters, digits, '.', '_' or '-' (Triton's rule)")
        if self.platform not in PLATFORMS:
            raise TridentError(f"platform {self.platform!r} is not one of {sorted(PLATFORMS)}")
        if self.kind not in ("KIND_CPU", "KIND_GPU"):
            raise TridentError(f"instance kind {self.kind!r} must be KIND_CPU or KIND_GPU")
        if self.instances < 1 or self.max_queue_delay_us < 0 or self.max_batch_size < 0:
            raise TridentError("instances must be >= 1, max_queue_delay_us and max_batch_size >= 0")


def _dims(shape: tuple[int, ...]) -> str:
    return "[ " + ", ".join(str(d) for d in shape) + " ]"


def _quote(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid protobuf text-format string


def config_pbtxt(spec: ModelSpec, shapes: dict[str, tuple[str, tuple[int, ...]]], cfg: ServingConfig) -> str:
    """The config.pbtxt text: dims from the spec and the measured wire outputs (batch axis excluded)."""
    lo, opt, hi = spec.batch_range
    max_batch = cfg.max_batch_size or hi
    if max_batch > hi:
        raise TridentError(f"max_batch_size {max_batch} exceeds the model's batch range {lo}..{hi}; re-export with a larger --batch-range")
    preferred = sorted(set(cfg.preferred_batch_sizes or (max(1, max_batch // 2), max_batch)))
    if any(p < 1 or p > max_batch for p in preferred):
        raise TridentError(f"preferred batch sizes {preferred} must lie in 1..{max_batch}")
    lines = [
        f"name: {_quote(cfg.name)}",
        f"platform: {_quote(cfg.platform)}",
        f"max_batch_size: {max_batch}",
        f"input [ {{ name: {_quote(INPUT_NAME)} data_type: TYPE_UINT8 dims: {_dims((3, *spec.input_hw))} }} ]",
        "output [",
        ",\n".join(f"  {{ name: {_quote(n)} data_type: {_TRITON_TYPES[d]} dims: {_dims(s)} }}" for n, (d, s) in shapes.items()),
        "]",
        "dynamic_batching {",
        f"  preferred_batch_size: {_dims(tuple(preferred))}",
        f"  max_queue_delay_microseconds: {cfg.max_queue_delay_us}",
        "}",
        f"instance_group [ {{ count: {cfg.instances} kind: {cfg.kind} }} ]",
        f"parameters {{ key: {_quote(SPEC_METADATA_KEY)} value {{ string_value: {_quote(spec.to_json())} }} }}",
        f"parameters {{ key: {_quote(WIRE_PARAMETER)} value {{ string_value: {_quote(cfg.wire.to_json())} }} }}",
    ]
    return "\n".join(lines) + "\n"


def write_repository(onnx_path: str | Path, repo: str | Path, cfg: ServingConfig = ServingConfig(), plan_file: str | Path | None = None) -> Path:
    """Write `repo/NAME/config.pbtxt` and `repo/NAME/1/model.onnx` (the wire model) or `model.plan`.

    For tensorrt_plan pass `plan_file`, a TensorRT engine built from this
    function's model.onnx (`trident build-engine --onnx repo/NAME/1/model.onnx`):
    the config's dims are those of that wire graph. Returns the model folder.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise TridentError(f"--model {onnx_path} does not exist; pass a Trident .onnx file (`trident export`, `trident import`)")
    # Served at input_hw only (dynamic_hw False even for a rect-capable export): the config's input dims,
    # the clients' shared-memory regions and the wire head's top-k are all sized for one input, and a
    # TensorRT plan has one profile. Rect inference through Triton (a size per camera aspect: dims -1
    # and a profile per shape) is left for later; clients letterbox to the nominal size meanwhile.
    spec = replace(read_onnx_spec(onnx_path), dynamic_hw=False)
    if cfg.platform == "tensorrt_plan" and plan_file is None:
        raise TridentError("platform tensorrt_plan needs --plan FILE: build it from this repository's 1/model.onnx with `trident build-engine`")
    data, shapes = build_wire_model(onnx_path, spec, cfg.wire)
    folder = Path(repo) / cfg.name
    version = folder / "1"
    try:
        version.mkdir(parents=True, exist_ok=True)
        (version / "model.onnx").write_bytes(data)
        if plan_file is not None:
            shutil.copyfile(plan_file, version / PLATFORMS["tensorrt_plan"])
        (folder / "config.pbtxt").write_text(config_pbtxt(spec, shapes, cfg))
    except OSError as exc:
        raise TridentError(f"cannot write the Triton repository {folder}: {exc.strerror or exc}; choose a writable folder") from None
    return folder
