"""Reading a foreign detector ONNX and wrapping it into Trident's contract, with onnx alone.

A foreign file is opened once (`load_foreign`): its one image input, its
metadata and the real shape of every output, taken from one ONNX Runtime run
on a blank input, because exporters such as tf2onnx leave every output axis
symbolic and the layouts are told apart by shape. The wrapped graph
(`wrap_graph`) is the foreign graph with every name prefixed (no clash with
Trident's output names), a pre-process in front (uint8 BGR `images` -> the
foreign input's dtype, channel order and normalisation) and the head decoding
behind it, built node by node with `GraphBuilder`, so the artifact is one
ONNX file that any runtime (ONNX Runtime, TensorRT, OpenVINO) runs unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engines.spec import INPUT_NAME, SPEC_METADATA_KEY, ModelSpec
from pipeline.errors import TridentError

FOREIGN_PREFIX = "foreign/"  # every name of the foreign graph gets it, so none can clash with ours
MIN_OPSET = 13  # Softmax over one axis, Squeeze/Unsqueeze/Slice with tensor inputs


@dataclass(frozen=True)
class ForeignModel:
    """What the importers need to know about a foreign ONNX file."""

    path: Path
    proto: Any  # onnx.ModelProto
    input_name: str
    input_dtype: int  # onnx TensorProto element type of the image input
    batch: int | None  # fixed batch of the input, None when the axis is dynamic
    input_hw: tuple[int, int]  # network input size (fixed by the file, or --imgsz)
    outputs: dict[str, tuple[int, ...]]  # output name -> shape from a real run, in graph order
    probe: dict[str, np.ndarray] = field(default_factory=dict)  # output values on a blank image
    metadata: dict[str, str] = field(default_factory=dict)

    def describe_outputs(self) -> str:
        return ", ".join(f"{name} {list(shape)}" for name, shape in self.outputs.items())


def _dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in value_info.type.tensor_type.shape.dim]


def load_foreign(path: str | Path, imgsz: tuple[int, int] | None = None) -> ForeignModel:
    """Open and probe a foreign ONNX file; every way it can be unusable is one TridentError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise TridentError(f"--onnx {path} does not exist; pass the .onnx file your framework exported")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # DecodeError and friends: not a protobuf, or truncated
        raise TridentError(f"--onnx {path.name} is not a readable ONNX file ({type(exc).__name__}); re-export it from its framework") from None
    if not proto.graph.node:
        raise TridentError(f"--onnx {path.name} holds no graph (0 nodes); it is not an ONNX model")
    initialisers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initialisers]
    if len(inputs) != 1 or len(_dims(inputs[0])) != 4:
        found = ", ".join(f"{i.name} {_dims(i)}" for i in inputs) or "none"
        raise TridentError(f"--onnx {path.name} must have one image input [B,3,H,W]; found {found}")
    image = inputs[0]
    batch, channels, h, w = _dims(image)
    if channels not in (3, None):
        raise TridentError(f"--onnx {path.name}: input '{image.name}' has {channels} channels; only 3-channel (colour) detectors can be imported")
    if h is None or w is None:
        if imgsz is None:
            raise TridentError(f"--onnx {path.name} has a dynamic input size; pass --imgsz H W (the size it was trained at)")
        h, w = imgsz
    elif imgsz is not None and tuple(imgsz) != (h, w):
        raise TridentError(f"--imgsz {imgsz[0]} {imgsz[1]} differs from the file's fixed input {h}x{w}; drop --imgsz or re-export at that size")
    if h % 32 or w % 32:
        raise TridentError(f"--onnx {path.name}: input {h}x{w} is not a multiple of 32; re-export it at a multiple of 32 (e.g. 416 or 640)")
    probe = _probe_outputs(path, proto, image.name, image.type.tensor_type.elem_type, (batch or 1, 3, h, w))
    return ForeignModel(
        path=path,
        proto=proto,
        input_name=image.name,
        input_dtype=image.type.tensor_type.elem_type,
        batch=batch,
        input_hw=(int(h), int(w)),
        outputs={name: tuple(int(d) for d in v.shape) for name, v in probe.items()},
        probe=probe,
        metadata={p.key: p.value for p in proto.metadata_props},
    )


def _probe_outputs(path: Path, proto: Any, input_name: str, dtype: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Outputs of one run on a blank image: the real shapes (exporters often leave them symbolic)."""
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(proto.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
        blank = np.zeros(shape, onnx.helper.tensor_dtype_to_np_dtype(dtype))
        values = session.run(None, {input_name: blank})
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TridentError(f"--onnx {path.name} does not run in ONNX Runtime ({first[:200]}); re-export it from its framework") from None
    return {o.name: np.asarray(v) for o, v in zip(session.get_outputs(), values)}


class GraphBuilder:
    """Nodes and constants of the pre-process and the decoding, each name unique under one prefix."""

    def __init__(self, prefix: str = "trident/") -> None:
        self.prefix, self.nodes, self.initializers, self._n = prefix, [], [], 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value: Any, hint: str = "const", dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        return self.const(list(values), hint, np.int64)

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        """Add one node with one output; returns the output's name (`out` for a graph output)."""
        from onnx import helper

        name = out or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=self._name(op_type), **attrs))
        return name

    def ops(self, op_type: str, inputs: Sequence[str], n_out: int, **attrs: Any) -> list[str]:
        from onnx import helper

        outs = [self._name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self._name(op_type), **attrs))
        return outs


def normalise_input(b: GraphBuilder, images: str, fm: ForeignModel, rgb: bool, mean: Sequence[float], std: Sequence[float]) -> str:
    """uint8 BGR [B,3,H,W] -> what the foreign network was trained on: (pixel[order] - mean) / std, its dtype."""
    from onnx import TensorProto

    x = b.op("Cast", images, to=TensorProto.FLOAT)
    if rgb:  # Trident feeds BGR (OpenCV's order); this network wants RGB
        x = b.op("Gather", x, b.ints([2, 1, 0], "rgb"), axis=1)
    if any(m != 0 for m in mean):
        x = b.op("Sub", x, b.const(np.asarray(mean, np.float32).reshape(1, 3, 1, 1), "mean"))
    x = b.op("Mul", x, b.const((1.0 / np.asarray(std, np.float32)).reshape(1, 3, 1, 1), "inv_std"))
    if fm.input_dtype != TensorProto.FLOAT:
        x = b.op("Cast", x, to=fm.input_dtype)
    return x


def as_float(b: GraphBuilder, tensor: str) -> str:
    """A foreign output in float32 whatever its dtype (an FP16 export's outputs are FP16)."""
    from onnx import TensorProto

    return b.op("Cast", tensor, to=TensorProto.FLOAT)


def foreign_tensor(name: str) -> str:
    """The name a foreign tensor has inside the wrapped graph."""
    return FOREIGN_PREFIX + name


def wrap_graph(
    fm: ForeignModel, pre: GraphBuilder, pre_out: str, post: GraphBuilder, outputs: dict[str, tuple[Any, ...]], spec: ModelSpec
) -> Any:
    """The foreign graph between Trident's input and Trident's outputs, with `spec` in its metadata.

    `pre` reads `images` and ends in `pre_out`, the tensor that replaces the
    foreign input; `post` reads foreign outputs (`foreign_tensor(name)`) and
    produces every Trident output; `outputs` maps each output name to its
    shape (ints or symbolic axis names). The two builders need distinct prefixes.
    """
    import onnx
    from onnx import TensorProto, compose, helper

    proto = onnx.ModelProto()
    proto.CopyFrom(fm.proto)
    default = next((o for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if default is None or default.version < MIN_OPSET:
        try:
            proto = onnx.version_converter.convert_version(proto, MIN_OPSET)
        except Exception as exc:
            raise TridentError(f"--onnx {fm.path.name} uses opset {default.version if default else '?'}; converting it to {MIN_OPSET} failed ({exc}); re-export with opset >= {MIN_OPSET}") from None
    proto = compose.add_prefix(proto, FOREIGN_PREFIX)
    graph = proto.graph
    foreign_in = foreign_tensor(fm.input_name)
    for node in list(graph.node):  # the foreign input is now produced by our pre-process
        for i, name in enumerate(node.input):
            if name == foreign_in:
                node.input[i] = pre_out
    kept_inputs = [i for i in graph.input if i.name != foreign_in]
    del graph.input[:]
    batch_dim = fm.batch if fm.batch is not None else "batch"
    graph.input.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [batch_dim, 3, *fm.input_hw]))
    graph.input.extend(kept_inputs)  # initialisers listed as inputs by old exporters
    foreign_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*pre.nodes, *foreign_nodes, *post.nodes])  # the checker wants topological order
    graph.initializer.extend([*pre.initializers, *post.initializers])
    del graph.output[:]
    for name in spec.output_names:
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(outputs[name])))
    graph.name = "trident_import"
    proto.producer_name, proto.producer_version = "trident import", ""
    del proto.metadata_props[:]
    for key, value in sorted(fm.metadata.items()):  # the foreign metadata stays, for provenance
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"foreign.{key}", value
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPEC_METADATA_KEY, spec.to_json()
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise TridentError(f"the wrapped graph of {fm.path.name} fails the ONNX checker ({str(exc).splitlines()[0][:200]}); please report it") from None
    return proto


def save_atomic(proto: Any, out: Path) -> Path:
    """Write the model so that a failed write never leaves half a file under `out`'s name."""
    import onnx

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TridentError(f"cannot create {out.parent}: {exc.strerror}") from None
    tmp = out.with_name(out.name + ".tmp")
    try:
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    except OSError as exc:
        raise TridentError(f"cannot write {out}: {exc.strerror}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


class LayoutMismatch(Exception):
    """A file's outputs are not the layout an importer reads; `import_model` turns it into one TridentError."""


def anchor_grid(input_hw: tuple[int, int], strides: Sequence[int], offset: float) -> tuple[np.ndarray, np.ndarray]:
    """(centres [A,2] x,y in input pixels, stride [A]) of every point of the levels, row-major per level.

    `offset` is where a point sits in its cell: 0.5 for Ultralytics-style
    centres, 0 for NanoDet's (col * stride, row * stride).
    """
    h, w = input_hw
    centres, per_point = [], []
    for s in strides:
        gh, gw = -(-h // s), -(-w // s)
        ys, xs = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij")
        centres.append(np.stack([(xs.ravel() + offset) * s, (ys.ravel() + offset) * s], 1))
        per_point.append(np.full(gh * gw, s, np.float32))
    return np.concatenate(centres), np.concatenate(per_point)


def level_points(input_hw: tuple[int, int], stride: int) -> int:
    h, w = input_hw
    return -(-h // stride) * -(-w // stride)
