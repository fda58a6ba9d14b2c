"""`trident autolabel`: a teacher model labels your videos into a dataset for `trident train` / `trident eval`."""

from __future__ import annotations

import argparse
import sys

from pipeline.errors import TridentError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "autolabel",
        help="label videos with a teacher detector into a training dataset (boxes, masks, track ids)",
        description="Run a teacher (any model `trident run` runs, e.g. one made by `trident import`) over videos and "
        "write what it finds as a dataset in the layout `trident synth` writes: COCO JSON with track ids, MOT gt, "
        "frames as JPEGs, label PNGs. A stopped run resumes when re-run with the same arguments.",
    )
    p.add_argument("--teacher", required=True, help="the labelling model (.onnx, .pt, .engine)")
    p.add_argument("--source", required=True, nargs="+", metavar="VIDEO", help="one or more video files")
    p.add_argument("--out", required=True, help="dataset directory")
    p.add_argument("--classes", default=None, help="teacher classes to keep, optionally renamed or merged: "
                   "person,car or person,car=vehicle,truck=vehicle (default: all)")
    p.add_argument("--score", type=float, default=0.35, help="lowest teacher score kept as a label (default 0.35)")
    p.add_argument("--every", type=int, default=1, help="label every N-th frame (default 1)")
    p.add_argument("--frames", default=None, metavar="A:B", help="frames A..B-1 of each video, 0-based (default: all)")
    p.add_argument("--masks", choices=("motion", "teacher", "none"), default="motion",
                   help="instance masks: background subtraction inside each box (static camera), the teacher's own "
                   "masks, or none (boxes only: no mask loss) (default motion)")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="the last share of each video's labelled frames forms the val split (default 0: train only)")
    p.add_argument("--device", default="cpu", help="teacher device: cpu or cuda (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset (or an unfinished run) in --out")
    p.set_defaults(handler=run)


def _expected_frames(sources: list[str], frames) -> int | None:
    """Labelled frames the sources' headers promise (for the progress bar); None when a header has no count."""
    import av

    total = 0
    for src in sources:
        try:
            with av.open(src) as c:
                n = c.streams.video[0].frames
        except Exception:
            return None  # the labeller reports the file properly
        if not n:
            return None
        stop = n if frames.stop is None else min(frames.stop, n)
        total += len(range(frames.start, stop, frames.every)) if stop > frames.start else 0
    return total


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from training.autolabel.options import AutolabelOptions, parse_class_map, parse_frames
    from training.autolabel.writer import autolabel

    if args.every < 1:
        raise TridentError(f"--every must be >= 1, got {args.every}")
    opts = AutolabelOptions(
        teacher=args.teacher,
        sources=tuple(args.source),
        class_map=parse_class_map(args.classes),
        score=args.score,
        frames=parse_frames(args.frames, args.every),
        masks=args.masks,
        val_fraction=args.val_fraction,
    )
    try:
        with tqdm(total=_expected_frames(list(args.source), opts.frames), unit="frame", desc="autolabel") as bar:
            summary = autolabel(opts, args.out, overwrite=args.overwrite, device=args.device, on_frame=bar.update)
    except KeyboardInterrupt:
        print(f"autolabel stopped: the frames done are kept in {args.out}; run the same command again to resume", file=sys.stderr)
        raise
    resumed = summary.frames - summary.teacher_frames
    sources = ", ".join(f"{k} {v}" for k, v in sorted(summary.mask_sources.items())) or "none"
    print(
        f"wrote {summary.videos} video(s), {summary.frames} frames, {summary.annotations} annotations, {summary.tracks} tracks "
        f"to {summary.out} in {summary.seconds:.1f} s (teacher ran on {summary.teacher_frames} frames"
        f"{f', {resumed} taken from the interrupted run' if resumed else ''}; masks: {sources})"
    )
    return 0
