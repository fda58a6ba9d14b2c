"""`trident bench`: latency percentiles and throughput of preprocess, infer and postprocess, on real frames.

The frames come from a video (the bundled demo clip by default, or your own
footage with `--video`), so the post-process sees the detection counts a
real stream gives. It lives in `pipeline` because it reads the bundled clip;
the timing loop itself is `engines.bench.run_bench`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.config_files import positive_int
from pipeline.errors import TridentError
from pipeline.sources.decode import to_bgr

MAX_DECODED = 300  # frames read from the start of the video; the sample is spread over them


def video_frames(video: str | Path, count: int, frame_hw: tuple[int, int] | None = None) -> list[np.ndarray]:
    """`count` BGR frames spread over the first MAX_DECODED frames of `video`, optionally resized to frame_hw."""
    import av
    import cv2

    video = Path(video)
    if not video.is_file():
        raise TridentError(f"--video {video} does not exist; pass a video file (mp4, mkv, avi, ...)")
    decoded: list[np.ndarray] = []
    try:
        with av.open(str(video)) as container:
            for frame in container.decode(video=0):
                decoded.append(to_bgr(frame))
                if len(decoded) >= MAX_DECODED:
                    break
    except (av.error.FFmpegError, ValueError) as exc:
        if not decoded:
            raise TridentError(f"--video {video} cannot be decoded ({type(exc).__name__}); pass a playable video file") from None
    if not decoded:
        raise TridentError(f"--video {video} holds no video frames")
    picks = np.linspace(0, len(decoded) - 1, min(count, len(decoded))).round().astype(int)
    frames = [decoded[i] for i in picks]
    if frame_hw is not None and frames[0].shape[:2] != tuple(frame_hw):
        frames = [cv2.resize(f, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR) for f in frames]
    return frames


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="latency/throughput of preprocess, infer and postprocess")
    p.add_argument("--model", required=True, help=".onnx, .engine/.plan or .pt")
    p.add_argument("--engine", default="auto", help="runtime the file must be for (onnx, engine, plan, pt); auto picks by suffix")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | openvino")
    p.add_argument("--video", default=None, help="frames from this video (default: the bundled demo clip)")
    p.add_argument("--frames", type=positive_int, default=32, help="distinct frames sampled from the video")
    p.add_argument("--frame-size", type=positive_int, nargs=2, metavar=("H", "W"), default=None, help="resize the frames to this size (default: the video's)")
    p.add_argument("--score-threshold", type=float, default=None, help="post-process score floor (default: the post-process default)")
    p.add_argument("--batch", type=positive_int, default=1)
    p.add_argument("--iters", type=positive_int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads per batch (0 = as `trident run`: the cores shared by --concurrent)")
    p.add_argument("--concurrent", type=int, default=0,
                   help="ONNX Runtime or OpenVINO on the CPU: batches at once for the throughput line (0 = as `trident run`: 2 on 2+ cores; 1 = one at a time)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="BLAS (and torch, where a torch engine loaded it) threads for a CPU post-process (default 1, as `trident run` uses; 0 = the libraries' defaults)")
    p.add_argument("--compile", action="store_true", help="torch engine: torch.compile")
    p.add_argument("--half", action="store_true", help="torch engine: FP16 autocast (CUDA)")
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.set_defaults(handler=_bench)


_ENGINE_NAMES = {"onnxruntime": "onnx", "tensorrt": "engine", "torch": "pt"}  # the names older releases took


def _bench(args: argparse.Namespace) -> int:
    from engines.bench import format_bench, run_bench, write_json
    from engines.loader import load_engine, runtime_key
    from engines.postprocess import PostprocessConfig
    from pipeline.commands import BUNDLED_CLIP, asset

    kind = runtime_key(args.model)
    wanted = _ENGINE_NAMES.get(args.engine, args.engine)
    same_runtime = {"engine": "plan", "plan": "engine", "pt": "pth", "pth": "pt"}
    if wanted != "auto" and kind != wanted and same_runtime.get(kind) != wanted:
        raise TridentError(f"--engine {args.engine} cannot run {Path(args.model).name}; pass a .{wanted} file or --engine auto")
    options = {}
    if kind == "onnx":
        from pipeline.engine_choice import engine_options

        options = engine_options(args.model, args.device, args.threads, args.concurrent)  # as `trident run` loads it
    if kind in ("pt", "pth"):
        options.update(compile=args.compile, half=args.half)
    post = PostprocessConfig() if args.score_threshold is None else PostprocessConfig(score_threshold=args.score_threshold)
    frames = video_frames(args.video or asset(BUNDLED_CLIP), max(args.frames, args.batch), tuple(args.frame_size) if args.frame_size else None)
    engine = load_engine(args.model, device=args.device, **options)
    on_cpu = not str(getattr(engine, "device", "cpu")).startswith("cuda")
    if on_cpu and args.torch_threads:
        from pipeline.cpu_budget import limit_postprocess_threads

        limit_postprocess_threads(args.torch_threads)  # BLAS (and a loaded torch): the pipeline's setting (runtime._budget_start says why)
    try:
        engine.spec.check_batch(args.batch)
        on_gpu = str(getattr(engine, "device", "cpu")).startswith("cuda")
        result = run_bench(engine, frames, args.batch, args.iters, args.warmup, "cuda" if on_gpu else "cpu", post)
    finally:
        engine.close()
    print(format_bench(result))
    if args.json:
        write_json(result, args.json)
    return 0
