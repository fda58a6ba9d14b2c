"""`trident synth`: generate the synthetic video dataset."""

from __future__ import annotations

import argparse
import re

from pipeline.errors import TridentError


def parse_size(text: str) -> tuple[int, int]:
    """'640x384' -> (640, 384)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must look like WIDTHxHEIGHT (e.g. 640x384), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="generate the synthetic moving-objects video dataset",
        description="Render videos of moving, occluding objects with boxes, instance masks, "
        "semantic labels and track ids (COCO JSON, MOTChallenge gt, label PNGs).",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--videos", type=int, default=10, help="number of videos (default 10)")
    p.add_argument("--frames", type=int, default=150, help="frames per video (default 150)")
    p.add_argument("--size", type=parse_size, default=(640, 384), metavar="WxH", help="frame size (default 640x384)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same dataset")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of videos in the val split (default 0.2)")
    p.add_argument("--save-frames", action="store_true", help="also write every frame as a JPEG under images/")
    p.add_argument("--camera-motion", choices=("none", "pan", "zoom", "shake"), default="none",
                   help="move the camera: pan left/right, zoom in/out or a hand-held shake; boxes and masks follow the "
                   "moving frames and mot/<video>/camera.txt holds each frame's world->frame affine (default none)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from training.synthetic.generate import SynthConfig, generate_dataset

    if args.workers is not None and args.workers < 1:
        raise TridentError(f"--workers must be >= 1, got {args.workers}")
    cfg = SynthConfig(
        videos=args.videos,
        frames=args.frames,
        width=args.size[0],
        height=args.size[1],
        seed=args.seed,
        fps=args.fps,
        val_fraction=args.val_fraction,
        save_frames=args.save_frames,
        camera_motion=args.camera_motion,
    )
    with tqdm(total=cfg.videos, unit="video", desc="synth") as bar:
        summary = generate_dataset(cfg, args.out, overwrite=args.overwrite, workers=args.workers, on_video_done=lambda _: bar.update())
    print(
        f"wrote {summary.videos} videos, {summary.frames} frames, {summary.annotations} annotations, "
        f"{summary.tracks} tracks to {summary.out} in {summary.seconds:.1f} s "
        f"({summary.frames / max(summary.seconds, 1e-9):.0f} frames/s, codec {summary.codec})"
    )
    return 0
