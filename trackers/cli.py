"""`trident track`, `trident eval-mot` and `trident tune-tracker`: offline
tracking, MOT evaluation and threshold search.

    trident track --dets det.txt --out results.txt [--tracker bytetrack|ocsort|sort] [--fps 30]
    trident eval-mot --gt gt.txt --res results.txt [--json metrics.json]
    trident tune-tracker --gt a/gt.txt b/gt.txt --dets a/det.txt b/det.txt --trials 50 > tracker.yaml

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
        description="Run SORT, ByteTrack or OC-SORT over a MOTChallenge detection file (frame,id,x,y,w,h,conf,...; "
        "1-based frames) and write the tracks as a MOTChallenge result file.",
    )
    p.add_argument("--dets", required=True, help="MOTChallenge detection file (det.txt)")
    p.add_argument("--out", required=True, help="result file to write (frame,id,x,y,w,h,conf,class,-1)")
    p.add_argument("--tracker", choices=("bytetrack", "ocsort", "sort"), default=None, help="algorithm (default bytetrack)")
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


def load_config_file(path: str) -> dict:
    """The TrackerConfig fields in a YAML or JSON file (a mapping), or one clear error."""
    if not os.path.isfile(path):
        raise TridentError(f"--config {path}: no such file")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        if path.endswith(".json"):
            values = json.loads(text)
        else:
            import yaml  # lazy: only needed for YAML configs

            values = yaml.safe_load(text) or {}
    except Exception as exc:  # any parser error is a user-fixable file problem
        raise TridentError(f"--config {path}: cannot parse ({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    if not isinstance(values, dict):
        raise TridentError(f"--config {path}: expected a mapping of TrackerConfig fields")
    return values


def _load_config(args: argparse.Namespace):
    from trackers.config import TrackerConfig

    values: dict = {} if args.config is None else load_config_file(args.config)
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


def register_tune_tracker(subparsers: argparse._SubParsersAction) -> None:
    from pipeline.config_files import positive_int

    p = subparsers.add_parser(
        "tune-tracker",
        help="search tracker thresholds for the best HOTA on your own MOT data",
        description="Track MOTChallenge detection files with many threshold settings (seeded random or grid "
        "search), score each against the ground truth (HOTA, sequences combined) and print the best "
        "settings as YAML for `trident track --config` (or, nested under `tracker:`, `trident run --config`). "
        "Tune on some sequences and check on others: thresholds fitted to one clip can flatter it.",
    )
    p.add_argument("--gt", required=True, nargs="+", help="ground-truth file(s) (gt.txt)")
    p.add_argument("--dets", required=True, nargs="+", help="detection file(s), one per --gt, same order")
    p.add_argument("--trials", type=positive_int, default=50, help="configurations to try, the starting one included (default 50)")
    p.add_argument("--search", choices=("random", "grid"), default="random", help="how to pick them (default random)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed and data, same answer (default 0)")
    p.add_argument("--tracker", choices=("bytetrack", "ocsort", "sort"), default=None, help="algorithm to tune (default: --config's, else bytetrack)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of the videos (default 30)")
    p.add_argument("--config", default=None, help="starting TrackerConfig (YAML/JSON); untuned fields keep its values")
    p.add_argument("--params", default=None, help="comma-separated fields to search (default: all that apply to the algorithm)")
    p.add_argument("--workers", type=positive_int, default=None, help="processes (default: up to 4 cores)")
    p.add_argument("--out", default=None, help="also write the YAML to this file")
    p.set_defaults(handler=run_tune_tracker)


_WORKER_SEQUENCES: list = []


def _init_worker(sequences: list) -> None:
    global _WORKER_SEQUENCES
    _WORKER_SEQUENCES = sequences


def _score_in_worker(config):
    from trackers.tune import score_config

    return score_config(config, _WORKER_SEQUENCES)


def config_yaml(config, header: list[str]) -> str:
    """`config` as YAML: the algorithm, fps and every field that differs from the defaults."""
    import yaml

    from trackers.config import TrackerConfig

    default = TrackerConfig().to_dict()
    values = {k: v for k, v in config.to_dict().items() if k in ("algorithm", "fps") or v != default[k]}
    values = {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
    body = yaml.safe_dump(values, sort_keys=False)
    return "".join(f"# {line}\n" for line in header) + body


def run_tune_tracker(args: argparse.Namespace) -> int:
    import sys
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from trackers.mot_io import read_mot
    from trackers.tune import TuneSequence, tune

    if len(args.gt) != len(args.dets):
        raise TridentError(f"got {len(args.gt)} --gt file(s) but {len(args.dets)} --dets file(s); pass one detection file per ground truth")
    config = _load_config(args)
    params = None if args.params is None else [p.strip() for p in args.params.split(",") if p.strip()]
    sequences = []
    for gt_path, det_path in zip(args.gt, args.dets):
        gt, dets = read_mot(gt_path), read_mot(det_path)
        if len(gt) == 0:
            raise TridentError(f"{gt_path}: no ground-truth boxes; nothing to score against")
        last = max(gt.last_frame, dets.last_frame)
        sequences.append(TuneSequence(gt_path, gt, [d for _, d in dets.iter_frames(1, last)]))
    if args.out is not None and os.path.isdir(args.out):
        raise TridentError(f"--out {args.out} is a directory; pass a file name")

    workers = min(args.workers or min(4, os.cpu_count() or 1), args.trials)
    bar = tqdm(total=args.trials, unit="trial", desc="tune", disable=None, file=sys.stderr)
    best = [-1.0]

    def on_trial(trial) -> None:
        best[0] = max(best[0], trial.hota)
        bar.set_postfix_str(f"best HOTA {100 * best[0]:.2f}")
        bar.update()

    start = time.perf_counter()
    try:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(sequences,)) as pool:
                ranked = tune(sequences, config, args.trials, args.search, args.seed, params, on_trial,
                              score=lambda configs: pool.map(_score_in_worker, configs))
        else:
            ranked = tune(sequences, config, args.trials, args.search, args.seed, params, on_trial)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    start_trial = next(t for t in ranked if t.index == 0)
    top = ranked[0]
    m = top.metrics
    header = [
        f"trident tune-tracker: {config.algorithm}, {len(ranked)} {args.search} trials (seed {args.seed}) on {len(sequences)} sequence(s)",
        f"HOTA {100 * m.hota:.2f} (start {100 * start_trial.hota:.2f}), MOTA {100 * m.mota:.2f}, IDF1 {100 * m.idf1:.2f}; trial {top.index}",
        "use: trident track --config THIS.yaml ...; for trident run --config, nest these keys under `tracker:`",
    ]
    text = config_yaml(top.config, header)
    if args.out is not None:
        try:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise TridentError(f"--out {args.out}: cannot write ({exc.strerror})") from None
    print(f"tuned in {elapsed:.1f} s: HOTA {100 * start_trial.hota:.2f} -> {100 * m.hota:.2f}", file=sys.stderr)
    print(text, end="")
    return 0
