"""Ultralytics YOLOv8 / YOLO11 detect and segment exports -> Trident's outputs.

Read from the file format only (Ultralytics is AGPL: no code of it is used or
needed). The export has one output `[B, 4 + nc (+ nm), A]`: per anchor the
box as centre-x, centre-y, width, height in input pixels, nc class scores
already through the sigmoid, and for segment models nm mask coefficients; a
segment model has a second output, prototypes `[B, nm, H/4, W/4]`. A is the
point count of strides 8/16/32. Inside the wrapped graph the input is
reordered BGR -> RGB and scaled by 1/255 (how Ultralytics trains), the boxes
become xyxy, and the coefficients and prototypes pass through: Trident's mask
assembly (sigmoid of coefficients x prototypes, inside the box) is the same
maths. Frames are letterboxed with grey 114, as Ultralytics does, so the spec
keeps Trident's own `resize: letterbox`. Class names come from the file's
`names` metadata (a Python dict literal such as "{0: 'person', 1: 'bicycle'}").
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np

from engines.importers.graph import ForeignModel, GraphBuilder, LayoutMismatch, as_float, foreign_tensor, level_points, normalise_input, wrap_graph
from engines.spec import INPUT_NAME, ModelSpec

STRIDES = (8, 16, 32)  # P3-P5, the detect head of YOLOv8 and YOLO11
PROTO_STRIDE = 4
LAYOUT = "ultralytics: one [B, 4+classes(+32), anchors] output (centre-xywh), plus [B, 32, H/4, W/4] prototypes for segment"


@dataclass(frozen=True)
class UltralyticsLayout:
    preds: str  # the [B, 4+nc(+nm), A] output
    channels_first: bool  # False for a [B, A, 4+nc(+nm)] variant of the same layout
    protos: str | None
    num_classes: int
    num_masks: int
    anchors: int
    class_names: tuple[str, ...]  # from the file's metadata; empty when it has none


def names_from_metadata(metadata: dict[str, str]) -> tuple[str, ...]:
    """Class names of an Ultralytics export's `names` property; () when absent or unreadable."""
    text = metadata.get("names")
    if not text:
        return ()
    try:
        value = ast.literal_eval(text)  # a literal, never code: literal_eval evaluates no names or calls
    except (ValueError, SyntaxError):
        return ()
    if isinstance(value, dict) and all(isinstance(k, int) for k in value):
        keys = sorted(value)
        if keys != list(range(len(keys))):
            return ()
        return tuple(str(value[k]) for k in keys)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return ()


def match(fm: ForeignModel, names: tuple[str, ...] | None) -> UltralyticsLayout:
    """The layout of `fm`'s outputs, or LayoutMismatch saying why it is not an Ultralytics export."""
    h, w = fm.input_hw
    anchors = sum(level_points(fm.input_hw, s) for s in STRIDES)
    shapes = fm.outputs
    three = [n for n, s in shapes.items() if len(s) == 3]
    four = [n for n, s in shapes.items() if len(s) == 4]
    if len(three) != 1 or len(four) > 1 or len(shapes) != len(three) + len(four):
        raise LayoutMismatch("expected one 3-D prediction output, plus one 4-D prototype output for a segment model")
    preds = three[0]
    _, a1, a2 = shapes[preds]
    if a2 == anchors:
        channels, channels_first = a1, True
    elif a1 == anchors:
        channels, channels_first = a2, False
    else:
        raise LayoutMismatch(f"the prediction output has no axis of {anchors} anchors (strides 8/16/32 of a {h}x{w} input)")
    protos, num_masks = None, 0
    if four:
        protos = four[0]
        pb, num_masks, ph, pw = shapes[protos]
        if (ph, pw) != (h // PROTO_STRIDE, w // PROTO_STRIDE):
            raise LayoutMismatch(f"prototypes {protos} are {ph}x{pw}, not 1/4 of the {h}x{w} input")
    num_classes = channels - 4 - num_masks
    if num_classes < 1:
        raise LayoutMismatch(f"{channels} channels leave no class scores after 4 box values and {num_masks} mask coefficients")
    own = names_from_metadata(fm.metadata)
    given = names or own
    if given and len(given) != num_classes:
        source = "--classes" if names else "the file's 'names' metadata"
        raise LayoutMismatch(f"{source} lists {len(given)} names but the predictions have {num_classes} class scores; the class list belongs to another model")
    return UltralyticsLayout(preds, channels_first, protos, num_classes, num_masks, anchors, own)


def build(fm: ForeignModel, layout: UltralyticsLayout, class_names: tuple[str, ...]):
    """(wrapped ModelProto, ModelSpec) of an Ultralytics file."""
    pre = GraphBuilder("trident/pre/")
    pre_out = normalise_input(pre, INPUT_NAME, fm, rgb=True, mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0))
    b = GraphBuilder("trident/post/")
    preds = as_float(b, foreign_tensor(layout.preds))
    if layout.channels_first:
        preds = b.op("Transpose", preds, perm=[0, 2, 1])  # [B, A, 4+nc+nm]
    nc, nm = layout.num_classes, layout.num_masks
    parts = b.ops("Split", [preds, b.ints([4, nc, nm] if nm else [4, nc], "split")], 3 if nm else 2, axis=2)
    # (cx, cy, w, h) @ M = (cx - w/2, cy - h/2, cx + w/2, cy + h/2)
    to_xyxy = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], np.float32)
    b.op("MatMul", parts[0], b.const(to_xyxy, "xyxy"), out="boxes")
    b.op("Identity", parts[1], out="scores")
    batch = fm.batch if fm.batch is not None else "batch"
    shapes = {"boxes": (batch, layout.anchors, 4), "scores": (batch, layout.anchors, nc)}
    names = ("boxes", "scores")
    if nm:
        b.op("Identity", parts[2], out="mask_coeffs")
        b.op("Identity", as_float(b, foreign_tensor(layout.protos)), out="protos")
        h, w = fm.input_hw
        shapes.update(mask_coeffs=(batch, layout.anchors, nm), protos=(batch, nm, h // PROTO_STRIDE, w // PROTO_STRIDE))
        names += ("mask_coeffs", "protos")
    spec = ModelSpec(
        input_hw=fm.input_hw,
        class_names=class_names,
        output_names=names,
        batch_range=(fm.batch, fm.batch, fm.batch) if fm.batch is not None else (1, 1, 8),
        num_protos=nm,
        source=fm.path.name,
        extra={"imported": "ultralytics", "task": "segment" if nm else "detect"},
        resize="letterbox",
    )
    return wrap_graph(fm, pre, pre_out, b, shapes, spec), spec
