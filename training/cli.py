"""`trident train`, `trident export` (checkpoint -> ONNX) and `trident eval` (metrics on a dataset split).

The commands that need the model definition or the datasets live here, with them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.config_files import positive_int
from pipeline.errors import TridentError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the multi-task network (CPU, one GPU, or DDP under torchrun)",
        description="Train from a YAML/TOML config; any field can be overridden as key.sub=value "
        "(e.g. epochs=5 model.size=s data.synthetic=data/synth).",
    )
    p.add_argument("--config", default=None, help="YAML or TOML TrainConfig (see training/configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from training.config import load_train_config
    from training.train import train

    cfg = load_train_config(args.config, args.overrides)
    result = train(cfg, progress=not args.no_progress)
    summary = {
        "best": str(result.best) if result.best else None,
        "last": str(result.last),
        "seconds": round(result.seconds, 1),
        "best_metrics": {k: result.best_metrics.get(k) for k in ("box_map", "box_map50", "mask_map", "mask_map50", "miou")},
    }
    print(json.dumps(summary, indent=2))
    return 0


def register_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a checkpoint to ONNX (dynamic batch, model spec inside)")
    p.add_argument("--weights", required=True, help="checkpoint (.pt) from `trident train`, or a Trident .onnx (e.g. from `trident import`) to quantize with --int8")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--imgsz", type=positive_int, nargs=2, metavar=("H", "W"), default=None, help="input size (default: the training size)")
    p.add_argument("--batch-range", type=positive_int, nargs=2, metavar=("MIN", "MAX"), default=(1, 8))
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--fixed-hw", action="store_true",
                   help="a graph for --imgsz only (default: dynamic height/width, so ONNX Runtime and OpenVINO run other camera aspects at their own multiple-of-32 size)")
    p.add_argument("--fp16", action="store_true", help="FP16 weights (FP32/uint8 I/O)")
    p.add_argument("--int8", action="store_true", help="INT8 (QDQ) for ONNX Runtime on the CPU, calibrated on --calib-data")
    p.add_argument("--calib-data", default=None, help="folder of images for --int8 (default: rendered synthetic scenes)")
    p.add_argument("--calib-images", type=positive_int, default=64)
    p.add_argument("--triton-repo", default=None, metavar="DIR", help="also write a Triton model repository DIR/<name>/ (see `trident triton-repo`)")
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from training.export import export_checkpoint, export_int8

    if Path(args.weights).suffix.lower() == ".onnx":
        return _quantize_onnx(args)
    if args.int8 and args.fp16:
        raise TridentError("--int8 and --fp16 exclude each other; pick one")
    out = Path(args.out)
    frames = None
    if args.int8:  # calibration images first: a bad folder fails before anything is written
        from engines.calibration import list_calibration_images, read_calibration_image
        from training.export import synthetic_calibration_frames

        if args.calib_data:
            frames = [read_calibration_image(p) for p in list_calibration_images(Path(args.calib_data), args.calib_images)]
        else:
            frames = synthetic_calibration_frames(tuple(args.imgsz) if args.imgsz else (384, 640), args.calib_images)
    options = dict(input_hw=tuple(args.imgsz) if args.imgsz else None, batch_range=tuple(args.batch_range), opset=args.opset, dynamic_hw=not args.fixed_hw)
    if frames is not None:
        export_int8(args.weights, out, frames, **options)
    else:
        export_checkpoint(args.weights, out, fp16=args.fp16, **options)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if args.triton_repo:
        from engines.triton_cli import write_default_repository

        print(write_default_repository(out, args.triton_repo))
    return 0


def _quantize_onnx(args: argparse.Namespace) -> int:
    """A Trident ONNX in (an imported detector has no checkpoint): the one thing left to do to it is INT8."""
    from engines.calibration import list_calibration_images, read_calibration_image
    from engines.quantize import quantize_int8
    from engines.spec import read_onnx_spec

    name = Path(args.weights).name
    if not args.int8 or args.fp16:
        raise TridentError(f"--weights {name} is already an ONNX file; pass --int8 --calib-data DIR to quantize it, or the .pt checkpoint to export")
    if not args.calib_data:
        raise TridentError(f"--int8 of {name} needs --calib-data: a folder of frames like those it will see (synthetic scenes only suit the bundled model)")
    if not Path(args.weights).exists():
        raise TridentError(f"--weights {args.weights} does not exist; pass the .onnx written by `trident import` or `trident export`")
    read_onnx_spec(args.weights)  # a truncated or foreign (not yet imported) file is one clear error here
    frames = [read_calibration_image(p) for p in list_calibration_images(Path(args.calib_data), args.calib_images)]
    out = quantize_int8(args.weights, Path(args.out), frames)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, INT8 of {name})")
    return 0


def register_eval(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="box/mask mAP, semantic mIoU and P/R/F1 of a model on a dataset split")
    p.add_argument("--weights", required=True, help=".pt checkpoint, or an .onnx/.engine file")
    p.add_argument("--data", required=True, help="`trident synth` folder (dataset.yaml)")
    p.add_argument("--split", default="val")
    p.add_argument("--batch", type=positive_int, default=4)
    p.add_argument("--score-threshold", type=float, default=0.5, help="for precision/recall/F1 (mAP uses all scores)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write all numbers here")
    p.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from engines.loader import load_engine
    from training.data import SyntheticVideoDataset, collate, eval_transforms
    from training.evaluate import evaluate
    from training.validate import predict

    engine = load_engine(args.weights, device=args.device)
    spec = engine.spec
    # evaluated at the nominal input_hw, also for a dynamic_hw (rect) model: the numbers are those of one
    # fixed input (for the synthetic 640x384 frames rect inference picks that size anyway)
    dataset = SyntheticVideoDataset(args.data, args.split, transforms=eval_transforms(tuple(spec.input_hw), spec.resize))
    lo, _, hi = spec.batch_range
    loader = DataLoader(dataset, batch_size=max(lo, min(args.batch, hi)), shuffle=False, collate_fn=collate)
    dets, sem_pred, sem_gt = predict(engine.infer, tqdm(loader, desc="eval", unit="batch"), spec)
    ids = sorted(dets)
    result = evaluate(
        dataset.annotation_file if spec.class_names else None,
        dets if spec.class_names else None,
        semantic_predictions=[sem_pred[i] for i in ids if i in sem_pred] or None,
        semantic_targets=[sem_gt[i] for i in ids if i in sem_pred] or None,
        semantic_class_names=spec.sem_class_names,
        score_threshold=args.score_threshold,
        category_ids=dataset.category_ids,
        image_ids=ids,
    )
    print(result.format_table())
    if args.json:
        Path(args.json).write_text(result.to_json())
    return 0
