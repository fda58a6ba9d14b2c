"""`trident run` (any sources -> model -> trackers -> outputs) and `trident demo` (bundled model and clip)."""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from pipeline.errors import TridentError

EXIT_SOURCE_FAILED = 1  # a source (or an output) failed; what it delivered before is in the outputs
EXIT_INTERRUPTED = 130  # stopped by SIGINT/SIGTERM; outputs were flushed and closed (2 is bad input, see pipeline.cli)
BUNDLED_WEIGHTS = "trident_n_synth.pt"  # the checkpoint: training starts from it, tests re-score it
BUNDLED_ONNX = "trident_n_synth.onnx"  # its FP32 export
BUNDLED_INT8_ONNX = "trident_n_synth.int8.onnx"  # its INT8 (QDQ) export, calibrated on rendered scenes
BUNDLED_CLIP = "demo_clip.mp4"


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output folder (default runs/trident, runs/demo for demo)")
    p.add_argument("--tracker", default=None, choices=("bytetrack", "ocsort", "sort", "none"), help="tracker per stream (default bytetrack)")
    p.add_argument("--device", default=None, help="engine device: auto | cpu | cuda | tensorrt | openvino (auto on a CPU: the faster installed runtime, see README)")
    p.add_argument("--batch", type=int, default=None, help="frames per engine call across streams")
    p.add_argument("--score-threshold", type=float, default=None)
    p.add_argument("--max-frames", type=int, default=None, help="stop each source after N frames")
    p.add_argument("--metrics-json", default=None, help="write the final metrics (JSON) here")
    p.add_argument("--prometheus-port", type=int, default=None, help="serve /metrics on 127.0.0.1:PORT")
    p.add_argument("--no-video", action="store_true", help="skip the annotated MP4")
    p.add_argument("--show", action="store_true", help="live window (needs the GUI build of OpenCV)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--infer-every", type=int, default=None, metavar="K",
                   help="run the network on every K-th frame of each stream, the tracker predicts between (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config field, e.g. tracker.high_score=0.5")
    g = p.add_argument_group("zones, counting and events")
    g.add_argument("--zones", default=None, metavar="FILE", help="lines and polygons (YAML/TOML, frame pixels) counted on every stream")
    g.add_argument("--events", action="append", default=[], metavar="URI", help="event sink: mqtt://HOST:PORT/TOPIC, http://HOST/PATH (webhook) or FILE.jsonl; repeat for more")
    g.add_argument("--record-clips", default=None, metavar="DIR", help="an MP4 per event (or burst of events) in DIR")
    g.add_argument("--pre-roll", type=float, default=None, metavar="S", help="seconds of video before the event in each clip (default 5)")
    g.add_argument("--post-roll", type=float, default=None, metavar="S", help="seconds after the (last) event (default 5)")


def register_run(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run sources (files, RTSP, webcams, GStreamer) through a model and trackers",
        description="Detect, segment and track on any number of sources. Outputs per stream: annotated MP4, "
        "MOTChallenge tracks, JSON Lines with RLE masks; a metrics summary at the end.",
    )
    p.add_argument("--source", action="append", default=[], metavar="URI", help="video file, rtsp://..., webcam index, or GStreamer pipeline; repeat for more streams")
    p.add_argument("--model", default=None, help=".onnx (ONNX Runtime), .engine/.plan (TensorRT), .pt, or triton://HOST:PORT/NAME (a served model)")
    p.add_argument("--config", default=None, help="YAML/TOML RunConfig; CLI flags override it")
    p.add_argument("--shard", default=None, metavar="I/N", help="take every N-th source, starting at the I-th (N nodes share one camera list)")
    _add_run_options(p)
    p.set_defaults(handler=_run)


def _config_from_args(args: argparse.Namespace, base: dict, default_out: str):
    from pipeline.config import apply_override, build_run_config, expand_patterns, source_list

    data = dict(base)
    sources = expand_patterns(source_list(data.get("sources", [])) + [{"uri": s} for s in getattr(args, "source", [])])
    if getattr(args, "shard", None):
        from pipeline.shard import parse_shard, select_shard

        sources = select_shard(sources, *parse_shard(args.shard))
    if args.max_frames is not None:
        if args.max_frames < 1:
            raise TridentError(f"--max-frames must be >= 1, got {args.max_frames}")
        sources = [({"uri": s} if isinstance(s, str) else dict(s)) | {"max_frames": args.max_frames} for s in sources]
    data["sources"] = sources
    for assignment, value in (
        ("engine.model", getattr(args, "model", None)),
        ("engine.device", args.device),
        ("batch.max_batch", args.batch),
        ("infer_every", getattr(args, "infer_every", None)),
        ("postprocess.score_threshold", args.score_threshold),
        ("metrics_json", args.metrics_json),
        ("prometheus_port", args.prometheus_port),
    ):
        if value is not None:
            apply_override(data, f"{assignment}={json.dumps(value)}")
    data.setdefault("output", {}).setdefault("dir", default_out)
    if args.out:
        data["output"]["dir"] = args.out
    if args.no_video:
        data["output"]["video"] = False
    if args.show:
        data["output"]["show"] = True
    if args.zones:
        data["zones"] = args.zones
    if args.events:
        existing = data.get("events") or []  # the config's sinks, then the command line's
        data["events"] = [*existing, *args.events] if isinstance(existing, list) else existing
    for key, value in (("dir", args.record_clips), ("pre_roll_s", args.pre_roll), ("post_roll_s", args.post_roll)):
        if value is not None:
            data.setdefault("clips", {})[key] = value
    if args.no_progress:
        data["progress"] = False
    apply_tracker_and_sets(data, args)
    return build_run_config(data)


def apply_tracker_and_sets(data: dict, args: argparse.Namespace) -> None:
    """`--tracker` (`none` turns tracking off) and every `--set key=value`, last, so they win (run and serve)."""
    from pipeline.config import apply_override

    if args.tracker == "none":
        data["tracking"] = False
    elif args.tracker:
        data.setdefault("tracker", {})["algorithm"] = args.tracker
    for assignment in args.set:
        apply_override(data, assignment)


def _report(summary) -> int:
    from pipeline.sources.uri import redact

    print(f"processed {summary.frames} frames; outputs in {summary.out}")
    for sid, files in summary.outputs.items():
        for f in files:
            print(f"  {sid}: {f}")
    # each error was logged once on stderr when it happened, and a stream's own error is in the
    # latency table `run` printed; only what the table cannot show (an output that failed) is repeated
    in_table = {sid: stream.get("error") for sid, stream in summary.metrics.get("streams", {}).items()}
    for where, error in summary.errors.items():
        if in_table.get(where) != error:
            print(f"error: {where}: {redact(error)}")
    if summary.interrupted:
        print("interrupted: outputs were flushed and closed")
    if summary.errors:
        return EXIT_SOURCE_FAILED
    return EXIT_INTERRUPTED if summary.interrupted else 0


def _run(args: argparse.Namespace) -> int:
    from pipeline.app import run
    from pipeline.config import load_config_file

    base = load_config_file(args.config) if args.config else {}
    cfg = _config_from_args(args, base, "runs/trident")
    return _report(run(cfg))


def register_demo(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the bundled model on the bundled clip: annotated video, tracks and a summary",
        description="Runs the bundled n model (trained on the synthetic dataset, shipped as INT8 and FP32 ONNX) "
        "on a bundled clip through ONNX Runtime on the CPU.",
    )
    _add_run_options(p)
    p.add_argument("--source", action="append", default=[], metavar="URI", help="run the bundled model on these instead of the bundled clip")
    p.add_argument("--fp32", action="store_true", help="run the FP32 ONNX instead of the INT8 one")
    p.set_defaults(handler=_demo)


def asset(name: str) -> Path:
    path = Path(str(resources.files("pipeline") / "assets" / name))
    if not path.exists():
        raise TridentError(f"bundled file {name} is missing from the installation ({path}); reinstall trident-vision")
    return path


def bundled_onnx(int8: bool = True) -> Path:
    """The bundled checkpoint as shipped ONNX: INT8 (QDQ) for the CPU by default, or FP32.

    Both files are exported from BUNDLED_WEIGHTS by `training/configs/bundled.sh`
    (a test checks they still match it), so the demo runs the deployed path
    only: ONNX Runtime, no model definition, no training code.
    """
    return asset(BUNDLED_INT8_ONNX if int8 else BUNDLED_ONNX)


def _demo(args: argparse.Namespace) -> int:
    from pipeline.app import run

    model = bundled_onnx(int8=not args.fp32)
    sources = args.source or [str(asset(BUNDLED_CLIP))]
    base = {"sources": sources, "engine": {"model": str(model), "device": "cpu"}, "metrics_json": ""}
    args.source = []
    cfg = _config_from_args(args, base, "runs/demo")
    out = Path(cfg.output.dir)
    if not cfg.metrics_json:
        from dataclasses import replace

        cfg = replace(cfg, metrics_json=str(out / "summary.json"))
    return _report(run(cfg))
