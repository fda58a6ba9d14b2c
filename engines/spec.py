"""ModelSpec: what an inference artifact needs to be used correctly, carried inside it.

The spec travels with every artifact (ONNX metadata property `trident.spec`,
a JSON sidecar next to a TensorRT plan, the checkpoint's config), so an
engine never has to be told the class names or the input size separately and
a mismatch is caught when the file is opened, not as garbage detections.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import TridentError
from pipeline.letterbox import RESIZE_MODES

SPEC_METADATA_KEY = "trident.spec"
SPEC_FORMAT = 1

# Output names of MultiTaskNet.export_forward, in order; a model without a head omits its outputs.
OUTPUT_NAMES: tuple[str, ...] = ("boxes", "scores", "mask_coeffs", "protos", "sem_logits")
INPUT_NAME = "images"


@dataclass(frozen=True)
class ModelSpec:
    input_hw: tuple[int, int]  # (height, width) of the network input, multiples of 32
    class_names: tuple[str, ...]  # thing classes of the detection head
    sem_class_names: tuple[str, ...] = ()  # semantic classes incl. background; empty without a sem head
    output_names: tuple[str, ...] = ("boxes", "scores")
    batch_range: tuple[int, int, int] = (1, 1, 8)  # min, opt, max batch the artifact accepts
    num_protos: int = 0
    precision: str = "fp32"
    source: str = ""  # checkpoint or ONNX file the artifact was made from, for humans
    extra: dict[str, Any] = field(default_factory=dict)
    # how frames are fitted into the input: "letterbox" (Trident, Ultralytics) or "stretch" (models
    # trained on plainly resized frames, e.g. NanoDet); every preprocess call reads it from here
    resize: str = "letterbox"
    # "rect" inference: the artifact accepts any height/width that are multiples of 32 up to input_hw,
    # so a frame of another aspect is padded only to the next multiple of 32 instead of to the nominal
    # size (engines.preprocess.batch_input_hw). False for files written before the field existed,
    # foreign imports, TensorRT plans and Triton models: those are built for input_hw only.
    dynamic_hw: bool = False

    def __post_init__(self) -> None:
        h, w = self.input_hw
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise TridentError(f"ModelSpec.input_hw must be positive multiples of 32, got {self.input_hw}")
        lo, opt, hi = self.batch_range
        if not 1 <= lo <= opt <= hi:
            raise TridentError(f"batch range must satisfy 1 <= min <= opt <= max, got {self.batch_range}")
        unknown = set(self.output_names) - set(OUTPUT_NAMES)
        if unknown:
            raise TridentError(f"unknown output names {sorted(unknown)}; expected a subset of {OUTPUT_NAMES}")
        if "boxes" in self.output_names and not self.class_names:
            raise TridentError("a detection model needs class_names")
        if "sem_logits" in self.output_names and not self.sem_class_names:
            raise TridentError("a semantic model needs sem_class_names")
        if self.resize not in RESIZE_MODES:
            raise TridentError(f"unknown resize mode '{self.resize}'; expected one of {', '.join(RESIZE_MODES)}")
        if not isinstance(self.dynamic_hw, bool):
            raise TridentError(f"ModelSpec.dynamic_hw must be true or false, got {self.dynamic_hw!r}; re-export the model")

    @property
    def has_masks(self) -> bool:
        return "mask_coeffs" in self.output_names and "protos" in self.output_names

    @property
    def has_semantic(self) -> bool:
        return "sem_logits" in self.output_names

    def to_json(self) -> str:
        data = asdict(self)
        data["format"] = SPEC_FORMAT
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "spec") -> "ModelSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TridentError(f"{where}: model spec is not valid JSON ({exc.msg}); re-export the model") from None
        if not isinstance(data, dict):
            raise TridentError(f"{where}: model spec must be a JSON object; re-export the model")
        if data.pop("format", None) != SPEC_FORMAT:
            raise TridentError(f"{where}: model spec format is not {SPEC_FORMAT}; re-export the model with this Trident version")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TridentError(f"{where}: unknown model spec key(s) {unknown}; re-export the model with this Trident version")
        for key in ("input_hw", "class_names", "sem_class_names", "output_names", "batch_range"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def accepts_hw(self, hw: tuple[int, int]) -> bool:
        """Whether an input of height/width `hw` may be fed: input_hw, or (dynamic_hw) multiples of 32 up to it."""
        h, w = int(hw[0]), int(hw[1])
        if not self.dynamic_hw:
            return (h, w) == tuple(self.input_hw)
        return 0 < h <= self.input_hw[0] and 0 < w <= self.input_hw[1] and h % 32 == 0 and w % 32 == 0

    def check_batch(self, batch: int) -> None:
        lo, _, hi = self.batch_range
        if not lo <= batch <= hi:
            raise TridentError(f"batch of {batch} frames is outside this engine's range {lo}..{hi}; rebuild with --batch-range")


def spec_from_metadata(model_path: Path, metadata: dict[str, str]) -> ModelSpec:
    """The spec stored in an ONNX file's metadata props (as ONNX Runtime or onnx report them)."""
    text = metadata.get(SPEC_METADATA_KEY)
    if text is None:
        raise TridentError(
            f"{Path(model_path).name} carries no Trident model spec (metadata '{SPEC_METADATA_KEY}'); "
            "export it with `trident export` (or wrap a foreign detector with `trident import`) "
            "so class names and input size travel with it"
        )
    return ModelSpec.from_json(text, where=Path(model_path).name)


def read_onnx_spec(model_path: str | Path) -> ModelSpec:
    """Read the spec of an ONNX file without loading its weights (onnx, no runtime)."""
    import onnx

    model_path = Path(model_path)
    try:
        proto = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for a truncated file
        raise TridentError(f"{model_path.name} is not a readable ONNX file ({type(exc).__name__}); re-export it") from None
    return spec_from_metadata(model_path, {p.key: p.value for p in proto.metadata_props})


def check_outputs_match(spec: ModelSpec, shapes: dict[str, tuple], where: str) -> None:
    """Refuse a file whose graph disagrees with its own spec, before it produces garbage or a crash.

    `shapes` maps each graph output to its shape; dynamic axes may be strings,
    None or -1 and are not checked.
    """
    names = set(shapes)
    if names != set(spec.output_names):
        raise TridentError(
            f"{where}: the graph's outputs {sorted(names)} are not the ones its model spec names {sorted(spec.output_names)}; "
            "the metadata belongs to another model - re-export it with `trident export` (or `trident import`)"
        )
    expected = {  # output -> (axis, size the spec implies, what that axis counts)
        "boxes": (-1, 4, "coordinates"),
        "scores": (-1, len(spec.class_names), "classes"),
        "mask_coeffs": (-1, spec.num_protos, "mask coefficients"),
        "protos": (1, spec.num_protos, "prototypes"),
        "sem_logits": (1, len(spec.sem_class_names), "semantic classes"),
    }
    for name, (axis, want, what) in expected.items():
        shape = tuple(shapes.get(name, ()))
        got = shape[axis] if -len(shape) <= axis < len(shape) else None
        if isinstance(got, int) and got > 0 and got != want:
            raise TridentError(
                f"{where}: output '{name}' has {got} {what} but the model spec says {want}; "
                "the weights and the class list disagree - re-export the model"
            )
