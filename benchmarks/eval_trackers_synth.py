"""Tracking quality on the synthetic dataset with a simulated detector.

Ground truth comes from `trident synth` (MOT files at
mot/video_XXXX/gt/gt.txt). A seeded noise model turns it into detections the
way a real detector errs:

- misses: more likely the more an object is occluded (visibility column);
- box jitter proportional to box size;
- scores that fall with occlusion, plus noise (so occluded objects produce
  low-score boxes: the case ByteTrack's second stage is for);
- false positives: a Poisson number per frame, random boxes, low-ish scores.

Each tracker sees the same detections; results are scored with
trackers.metrics (checked against trackeval in the tests) and combined over
all videos.

    .venv/bin/trident synth --out /tmp/synth_trk --videos 4 --frames 150
    .venv/bin/python benchmarks/eval_trackers_synth.py --data /tmp/synth_trk
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.contracts import Detections

from pipeline.errors import TridentError
from trackers.config import TrackerConfig
from trackers.factory import make_tracker
from trackers.metrics import MotMetrics, combine_metrics, evaluate_mot, format_table
from trackers.mot_io import MotSequence, read_mot, tracks_to_sequence


@dataclass(frozen=True)
class NoiseModel:
    miss_rate: float = 0.05          # misses of a fully visible object
    occluded_miss_rate: float = 0.5  # extra miss probability at visibility 0
    jitter: float = 0.04             # box std as a fraction of width/height
    score_mean: float = 0.85         # score of a fully visible object
    occlusion_score_drop: float = 0.6  # score lost at visibility 0
    score_std: float = 0.08
    fp_per_frame: float = 1.0        # Poisson rate of false positives
    fp_score_max: float = 0.65


def simulate(gt: MotSequence, width: float, height: float, noise: NoiseModel, seed: int) -> list[Detections]:
    """One Detections per frame (index 0 = MOT frame 1)."""
    rng = np.random.default_rng(seed)
    gt = gt.select(gt.scores != 0)
    slices = gt.frame_slices()
    out = []
    for f in range(1, gt.last_frame + 1):
        sl = slices.get(f, slice(0, 0))
        xywh = gt.boxes[sl].copy()
        vis = np.where(gt.visibility[sl] < 0, 1.0, gt.visibility[sl])
        cls = gt.classes[sl]
        keep = rng.random(len(xywh)) >= noise.miss_rate + noise.occluded_miss_rate * (1.0 - vis)
        xywh, vis, cls = xywh[keep], vis[keep], cls[keep]
        size = np.concatenate([xywh[:, 2:], xywh[:, 2:]], axis=1)  # (w, h, w, h)
        xywh = xywh + rng.normal(0.0, noise.jitter, xywh.shape) * size
        xywh[:, 2:] = np.maximum(xywh[:, 2:], 2.0)
        scores = noise.score_mean - noise.occlusion_score_drop * (1.0 - vis) + rng.normal(0, noise.score_std, len(vis))
        n_fp = rng.poisson(noise.fp_per_frame)
        fp_wh = rng.uniform(15, 90, (n_fp, 2))
        fp_xy = rng.uniform(0, 1, (n_fp, 2)) * (np.array([width, height]) - fp_wh)
        boxes = np.concatenate([xywh, np.concatenate([fp_xy, fp_wh], axis=1)])
        scores = np.concatenate([scores, rng.uniform(0.1, noise.fp_score_max, n_fp)])
        cls = np.concatenate([cls, rng.choice(np.unique(gt.classes), n_fp) if n_fp else np.zeros(0, np.int64)])
        xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        out.append(Detections(xyxy.astype(np.float32), np.clip(scores, 0.01, 1.0).astype(np.float32), cls.astype(np.int32)))
    return out


def run_ours(config: TrackerConfig) -> Callable[[list[Detections], float], MotSequence]:
    def run(frames: list[Detections], fps: float) -> MotSequence:
        tracker = make_tracker(config)
        return tracks_to_sequence((i + 1, tracker.update(d, i / fps)) for i, d in enumerate(frames))
    return run


def run_supervision(frames: list[Detections], fps: float) -> MotSequence:
    import supervision as sv

    tracker = sv.ByteTrack(frame_rate=int(round(fps)))
    rows = []
    for i, d in enumerate(frames):
        out = tracker.update_with_detections(
            sv.Detections(xyxy=d.boxes.astype(np.float64), confidence=d.scores.copy(), class_id=d.class_ids.copy())
        )
        for box, tid, score, cls in zip(out.xyxy, out.tracker_id, out.confidence, out.class_id):
            rows.append((i + 1, tid, *box[:2], *(box[2:] - box[:2]), score, cls))
    a = np.array(rows, dtype=np.float64).reshape(-1, 8)
    order = np.lexsort((a[:, 1], a[:, 0]))
    a = a[order]
    return MotSequence(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:6], a[:, 6],
                       a[:, 7].astype(np.int64), np.full(len(a), -1.0))


def _seqinfo(path: Path) -> dict[str, float]:
    info = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            info[k.strip()] = v.strip()
    return {"width": float(info.get("imWidth", 640)), "height": float(info.get("imHeight", 384)),
            "fps": float(info.get("frameRate", 30))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/tmp/synth_trk", help="output folder of `trident synth`")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the numbers here too")
    ap.add_argument("--no-supervision", action="store_true", help="skip supervision's ByteTrack")
    args = ap.parse_args(argv)

    seqs = sorted(Path(args.data).glob("mot/*/gt/gt.txt"))
    if not seqs:
        raise TridentError(f"no mot/*/gt/gt.txt under {args.data}; run `trident synth --out {args.data}` first")
    trackers: dict[str, Callable] = {
        "sort": run_ours(TrackerConfig(algorithm="sort")),
        "bytetrack": run_ours(TrackerConfig(algorithm="bytetrack")),
        # supervision's ByteTrack ignores classes; this row compares like with like.
        "bytetrack-agn": run_ours(TrackerConfig(algorithm="bytetrack", class_aware=False)),
    }
    if not args.no_supervision:
        trackers["sv.ByteTrack"] = run_supervision
    per: dict[str, list[MotMetrics]] = {name: [] for name in trackers}
    for k, gt_path in enumerate(seqs):
        gt = read_mot(gt_path)
        info = _seqinfo(gt_path.parent.parent / "seqinfo.ini")
        frames = simulate(gt, info["width"], info["height"], NoiseModel(), seed=args.seed + k)
        for name, run in trackers.items():
            per[name].append(evaluate_mot(gt, run(frames, info["fps"])))
    combined = {name: combine_metrics(ms) for name, ms in per.items()}
    n_gt = sum(len(read_mot(p).frames) for p in seqs)
    print(f"{len(seqs)} videos, {n_gt} ground-truth boxes, seed {args.seed}")
    print(format_table(combined))
    if args.json:
        Path(args.json).write_text(json.dumps({n: m.summary() for n, m in combined.items()}, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TridentError as exc:
        print(f"eval_trackers_synth: error: {exc}", file=sys.stderr)
        sys.exit(2)
