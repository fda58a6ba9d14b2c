"""`trident export`, `trident build-engine`, `trident bench` and `trident eval`."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import TridentError


def _pos_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a checkpoint to ONNX (dynamic batch, model spec inside)")
    p.add_argument("--weights", required=True, help="checkpoint (.pt) from `trident train`")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--imgsz", type=_pos_int, nargs=2, metavar=("H", "W"), default=None, help="input size (default: the training size)")
    p.add_argument("--batch-range", type=_pos_int, nargs=2, metavar=("MIN", "MAX"), default=(1, 8))
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--fp16", action="store_true", help="FP16 weights (FP32/uint8 I/O)")
    p.add_argument("--int8", action="store_true", help="INT8 (QDQ) for ONNX Runtime on the CPU, calibrated on --calib-data")
    p.add_argument("--calib-data", default=None, help="folder of images for --int8 (default: rendered synthetic scenes)")
    p.add_argument("--calib-images", type=_pos_int, default=64)
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from engines.export import export_checkpoint

    if args.int8 and args.fp16:
        raise TridentError("--int8 and --fp16 exclude each other; pick one")
    out = Path(args.out)
    frames = None
    if args.int8:  # calibration images first: a bad folder fails before anything is written
        from engines.calibration import list_calibration_images, read_calibration_image
        from engines.quantize import synthetic_calibration_frames

        if args.calib_data:
            frames = [read_calibration_image(p) for p in list_calibration_images(Path(args.calib_data), args.calib_images)]
        else:
            frames = synthetic_calibration_frames(tuple(args.imgsz) if args.imgsz else (384, 640), args.calib_images)
    target = out.with_name(out.stem + ".fp32.onnx") if args.int8 else out
    export_checkpoint(args.weights, target, input_hw=tuple(args.imgsz) if args.imgsz else None, batch_range=tuple(args.batch_range), opset=args.opset, fp16=args.fp16)
    if frames is not None:
        from engines.quantize import quantize_int8

        quantize_int8(target, out, frames)
        target.unlink()
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def register_build_engine(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build-engine", help="compile an ONNX model to a TensorRT engine (FP32/FP16/INT8)")
    p.add_argument("--onnx", required=True)
    p.add_argument("--out", required=True, help="output .engine/.plan (a .json sidecar is written next to it)")
    p.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "int8"))
    p.add_argument("--calib-data", default=None, help="folder of images for INT8 calibration")
    p.add_argument("--calib-images", type=_pos_int, default=256)
    p.add_argument("--batch-range", type=_pos_int, nargs=3, metavar=("MIN", "OPT", "MAX"), default=(1, 4, 8))
    p.add_argument("--workspace-gb", type=float, default=2.0)
    p.add_argument("--cache-dir", default=None, help="engine/timing/calibration cache folder")
    p.add_argument("--dla-core", type=int, default=None, help="Jetson: build for this DLA core (GPU fallback on)")
    p.set_defaults(handler=_build_engine)


def _build_engine(args: argparse.Namespace) -> int:
    import importlib.util

    from engines.tensorrt_build import BuildConfig, build_engine

    cfg = BuildConfig(
        precision=args.precision,
        batch_range=tuple(args.batch_range),
        workspace_gb=args.workspace_gb,
        calib_data=Path(args.calib_data) if args.calib_data else None,
        calib_images=args.calib_images,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        dla_core=args.dla_core,
    )
    if not Path(args.onnx).exists():
        raise TridentError(f"--onnx {args.onnx} does not exist; export one with `trident export`")
    if importlib.util.find_spec("tensorrt") is None:
        raise TridentError("building engines needs TensorRT: pip install 'trident-vision[tensorrt]' on x86_64 with CUDA, or JetPack's TensorRT on Jetson")
    out = build_engine(Path(args.onnx), Path(args.out), cfg)
    print(f"wrote {out} and {out.name}.json")
    return 0


def register_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="latency/throughput of preprocess, infer and postprocess")
    p.add_argument("--model", required=True, help=".onnx, .engine/.plan or .pt")
    p.add_argument("--engine", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"), help="must match the file type; auto picks by suffix")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--frame-size", type=_pos_int, nargs=2, metavar=("H", "W"), default=(384, 640), help="size of the decoded frames fed in")
    p.add_argument("--batch", type=_pos_int, default=1)
    p.add_argument("--iters", type=_pos_int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = all usable cores)")
    p.add_argument("--compile", action="store_true", help="torch engine: torch.compile")
    p.add_argument("--half", action="store_true", help="torch engine: FP16 autocast (CUDA)")
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.set_defaults(handler=_bench)


_SUFFIX_ENGINE = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".pt": "torch", ".pth": "torch"}


def _bench(args: argparse.Namespace) -> int:
    from engines.base import load_engine
    from engines.bench import format_bench, run_bench, sample_frames, write_json

    kind = _SUFFIX_ENGINE.get(Path(args.model).suffix.lower())
    if args.engine != "auto" and kind != args.engine:
        raise TridentError(f"--engine {args.engine} cannot run {Path(args.model).name}; pass a {'.onnx' if args.engine == 'onnxruntime' else '.engine' if args.engine == 'tensorrt' else '.pt'} file")
    options = {}
    if kind == "onnxruntime" and args.threads:
        options["threads"] = args.threads
    if kind == "torch":
        options.update(compile=args.compile, half=args.half)
    engine = load_engine(args.model, device=args.device, **options) if kind != "tensorrt" else load_engine(args.model)
    engine.spec.check_batch(args.batch)
    on_gpu = str(getattr(engine, "device", "cpu")).startswith("cuda")
    frames = sample_frames(tuple(args.frame_size), max(8, args.batch))
    result = run_bench(engine, frames, args.batch, args.iters, args.warmup, "cuda" if on_gpu else "cpu")
    print(format_bench(result))
    if args.json:
        write_json(result, args.json)
    return 0


def register_eval(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="box/mask mAP, semantic mIoU and P/R/F1 of a model on a dataset split")
    p.add_argument("--weights", required=True, help=".pt checkpoint, or an .onnx/.engine file")
    p.add_argument("--data", required=True, help="`trident synth` folder (dataset.yaml)")
    p.add_argument("--split", default="val")
    p.add_argument("--batch", type=_pos_int, default=4)
    p.add_argument("--score-threshold", type=float, default=0.5, help="for precision/recall/F1 (mAP uses all scores)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write all numbers here")
    p.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from engines.base import load_engine
    from training.data import SyntheticVideoDataset, collate, eval_transforms
    from training.evaluate import evaluate
    from training.validate import predict

    engine = load_engine(args.weights, device=args.device)
    spec = engine.spec
    dataset = SyntheticVideoDataset(args.data, args.split, transforms=eval_transforms(tuple(spec.input_hw)))
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
