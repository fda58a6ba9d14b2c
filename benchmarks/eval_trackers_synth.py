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
the chosen videos. Rows:

- sort, bytetrack, ocsort: default `TrackerConfig`s; `--config FILE` adds a
  row for a tuned config (e.g. the YAML `trident tune-tracker` printed);
- `<name>+cmc`: the same with camera-motion compensation estimated from the
  decoded video (pipeline/camera_motion.py, `--cmc` method); with a moving
  camera dataset also `+cmc-true`, the recorded camera (camera.txt): the
  ceiling of what a perfect estimate would give;
- rf.*: Roboflow's `trackers` package (PyPI, Apache-2.0) with its default
  settings, run in its own virtual environment (the import names collide)
  through MOT files by benchmarks/roboflow_trackers_run.py; skipped with a
  message when that environment is absent (`--rf-python`, or the
  TRIDENT_RF_PYTHON environment variable, default /work/rf_venv/bin/python);
- sv.ByteTrack: supervision's, when installed (`pip install -e .[bench]`).

    .venv/bin/trident synth --out /tmp/synth_trk --videos 10 --frames 150
    .venv/bin/python benchmarks/eval_trackers_synth.py --data /tmp/synth_trk --split val
    .venv/bin/trident synth --out /tmp/synth_pan --videos 4 --camera-motion pan
    .venv/bin/python benchmarks/eval_trackers_synth.py --data /tmp/synth_pan --cmc sparse

`--write-dets DIR` also writes the simulated detections (DIR/<video>/det.txt
next to a copy of gt.txt), the input `trident tune-tracker` takes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.contracts import Detections
from pipeline.errors import TridentError
from trackers.config import TrackerConfig
from trackers.factory import make_tracker
from trackers.metrics import MotMetrics, combine_metrics, evaluate_mot, format_table
from trackers.mot_io import MotSequence, read_mot, tracks_to_sequence

HERE = Path(__file__).resolve().parent
RF_DEFAULT = "/work/rf_venv/bin/python"


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


def simulate(gt: MotSequence, width: float, height: float, noise: NoiseModel, seed: int, n_frames: int | None = None) -> list[Detections]:
    """One Detections per frame (index 0 = MOT frame 1)."""
    rng = np.random.default_rng(seed)
    gt = gt.select(gt.scores != 0)
    slices = gt.frame_slices()
    out = []
    for f in range(1, max(gt.last_frame, n_frames or 0) + 1):
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


Runner = Callable[[list[Detections], float, "list[np.ndarray | None] | None"], MotSequence]


def run_ours(config: TrackerConfig) -> Runner:
    def run(frames: list[Detections], fps: float, motions: list | None = None) -> MotSequence:
        tracker = make_tracker(config)
        return tracks_to_sequence(
            (i + 1, tracker.update(d, i / fps, camera_motion=None if motions is None else motions[i]))
            for i, d in enumerate(frames)
        )
    return run


def run_supervision(frames: list[Detections], fps: float, motions: list | None = None) -> MotSequence:
    import supervision as sv

    tracker = sv.ByteTrack(frame_rate=int(round(fps)))
    rows = []
    for i, d in enumerate(frames):
        out = tracker.update_with_detections(
            sv.Detections(xyxy=d.boxes.astype(np.float64), confidence=d.scores.copy(), class_id=d.class_ids.copy())
        )
        for box, tid, score, cls in zip(out.xyxy, out.tracker_id, out.confidence, out.class_id):
            rows.append((i + 1, tid, *box[:2], *(box[2:] - box[:2]), score, cls))
    return _sequence(np.array(rows, dtype=np.float64).reshape(-1, 8))


def _sequence(a: np.ndarray) -> MotSequence:
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    return MotSequence(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:6], a[:, 6],
                       a[:, 7].astype(np.int64), np.full(len(a), -1.0))


def _seqinfo(path: Path) -> dict[str, float]:
    info = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            info[k.strip()] = v.strip()
    return {"width": float(info.get("imWidth", 640)), "height": float(info.get("imHeight", 384)),
            "fps": float(info.get("frameRate", 30)), "frames": int(info.get("seqLength", 0))}


def write_dets(path: Path, frames: list[Detections]) -> None:
    lines = []
    for i, d in enumerate(frames):
        for b, s, c in zip(d.boxes, d.scores, d.class_ids):
            lines.append(f"{i + 1},-1,{b[0]:.2f},{b[1]:.2f},{b[2] - b[0]:.2f},{b[3] - b[1]:.2f},{s:.4f},{c},-1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


def estimated_motions(video: Path, frames: list[Detections], method: str) -> tuple[list, list[float]]:
    """Per-frame camera motion estimated from the decoded video (None for frame 1), and ms per estimate."""
    import cv2

    from pipeline.camera_motion import CameraMotion

    cap = cv2.VideoCapture(str(video))
    cm = CameraMotion(method)
    motions, ms = [], []
    for d in frames:
        ok, img = cap.read()
        if not ok:
            raise TridentError(f"{video}: fewer frames than its ground truth")
        t0 = time.perf_counter()
        motions.append(cm.step(img, d.boxes))
        ms.append((time.perf_counter() - t0) * 1e3)
    cap.release()
    return motions, ms[1:]


def recorded_motions(camera_txt: Path, n: int) -> list:
    rows = np.loadtxt(camera_txt, delimiter=",", ndmin=2)
    views = {int(r[0]): np.vstack([r[1:].reshape(2, 3), [0, 0, 1]]) for r in rows}
    return [None] + [(views[f + 1] @ np.linalg.inv(views[f]))[:2] for f in range(1, n)]


def _seq_name(gt_path: Path, with_dataset: bool, repeat: int | None) -> str:
    """A file name for one (dataset, video, detector draw)."""
    seq_dir = gt_path.parent.parent
    name = f"{seq_dir.parent.parent.name}-{seq_dir.name}" if with_dataset else seq_dir.name
    return name if repeat is None else f"{name}_r{repeat}"


def _videos(data: Path, split: str) -> list[Path]:
    seqs = sorted(data.glob("mot/*/gt/gt.txt"))
    if split != "all":
        import yaml

        meta = yaml.safe_load((data / "dataset.yaml").read_text())
        names = set(meta["splits"][split]["videos"])
        seqs = [p for p in seqs if p.parent.parent.name in names]
    return seqs


def run_roboflow(rf_python: str, dets_dir: Path, out_dir: Path, fps: float, n_frames: list[int]) -> dict[str, Path] | str:
    """Result folders by peer name, or why they could not be made."""
    if not Path(rf_python).exists():
        return (f"Roboflow trackers skipped: no {rf_python} (python3 -m venv /work/rf_venv && "
                "/work/rf_venv/bin/pip install trackers, or set TRIDENT_RF_PYTHON / --rf-python)")
    cmd = [rf_python, str(HERE / "roboflow_trackers_run.py"), "--dets", str(dets_dir), "--out", str(out_dir),
           "--fps", str(fps), "--frames", *map(str, n_frames)]
    # cwd outside the checkout, so its `import trackers` finds Roboflow's package, not ours
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        return f"Roboflow trackers failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    version = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    print(f"Roboflow {version} (default settings)")
    return {p.name: p for p in sorted(out_dir.iterdir()) if p.is_dir()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["/tmp/synth_trk"], help="output folder(s) of `trident synth`, scored together")
    ap.add_argument("--split", choices=("all", "train", "val"), default="all", help="which videos (dataset.yaml splits)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1,
                    help="simulate the detector this many times per video (seeds seed, seed+1000, ...) and score all: "
                    "differences of a few tenths of HOTA are noise of one draw")
    ap.add_argument("--config", action="append", default=[], metavar="YAML",
                    help="also score this TrackerConfig file (repeatable), e.g. tune-tracker's output")
    ap.add_argument("--cmc", choices=("none", "sparse", "ecc"), default=None,
                    help="add +cmc rows with this estimator (default: sparse when the dataset has a moving camera)")
    ap.add_argument("--rf-python", default=os.environ.get("TRIDENT_RF_PYTHON", RF_DEFAULT),
                    help="python of a venv with Roboflow's `trackers` installed")
    ap.add_argument("--no-roboflow", action="store_true")
    ap.add_argument("--no-supervision", action="store_true", help="skip supervision's ByteTrack")
    ap.add_argument("--write-dets", default=None, metavar="DIR", help="write the simulated detections (and gt) here")
    ap.add_argument("--json", default=None, help="write the numbers here too")
    args = ap.parse_args(argv)

    seqs = [p for d in args.data for p in _videos(Path(d), args.split)]
    if not seqs:
        raise TridentError(f"no mot/*/gt/gt.txt under {' '.join(args.data)}; run `trident synth --out {args.data[0]}` first")
    moving = any((p.parent.parent / "camera.txt").exists() for p in seqs)
    cmc = args.cmc or ("sparse" if moving else "none")

    configs: dict[str, TrackerConfig] = {
        "sort": TrackerConfig(algorithm="sort"),
        "bytetrack": TrackerConfig(algorithm="bytetrack"),
        "ocsort": TrackerConfig(algorithm="ocsort"),
    }
    from trackers.cli import load_config_file

    for path in args.config:
        configs[Path(path).stem] = TrackerConfig.from_dict(load_config_file(path))
    runners: dict[str, tuple[Runner, str | None]] = {name: (run_ours(c), None) for name, c in configs.items()}
    if cmc != "none":
        for name, c in configs.items():
            runners[f"{name}+cmc"] = (run_ours(replace(c, cmc=cmc)), "estimated")
            if moving:
                runners[f"{name}+cmc-true"] = (run_ours(replace(c, cmc=cmc)), "recorded")
    notes = []
    if not args.no_supervision:
        try:
            import supervision  # noqa: F401

            runners["sv.ByteTrack"] = (run_supervision, None)
        except ImportError:
            notes.append("supervision skipped: not installed (pip install -e .[bench])")

    per: dict[str, list[MotMetrics]] = {name: [] for name in runners}
    gts, n_frames, cmc_ms = [], [], []
    work = Path(tempfile.mkdtemp(prefix="trident-eval-"))
    fps = 30.0
    try:
        runs = [(r, k, p) for r in range(args.repeats) for k, p in enumerate(seqs)]
        for r, k, gt_path in runs:
            gt = read_mot(gt_path)
            seq_dir = gt_path.parent.parent
            name = _seq_name(gt_path, len(args.data) > 1, r if args.repeats > 1 else None)
            info = _seqinfo(seq_dir / "seqinfo.ini")
            fps = info["fps"]
            frames = simulate(gt, info["width"], info["height"], NoiseModel(), seed=args.seed + 1000 * r + k,
                              n_frames=info["frames"])
            gts.append(gt)
            n_frames.append((name, len(frames)))
            write_dets(work / "dets" / f"{name}.txt", frames)
            if args.write_dets:
                out = Path(args.write_dets) / name
                write_dets(out / "det" / "det.txt", frames)
                (out / "gt").mkdir(parents=True, exist_ok=True)
                shutil.copy(gt_path, out / "gt" / "gt.txt")
                shutil.copy(seq_dir / "seqinfo.ini", out / "seqinfo.ini")
            motions: dict[str, list | None] = {None: None}
            if cmc != "none":
                motions["estimated"], ms = estimated_motions(seq_dir.parent.parent / "videos" / f"{seq_dir.name}.mp4", frames, cmc)
                cmc_ms.extend(ms)
                if moving:
                    motions["recorded"] = recorded_motions(seq_dir / "camera.txt", len(frames))
            for name, (run, kind) in runners.items():
                per[name].append(evaluate_mot(gt, run(frames, fps, motions[kind])))
        if not args.no_roboflow:
            rf = run_roboflow(args.rf_python, work / "dets", work / "rf", fps, [n for _, n in sorted(n_frames)])
            if isinstance(rf, str):
                notes.append(rf)
            else:
                names = sorted(p.stem for p in (work / "dets").glob("*.txt"))
                by_name = dict(zip([_seq_name(seq, len(args.data) > 1, r if args.repeats > 1 else None) for r, _, seq in runs], gts))
                for peer, folder in rf.items():
                    per[peer] = [evaluate_mot(by_name[n], read_mot(folder / f"{n}.txt")) for n in names]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    combined = {name: combine_metrics(ms) for name, ms in per.items() if ms}
    n_gt = sum(len(g.frames) for g in gts)
    camera = "moving camera" if moving else "fixed camera"
    draws = f", {args.repeats} detector draws each" if args.repeats > 1 else ""
    print(f"{len(seqs)} videos ({args.split}, {camera}{draws}), {n_gt} ground-truth boxes, seed {args.seed}")
    print(format_table(combined))
    if cmc_ms:
        print(f"camera motion ({cmc}): median {np.median(cmc_ms):.2f} ms, p95 {np.percentile(cmc_ms, 95):.2f} ms a frame "
              f"at {int(info['width'])}x{int(info['height'])}")
    ours = {n: m.hota for n, m in combined.items() if not n.startswith(("rf.", "sv.")) and not n.endswith("-true")}
    peers = {n: m.hota for n, m in combined.items() if n.startswith("rf.")}
    if ours and peers:
        best, peer = max(ours, key=ours.get), max(peers, key=peers.get)
        print(f"best Trident {best} HOTA {100 * ours[best]:.2f} = {ours[best] / peers[peer]:.3f}x best Roboflow {peer} {100 * peers[peer]:.2f}")
    for note in notes:
        print(note)
    if args.json:
        payload = {n: m.summary() for n, m in combined.items()}
        if cmc_ms:
            payload["cmc_ms"] = {"median": float(np.median(cmc_ms)), "p95": float(np.percentile(cmc_ms, 95))}
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TridentError as exc:
        print(f"eval_trackers_synth: error: {exc}", file=sys.stderr)
        sys.exit(2)
