"""`trident track` and `trident eval-mot`: offline tracking and MOT evaluation.

    trident track --dets det.txt --out results.txt [--tracker bytetrack|sort] [--fps 30]
    trident eval-mot --gt gt.txt --res results.txt [--json metrics.json]

Registration touches argparse only; numpy/scipy load when a handler runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

from pipeline.errors import TridentError


def register_track(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "track",
        help="track boxes from a MOTChallenge detection file",
        description="Run SORT or ByteTrack over a MOTChallenge detection file (frame,id,x,y,w,h,conf,...; "
        "1-based frames) and write the tracks as a MOTChallenge result file.",
    )
    p.add_argument("--dets", required=True, help="MOTChallenge detection file (det.txt)")
    p.add_argument("--out", required=True, help="result file to write (frame,id,x,y,w,h,conf,class,-1)")
    p.add_argument("--tracker", choices=("bytetrack", "sort"), default=None, help="algorithm (default bytetrack)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of the video the detections come from (default 30)")
    p.add_argument("--config", default=None, help="YAML or JSON file of TrackerConfig fields; --tracker/--fps override it")
    p.add_argument("--frames", type=int, default=None, help="number of frames in the video (default: last frame in --dets)")
    p.set_defaults(handler=run_track)


def register_eval_mot(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval-mot",
        help="score tracking results against ground truth (HOTA, MOTA, IDF1)",
        description="Compute HOTA (DetA, AssA, LocA), MOTA and IDF1 of MOTChallenge result files against "
        "ground truth. Several --gt/--res pairs are scored one by one and combined.",
    )
    p.add_argument("--gt", required=True, nargs="+", help="ground-truth file(s) (gt.txt)")
    p.add_argument("--res", required=True, nargs="+", help="result file(s), one per --gt, same order")
    p.add_argument("--iou", type=float, default=0.5, help="IoU threshold of MOTA and IDF1 (default 0.5)")
    p.add_argument("--class-aware", action="store_true", help="never match a result to ground truth of another class")
    p.add_argument("--classes", default=None, help="comma-separated class ids to evaluate (default: all)")
    p.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    p.set_defaults(handler=run_eval_mot)


def _load_config(args: argparse.Namespace):
    from trackers.config import TrackerConfig

    values: dict = {}
    if args.config is not None:
        if not os.path.isfile(args.config):
            raise TridentError(f"--config {args.config}: no such file")
        with open(args.config, encoding="utf-8") as fh:
            text = fh.read()
        try:
            if args.config.endswith(".json"):
                values = json.loads(text)
            else:
                import yaml  # lazy: only needed for YAML configs

                values = yaml.safe_load(text) or {}
        except Exception as exc:  # any parser error is a user-fixable file problem
            raise TridentError(f"--config {args.config}: cannot parse ({type(exc).__name__}: {exc})".replace("\n", " ")) from None
        if not isinstance(values, dict):
            raise TridentError(f"--config {args.config}: expected a mapping of TrackerConfig fields")
    if args.tracker is not None:
        values["algorithm"] = args.tracker
    if args.fps is not None:
        if not (math.isfinite(args.fps) and args.fps > 0):
            raise TridentError(f"--fps must be a positive number, got {args.fps}")
        values["fps"] = args.fps
    return TrackerConfig.from_dict(values)


def run_track(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from trackers.factory import make_tracker
    from trackers.mot_io import read_mot, tracks_to_sequence, write_mot

    config = _load_config(args)
    dets = read_mot(args.dets)
    last = dets.last_frame if args.frames is None else args.frames
    if args.frames is not None and args.frames < dets.last_frame:
        raise TridentError(f"--frames {args.frames} is less than the last frame in {args.dets} ({dets.last_frame})")
    if last == 0:
        raise TridentError(f"{args.dets}: no detections and no --frames; nothing to track")
    tracker = make_tracker(config)
    start = time.perf_counter()
    frames = []
    for frame, frame_dets in tqdm(dets.iter_frames(1, last), total=last, unit="frame", desc="track", disable=None):
        # MOT frames are 1-based; the tracker wants seconds from the start.
        frames.append((frame, tracker.update(frame_dets, (frame - 1) / config.fps)))
    elapsed = time.perf_counter() - start
    result = tracks_to_sequence(frames)
    write_mot(args.out, result)
    n_ids = len(set(result.ids.tolist()))
    print(
        f"tracked {last} frames with {config.algorithm}: {n_ids} tracks, {len(result)} boxes -> {args.out} "
        f"({last / max(elapsed, 1e-9):.0f} frames/s)"
    )
    return 0


def _parse_classes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise TridentError(f"--classes must be comma-separated integers, got {text!r}") from None


def run_eval_mot(args: argparse.Namespace) -> int:
    from trackers.metrics import combine_metrics, evaluate_mot, format_table
    from trackers.mot_io import read_mot

    if len(args.gt) != len(args.res):
        raise TridentError(f"got {len(args.gt)} --gt file(s) but {len(args.res)} --res file(s); pass one result per ground truth")
    if not (0.0 < args.iou <= 1.0):
        raise TridentError(f"--iou must be in (0, 1], got {args.iou}")
    classes = _parse_classes(args.classes)
    per_seq = {}
    records = []
    for gt_path, res_path in zip(args.gt, args.res):
        m = evaluate_mot(read_mot(gt_path), read_mot(res_path), iou_threshold=args.iou, class_aware=args.class_aware,
                         classes=classes, names=(gt_path, res_path))
        name = os.path.basename(os.path.dirname(os.path.dirname(gt_path))) if len(args.gt) > 1 else "result"
        per_seq[name if name not in per_seq else f"{name}#{len(per_seq)}"] = m
        records.append({"gt": gt_path, "res": res_path, "metrics": m.summary()})
    rows = dict(per_seq)
    combined = combine_metrics(list(per_seq.values()))
    if len(per_seq) > 1:
        rows["COMBINED"] = combined
    print(format_table(rows))
    if args.json is not None:
        payload = {"iou_threshold": args.iou, "class_aware": args.class_aware, "classes": classes,
                   "sequences": records, "combined": combined.summary()}
        try:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, indent=2)
        except OSError as exc:
            raise TridentError(f"--json {args.json}: cannot write ({exc.strerror})") from None
    return 0
