"""Export a trained MultiTaskNet to ONNX: dynamic batch, named outputs, ModelSpec in the metadata.

Exporting needs the model definition, so it lives in `training/`; everything
after the ONNX file (ONNX Runtime, INT8 quantization, TensorRT) is in
`engines/`, which never imports training.

The exported graph is `export_forward`: uint8 BGR images in (normalisation
inside), decoded boxes, class scores, mask coefficients, prototypes and
semantic logits out. BatchNorms are folded first. The file is checked with
the ONNX checker and shape inference before it is written, and written
atomically, so a failed export never leaves a half file behind.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

from engines.spec import INPUT_NAME, SPEC_METADATA_KEY, ModelSpec
from pipeline.errors import TridentError

DEFAULT_OPSET = 17


def spec_from_model_config(
    cfg: Any,
    output_names: tuple[str, ...],
    input_hw: tuple[int, int] | None = None,
    batch_range: tuple[int, int, int] = (1, 1, 8),
    precision: str = "fp32",
    source: str = "",
    dynamic_hw: bool = False,
) -> ModelSpec:
    """The one ModelSpec of a ModelConfig: export, the eager engine and validation all use it."""
    return ModelSpec(
        input_hw=tuple(input_hw or cfg.input_hw),
        class_names=tuple(cfg.class_names) if "det" in cfg.heads else (),
        sem_class_names=tuple(cfg.sem_class_names) if "sem" in cfg.heads else (),
        output_names=tuple(output_names),
        batch_range=tuple(batch_range),
        num_protos=cfg.num_protos if "inst" in cfg.heads else 0,
        precision=precision,
        source=source,
        dynamic_hw=dynamic_hw,
    )


def export_onnx(
    model: Any,
    cfg: Any,
    out: str | Path,
    input_hw: tuple[int, int] | None = None,
    batch_range: tuple[int, int] = (1, 8),
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    source: str = "",
    dynamic_hw: bool = True,
) -> Path:
    """Write `out` (.onnx) from a MultiTaskNet and its ModelConfig; returns the path.

    dynamic_hw (default): the graph's height/width axes are symbolic, so ONNX Runtime and OpenVINO
    can run a frame of another aspect at its own multiple-of-32 size up to `input_hw` ("rect"
    inference, engines.preprocess.batch_input_hw) instead of paying for letterbox padding; the
    spec says so. False writes the fixed-size graph (what TensorRT and Triton get built for anyway).
    """
    import onnx
    import torch

    from training.model.multitask import ExportWrapper

    out = Path(out)
    if opset < 17:
        raise TridentError(f"--opset must be >= 17 (LayerNorm/Resize semantics the model relies on), got {opset}")
    lo, hi = batch_range
    if not 1 <= lo <= hi:
        raise TridentError(f"--batch-range must be MIN MAX with 1 <= MIN <= MAX, got {lo} {hi}")
    hw = tuple(input_hw or cfg.input_hw)
    if hw[0] % 32 or hw[1] % 32 or min(hw) <= 0:
        raise TridentError(f"--imgsz must be positive multiples of 32, got {hw[0]} {hw[1]}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TridentError(f"cannot create {out.parent}: {exc.strerror}") from None
    net = copy.deepcopy(model).cpu().eval()
    if hasattr(net, "fuse"):
        net.fuse()
    wrapper = ExportWrapper(net).eval()
    names = list(net.output_names)
    dummy = torch.zeros((max(lo, min(2, hi)), 3, *hw), dtype=torch.uint8)
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes are not for users
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes=_dynamic_axes(names, dynamic_hw),
            do_constant_folding=True,
        )
    try:
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        if fp16:
            proto = _to_fp16(proto)
        spec = spec_from_model_config(cfg, tuple(names), hw, (lo, lo, hi), "fp16" if fp16 else "fp32", source, dynamic_hw)
        entry = proto.metadata_props.add()
        entry.key, entry.value = SPEC_METADATA_KEY, spec.to_json()
        proto.producer_name = "trident"
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _dynamic_axes(names: list[str], dynamic_hw: bool) -> dict[str, dict[int, str]]:
    """Symbolic axes of the graph: the batch always; with dynamic_hw also the input's height/width,
    the anchor axis of the per-anchor outputs (it counts the cells of the three levels) and the
    stride-4 maps' height/width."""
    if not dynamic_hw:
        return {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}}
    per_output = {
        "boxes": {0: "batch", 1: "anchors"},
        "scores": {0: "batch", 1: "anchors"},
        "mask_coeffs": {0: "batch", 1: "anchors"},
        "protos": {0: "batch", 2: "height_4", 3: "width_4"},
        "sem_logits": {0: "batch", 2: "height_4", 3: "width_4"},
    }
    return {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, **{n: per_output.get(n, {0: "batch"}) for n in names}}


def _to_fp16(proto: Any) -> Any:
    """FP16 weights and math, FP32/uint8 I/O (callers and the post-process keep their types)."""
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        raise TridentError("--fp16 needs onnxruntime's transformer tools (pip install onnxruntime); or export FP32 and let TensorRT pick FP16") from None
    return convert_float_to_float16(proto, keep_io_types=True)


def export_checkpoint(weights: str | Path, out: str | Path, **kwargs: Any) -> Path:
    """Checkpoint (.pt) -> ONNX; the CLI's `trident export`."""
    from training.model.checkpoint import load_model

    model, cfg, _ = load_model(weights)
    return export_onnx(model, cfg, out, source=Path(weights).name, **kwargs)


def synthetic_calibration_frames(input_hw: tuple[int, int], count: int = 32, seed: int = 5) -> list:
    """Rendered street scenes at the input size: INT8 calibration for models trained on the synthetic data."""
    from training.synthetic.scene import sample_frames

    return sample_frames(tuple(input_hw), count, seed=seed)


def export_int8(weights: str | Path, out: str | Path, frames: list, **kwargs: Any) -> Path:
    """Checkpoint -> FP32 ONNX next to `out` -> INT8 (QDQ) `out` calibrated on `frames`; the FP32 file is removed."""
    from engines.quantize import quantize_int8

    out = Path(out)
    fp32 = out.with_name(out.stem + ".fp32.onnx")
    try:
        export_checkpoint(weights, fp32, **kwargs)
        return quantize_int8(fp32, out, frames)
    finally:
        if fp32.exists():
            fp32.unlink()
