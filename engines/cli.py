"""`trident build-engine`: the one command that needs nothing but an ONNX file and TensorRT.

`export` and `eval` need the model definition or the datasets and are
registered by `training`; `bench` needs sample frames and is registered by
`pipeline`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config_files import positive_int
from pipeline.errors import TridentError


def register_build_engine(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build-engine", help="compile an ONNX model to a TensorRT engine (FP32/FP16/INT8)")
    p.add_argument("--onnx", required=True)
    p.add_argument("--out", required=True, help="output .engine/.plan (a .json sidecar is written next to it)")
    p.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "int8"))
    p.add_argument("--calib-data", default=None, help="folder of images for INT8 calibration")
    p.add_argument("--calib-images", type=positive_int, default=256)
    p.add_argument("--batch-range", type=positive_int, nargs=3, metavar=("MIN", "OPT", "MAX"), default=None,
                   help="optimisation profile (default 1 4 8; a model with a fixed batch, e.g. an imported NanoDet, gets its own)")
    p.add_argument("--workspace-gb", type=float, default=2.0)
    p.add_argument("--cache-dir", default=None, help="engine/timing/calibration cache folder")
    p.add_argument("--dla-core", type=int, default=None, help="Jetson: build for this DLA core (GPU fallback on)")
    p.set_defaults(handler=_build_engine)


def _build_engine(args: argparse.Namespace) -> int:
    import importlib.util

    from engines.tensorrt_build import BuildConfig, build_engine

    if not Path(args.onnx).exists():
        raise TridentError(f"--onnx {args.onnx} does not exist; export one with `trident export`")
    cfg = BuildConfig(
        precision=args.precision,
        batch_range=_batch_range(Path(args.onnx), args.batch_range),
        workspace_gb=args.workspace_gb,
        calib_data=Path(args.calib_data) if args.calib_data else None,
        calib_images=args.calib_images,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        dla_core=args.dla_core,
    )
    if importlib.util.find_spec("tensorrt") is None:
        raise TridentError("building engines needs TensorRT: pip install 'trident-vision[tensorrt]' on x86_64 with CUDA, or JetPack's TensorRT on Jetson")
    out = build_engine(Path(args.onnx), Path(args.out), cfg)
    print(f"wrote {out} and {out.name}.json")
    return 0


def _batch_range(onnx_path: Path, asked: list[int] | None) -> tuple[int, int, int]:
    """The profile to build: --batch-range, else 1 4 8, except that a graph with a fixed batch axis gets that batch.

    TensorRT refuses a profile outside a fixed input axis with a message about
    dimensions; naming the batch the file takes is the clearer refusal.
    """
    import onnx

    from engines.spec import INPUT_NAME

    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise TridentError(f"{onnx_path.name} is not a readable ONNX file ({type(exc).__name__}); re-export it") from None
    fixed = None
    for i in proto.graph.input:
        dim = i.type.tensor_type.shape.dim[0] if i.name == INPUT_NAME and i.type.tensor_type.shape.dim else None
        if dim is not None and dim.HasField("dim_value") and dim.dim_value > 0:
            fixed = int(dim.dim_value)
    if fixed is None:
        return tuple(asked) if asked else (1, 4, 8)
    if asked and tuple(asked) != (fixed,) * 3:
        raise TridentError(f"{onnx_path.name} takes a fixed batch of {fixed}; pass --batch-range {fixed} {fixed} {fixed} (or leave it out)")
    return (fixed,) * 3
