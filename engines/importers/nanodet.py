"""NanoDet-style GFL heads -> Trident's outputs (boxes xyxy in input pixels, per-class scores).

Two output layouts are read, told apart by shape only (exporters name
tensors arbitrarily: the tf2onnx teacher's are `Identity_3:0` and the like):

- per level, two tensors `[B, N, C]` class scores and `[B, N, 4*(R+1)]` side
  distributions, N = the level's grid points (strides 8/16/32, ...);
- one tensor `[B, A, C + 4*(R+1)]`, the levels concatenated, scores first
  (NanoDet-Plus's own ONNX export).

Each side (left, top, right, bottom) is a distribution over R+1 bins: softmax,
expected bin index, times the level's stride = distance in input pixels from
the point at (col * stride, row * stride) - no half-cell offset, as NanoDet
places its priors. Scores are used as they are when the file already applies
the sigmoid (every value of a blank-image run lies in [0, 1]), else a Sigmoid
is added. The frame is resized to the input without letterbox (NanoDet trains
on plainly resized images), so the spec says `resize: stretch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.importers.graph import (
    ForeignModel,
    GraphBuilder,
    LayoutMismatch,
    anchor_grid,
    as_float,
    foreign_tensor,
    level_points,
    normalise_input,
    wrap_graph,
)
from engines.spec import INPUT_NAME, ModelSpec

# NanoDet's training normalisation, BGR order (its configs' img_norm_cfg)
MEAN = (103.53, 116.28, 123.675)
STD = (57.375, 57.12, 58.395)
STRIDES = (8, 16, 32, 64, 128)  # the levels a GFL head may have, finest first
LAYOUT = "nanodet: per level [B, N, classes] scores + [B, N, 4*(R+1)] distributions, or one [B, A, classes + 4*(R+1)]"


@dataclass(frozen=True)
class NanoDetLayout:
    strides: tuple[int, ...]  # finest first
    scores: tuple[str, ...]  # per-level score outputs (or the one joint output), finest first
    dists: tuple[str, ...]  # per-level distribution outputs; empty for the joint layout
    num_classes: int
    bins: int  # R + 1
    needs_sigmoid: bool


def match(fm: ForeignModel, names: tuple[str, ...] | None) -> NanoDetLayout:
    """The layout of `fm`'s outputs, or LayoutMismatch saying why it is not a NanoDet head.

    The class count (from --classes: NanoDet files carry no names) is what
    tells a level's score tensor from its distribution tensor.
    """
    if not names:
        raise LayoutMismatch("NanoDet files carry no class names; pass --classes names.txt (one name a line, in class-id order)")
    num_classes = len(names)
    shapes = fm.outputs
    if any(len(s) != 3 for s in shapes.values()):
        raise LayoutMismatch("every output of a NanoDet head is 3-D [B, points, channels]")
    by_points: dict[int, list[str]] = {}
    for name, shape in shapes.items():
        by_points.setdefault(shape[1], []).append(name)
    stride_of = {level_points(fm.input_hw, s): s for s in STRIDES}
    if len(shapes) == 1:
        return _match_joint(fm, next(iter(shapes)), num_classes, stride_of)
    levels = sorted(by_points, reverse=True)
    if any(n not in stride_of or len(by_points[n]) != 2 for n in levels):
        raise LayoutMismatch(
            f"the outputs must come in pairs with the point counts of a {fm.input_hw[0]}x{fm.input_hw[1]} input "
            f"(strides {', '.join(map(str, STRIDES))}: {', '.join(str(level_points(fm.input_hw, s)) for s in STRIDES)} points)"
        )
    strides = tuple(stride_of[n] for n in levels)
    if strides != STRIDES[: len(strides)]:
        raise LayoutMismatch(f"levels of strides {list(strides)} are not consecutive from stride 8")
    scores, dists, bins = [], [], set()
    for n in levels:
        a, b = by_points[n]
        ca, cb = shapes[a][2], shapes[b][2]
        if ca == num_classes and cb != num_classes:
            score, dist = a, b
        elif cb == num_classes and ca != num_classes:
            score, dist = b, a
        elif ca == cb == num_classes:
            raise LayoutMismatch(f"both outputs of the level with {n} points have {num_classes} channels; scores and distributions cannot be told apart")
        else:
            raise LayoutMismatch(f"--classes lists {num_classes} names but the level with {n} points has outputs of {ca} and {cb} channels; the class list belongs to another model")
        if shapes[dist][2] % 4 or shapes[dist][2] < 8:
            raise LayoutMismatch(f"distribution output {dist} has {shapes[dist][2]} channels, not 4 sides x R+1 bins")
        scores.append(score)
        dists.append(dist)
        bins.add(shapes[dist][2] // 4)
    if len(bins) != 1:
        raise LayoutMismatch(f"the levels have different bin counts {sorted(bins)}")
    return NanoDetLayout(strides, tuple(scores), tuple(dists), num_classes, bins.pop(), _needs_sigmoid(fm, scores, num_classes))


def _match_joint(fm: ForeignModel, name: str, num_classes: int, stride_of: dict[int, int]) -> NanoDetLayout:
    _, points, channels = fm.outputs[name]
    total, strides = 0, []
    for s in STRIDES:  # the levels are a prefix of STRIDES whose points add up to the output's
        total += level_points(fm.input_hw, s)
        strides.append(s)
        if total >= points:
            break
    if total != points:
        raise LayoutMismatch(f"{points} points is no sum of the grid sizes of a {fm.input_hw[0]}x{fm.input_hw[1]} input at strides 8, 16, 32, ...")
    rest = channels - num_classes
    if rest < 8 or rest % 4:
        raise LayoutMismatch(f"--classes lists {num_classes} names, leaving {rest} of the {channels} channels for 4 sides x R+1 bins")
    return NanoDetLayout(tuple(strides), (name,), (), num_classes, rest // 4, _needs_sigmoid(fm, [name], num_classes))


def _needs_sigmoid(fm: ForeignModel, score_outputs: list[str], num_classes: int) -> bool:
    # a sigmoid's output is never outside [0, 1]; logits on a blank image are (strongly negative) outside it
    values = np.concatenate([fm.probe[n][..., :num_classes].ravel() for n in score_outputs])
    return bool(values.size and (values.min() < 0.0 or values.max() > 1.0))


def build(fm: ForeignModel, layout: NanoDetLayout, class_names: tuple[str, ...]):
    """(wrapped ModelProto, ModelSpec) of a NanoDet file."""
    pre = GraphBuilder("trident/pre/")
    pre_out = normalise_input(pre, INPUT_NAME, fm, rgb=False, mean=MEAN, std=STD)
    b = GraphBuilder("trident/post/")
    c, bins = layout.num_classes, layout.bins
    if layout.dists:
        scores = b.op("Concat", *[as_float(b, foreign_tensor(n)) for n in layout.scores], axis=1)
        dists = b.op("Concat", *[as_float(b, foreign_tensor(n)) for n in layout.dists], axis=1)
    else:
        joint = as_float(b, foreign_tensor(layout.scores[0]))
        scores, dists = b.ops("Split", [joint, b.ints([c, 4 * bins], "split")], 2, axis=2)
    if layout.needs_sigmoid:
        scores = b.op("Sigmoid", scores)
    scores = b.op("Identity", scores, out="scores")
    # expected bin of each side: softmax over the bins, dot with 0..R; times the point's stride
    sides = b.op("Softmax", b.op("Reshape", dists, b.ints([0, -1, 4, bins], "sides")), axis=-1)
    expect = b.op("MatMul", sides, b.const(np.arange(bins, dtype=np.float32).reshape(bins, 1), "bins"))
    centres, strides = anchor_grid(fm.input_hw, layout.strides, offset=0.0)
    dist = b.op("Mul", b.op("Reshape", expect, b.ints([0, -1, 4], "ltrb")), b.const(strides[:, None], "strides"))
    # (cx - l, cy - t, cx + r, cy + b)
    signed = b.op("Mul", dist, b.const(np.array([-1, -1, 1, 1], np.float32), "signs"))
    b.op("Add", b.const(np.concatenate([centres, centres], 1), "centres"), signed, out="boxes")
    anchors = len(strides)
    batch = fm.batch if fm.batch is not None else "batch"
    spec = ModelSpec(
        input_hw=fm.input_hw,
        class_names=class_names,
        output_names=("boxes", "scores"),
        batch_range=(fm.batch, fm.batch, fm.batch) if fm.batch is not None else (1, 1, 8),
        source=fm.path.name,
        extra={"imported": "nanodet", "strides": list(layout.strides), "bins": bins},
        resize="stretch",
    )
    proto = wrap_graph(fm, pre, pre_out, b, {"boxes": (batch, anchors, 4), "scores": (batch, anchors, c)}, spec)
    return proto, spec
