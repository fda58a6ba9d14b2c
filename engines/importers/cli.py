"""`trident import`: wrap a foreign detector ONNX into a Trident ONNX (needs onnx and ONNX Runtime only)."""

from __future__ import annotations

import argparse

from pipeline.config_files import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import",
        help="wrap a foreign detector ONNX (Ultralytics YOLO, NanoDet) into a Trident ONNX",
        description="Wrap a foreign detector ONNX into a Trident ONNX: uint8 BGR input with the foreign "
        "normalisation inside the graph, the head decoded inside the graph to boxes/scores(/masks), and "
        "a ModelSpec in its metadata, so run, bench, eval, build-engine and INT8 export take it unchanged.",
    )
    p.add_argument("--onnx", required=True, help="the foreign .onnx file")
    p.add_argument("--format", required=True, metavar="{ultralytics,nanodet}", help="the layout of its outputs")
    p.add_argument("--out", required=True, help="the Trident .onnx to write")
    p.add_argument("--classes", default=None, help="class names, one a line in class-id order (default: the file's own metadata)")
    p.add_argument("--imgsz", type=positive_int, nargs=2, metavar=("H", "W"), default=None, help="input size, only for files with a dynamic input size")
    p.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    from engines.importers import import_model

    spec = import_model(args.onnx, args.format, args.out, classes=args.classes, imgsz=tuple(args.imgsz) if args.imgsz else None)
    lo, _, hi = spec.batch_range
    heads = "boxes + masks" if spec.has_masks else "boxes"
    print(
        f"wrote {args.out}: {args.format} {heads}, {len(spec.class_names)} classes, input {spec.input_hw[0]}x{spec.input_hw[1]} "
        f"({spec.resize}), batch {lo}..{hi}"
    )
    return 0
