"""What a served Trident model sends over the network, and how the client turns it back into RawOutputs.

Raw export outputs are 3.2 MB a frame at 384x640 in FP32 (protos alone
32x96x160 floats), far too much for a network. A server-side post-process
would need torch (NMS, roi_align) on the server, or a second, numpy copy of
`engines/postprocess.py`; both break "one post-process". So the model
*itself* is given a small ONNX tail (the "wire head") that leaves every
decision to the client's post-process and only drops what that post-process
would never look at, or rounds what it would not notice:

- candidates: the top-`topk` anchors by best class score. The post-process
  keeps anchors above its score threshold and then its `pre_nms_topk`
  highest, so with `pre_nms_topk <= topk` it sees exactly the anchors it would
  have kept locally. Boxes and scores stay FP32: detections, classes and track
  ids are identical to a local run (a test holds boxes to 1e-3 px).
- mask coefficients of those candidates in FP16 (no mask pixel changed in the
  measurement on the demo clip).
- prototypes and semantic logits ("dense" maps) as uint8 with a per-channel
  offset and step (`<name>_range`, [C,2] float32), or FP16. Measured on the
  demo clip: uint8 changes 0.05 % of mask pixels and 0.01 % of semantic
  labels; FP16 changes none and 0.0002 %, at twice the bytes.

At 384x640, 4 classes, 32 prototypes, 7 semantic classes: 0.69 MB a frame with
uint8 dense maps (1.29 MB with FP16), against 3.2 MB raw. Because the tail is
part of the ONNX graph, the official Triton container (onnxruntime_onnx) and
`trident serve-model` serve the very same bytes; nothing on the server needs
Trident or torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engines.postprocess import RawOutputs
from engines.spec import INPUT_NAME, SPEC_METADATA_KEY, ModelSpec
from pipeline.errors import TridentError

WIRE_PARAMETER = "trident.wire"  # Triton model-config parameter holding WirePlan.to_json()
WIRE_FORMAT = 1
DENSE_OUTPUTS = ("protos", "sem_logits")
RANGE_SUFFIX = "_range"  # uint8 dense maps: [B,C,2] = (offset, step) per channel
UINT8_LEVELS = 255.0


@dataclass(frozen=True)
class WirePlan:
    topk: int = 1000  # candidates per frame; 0 = all anchors (the raw outputs). Default = PostprocessConfig.pre_nms_topk
    dense: str = "uint8"  # protos and semantic logits on the wire: uint8 (per-channel range), fp16, or fp32

    def __post_init__(self) -> None:
        if self.topk < 0:
            raise TridentError(f"wire topk must be >= 0 (0 = every anchor), got {self.topk}")
        if self.dense not in ("uint8", "fp16", "fp32"):
            raise TridentError(f"wire dense must be uint8, fp16 or fp32, got {self.dense!r}")

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "format": WIRE_FORMAT}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "WirePlan":
        try:
            data = json.loads(text)
            if data.pop("format") != WIRE_FORMAT:
                raise ValueError("format")
            return cls(**data)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TridentError(f"{where}: parameter '{WIRE_PARAMETER}' is not a wire plan of this Trident version; rewrite the repository with `trident triton-repo`") from None


RAW_WIRE = WirePlan(topk=0, dense="fp32")  # a plain Trident ONNX served as it is


def add_wire_head(model: Any, spec: ModelSpec, plan: WirePlan, anchors: int) -> Any:
    """Return the onnx ModelProto `model` with the wire head appended (outputs renamed, same metadata)."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    raw = {o.name for o in graph.output}
    if set(spec.output_names) != raw:
        raise TridentError(f"the graph's outputs {sorted(raw)} are not the ones its spec names {sorted(spec.output_names)}; re-export the model")
    nodes, outputs = [], []
    inits: list = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(onnx.numpy_helper.from_array(value, name))
        return name

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)

    def reduce(op: str, src: str, out: str, axes: list[int], keepdims: int) -> Any:
        # axes became an input in opset 18; Trident exports opset 17 by default
        if opset >= 18:
            return helper.make_node(op, [src, const(f"{out}_axes", np.array(axes, np.int64))], [out], keepdims=keepdims)
        return helper.make_node(op, [src], [out], axes=axes, keepdims=keepdims)

    def rename(name: str) -> str:  # the graph's own tensor keeps a private name; the wire name is the public one
        inner = f"trident_raw_{name}"
        for node in graph.node:
            node.output[:] = [inner if o == name else o for o in node.output]
            node.input[:] = [inner if i == name else i for i in node.input]
        return inner

    inner = {name: rename(name) for name in spec.output_names}
    del graph.output[:]
    k = min(plan.topk, anchors) if plan.topk else 0
    if k and "scores" in inner:
        nodes.append(reduce("ReduceMax", inner["scores"], "wire_best", [-1], keepdims=0))
        nodes.append(helper.make_node("TopK", ["wire_best", const("wire_k", np.array([k], np.int64))], ["wire_best_k", "wire_idx"], axis=1, largest=1, sorted=1))
        nodes.append(helper.make_node("Unsqueeze", ["wire_idx", const("wire_axis2", np.array([2], np.int64))], ["wire_idx3"]))
    for name in spec.output_names:
        src, per_anchor = inner[name], name in ("boxes", "scores", "mask_coeffs")
        if k and per_anchor:
            nodes.append(helper.make_node("GatherND", [src, "wire_idx3"], [f"wire_{name}_k"], batch_dims=1))
            src = f"wire_{name}_k"
        if name == "mask_coeffs":
            nodes.append(helper.make_node("Cast", [src], [name], to=TensorProto.FLOAT16))
            outputs.append((name, TensorProto.FLOAT16, ["batch", k or anchors, spec.num_protos]))
        elif name in DENSE_OUTPUTS and plan.dense != "fp32":
            channels = spec.num_protos if name == "protos" else len(spec.sem_class_names)
            fmap = ["batch", channels, spec.input_hw[0] // 4, spec.input_hw[1] // 4]
            if plan.dense == "fp16":
                nodes.append(helper.make_node("Cast", [src], [name], to=TensorProto.FLOAT16))
                outputs.append((name, TensorProto.FLOAT16, fmap))
            else:
                nodes += _uint8_nodes(helper, const, reduce, src, name)
                outputs.append((name, TensorProto.UINT8, fmap))
                outputs.append((name + RANGE_SUFFIX, TensorProto.FLOAT, ["batch", channels, 2]))
        else:
            nodes.append(helper.make_node("Identity", [src], [name]))
            shape = {"boxes": ["batch", k or anchors, 4], "scores": ["batch", k or anchors, len(spec.class_names)]}.get(name)
            outputs.append((name, TensorProto.FLOAT, shape))
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    graph.output.extend(helper.make_tensor_value_info(n, t, s) for n, t, s in outputs)
    return model


def _uint8_nodes(helper: Any, const: Any, reduce: Any, src: str, name: str) -> list:
    """q = round((x - lo) / step) with step = (hi - lo) / 255 per channel; the client computes lo + q * step."""
    p = f"wire_{name}_"
    return [
        reduce("ReduceMin", src, p + "lo", [2, 3], keepdims=1),
        reduce("ReduceMax", src, p + "hi", [2, 3], keepdims=1),
        helper.make_node("Sub", [p + "hi", p + "lo"], [p + "span"]),
        helper.make_node("Max", [p + "span", const(p + "eps", np.array(1e-12, np.float32))], [p + "span_pos"]),
        helper.make_node("Div", [p + "span_pos", const(p + "levels", np.array(UINT8_LEVELS, np.float32))], [p + "step"]),
        helper.make_node("Sub", [src, p + "lo"], [p + "shifted"]),
        helper.make_node("Div", [p + "shifted", p + "step"], [p + "scaled"]),
        helper.make_node("Round", [p + "scaled"], [p + "rounded"]),
        helper.make_node("Clip", [p + "rounded", const(p + "zero", np.array(0.0, np.float32)), p + "levels"], [p + "clipped"]),
        helper.make_node("Cast", [p + "clipped"], [name], to=2),  # 2 = UINT8
        helper.make_node("Concat", [p + "lo", p + "step"], [p + "pair"], axis=3),  # [B,C,1,2]
        helper.make_node("Squeeze", [p + "pair", const(p + "sq", np.array([2], np.int64))], [name + RANGE_SUFFIX]),
    ]


def _pin_input(model: Any, spec: ModelSpec) -> None:
    """Fix a dynamic-height/width graph's input at spec.input_hw and write `spec` into its metadata.

    A served model is sized for one input (see engines.triton_repo), so its
    graph says so too: the server's ONNX Runtime then plans for that shape and
    a request of another size is refused by the server, not half-run.
    """
    dims = next(i for i in model.graph.input if i.name == INPUT_NAME).type.tensor_type.shape.dim
    if len(dims) == 4:
        for axis, size in ((2, spec.input_hw[0]), (3, spec.input_hw[1])):
            dims[axis].Clear()
            dims[axis].dim_value = int(size)
    for prop in model.metadata_props:
        if prop.key == SPEC_METADATA_KEY:
            prop.value = spec.to_json()


def build_wire_model(onnx_path: str | Path, spec: ModelSpec, plan: WirePlan) -> tuple[bytes, dict[str, tuple[str, tuple[int, ...]]]]:
    """The wire ONNX of `onnx_path` as bytes, and each output's (numpy dtype, per-frame shape), measured by
    running it once in ONNX Runtime on a blank frame (the graph leaves some axes symbolic)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    _pin_input(model, spec)
    probe = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    blank = np.zeros((1, 3, *spec.input_hw), np.uint8)
    raw_shapes = {o.name: r.shape for o, r in zip(probe.get_outputs(), probe.run(None, {INPUT_NAME: blank}))}
    anchors = int(raw_shapes["boxes"][1]) if "boxes" in raw_shapes else 0
    if plan != RAW_WIRE:
        model = add_wire_head(model, spec, plan, anchors)
        onnx.checker.check_model(model)
    data = model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    results = session.run(None, {INPUT_NAME: blank})
    shapes = {o.name: (str(r.dtype), tuple(int(d) for d in r.shape[1:])) for o, r in zip(session.get_outputs(), results)}
    return data, shapes


def decode(outputs: Mapping[str, np.ndarray], spec: ModelSpec) -> RawOutputs:
    """Wire outputs of a batch (numpy, by name) -> the RawOutputs the post-process expects (float32)."""
    values = {}
    for name in spec.output_names:
        if name not in outputs:
            raise TridentError(f"the served model returned no '{name}' output (got {sorted(outputs)}); rewrite its repository with `trident triton-repo`")
        x = outputs[name]
        if x.dtype == np.uint8:
            pair = outputs.get(name + RANGE_SUFFIX)
            if pair is None:
                raise TridentError(f"the served model sends '{name}' as uint8 without '{name}{RANGE_SUFFIX}'; rewrite its repository")
            lo, step = pair[..., 0, None, None], pair[..., 1, None, None]
            x = x.astype(np.float32) * step + lo
        elif x.dtype != np.float32:
            x = x.astype(np.float32)
        values[name] = x
    return RawOutputs(**values)


def wire_bytes(shapes: Mapping[str, tuple[str, tuple[int, ...]]]) -> int:
    """Bytes of one frame's outputs on the wire."""
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for dtype, shape in shapes.values())
