"""Run Roboflow's `trackers` (PyPI, Apache-2.0) on MOT detection files: the peer baseline.

Its import name is `trackers`, like ours, so it runs in its own virtual
environment and talks to Trident only through MOTChallenge files:

    python3 -m venv /work/rf_venv && /work/rf_venv/bin/pip install trackers
    /work/rf_venv/bin/python benchmarks/roboflow_trackers_run.py --dets DIR --out DIR --fps 30

For every DIR/NAME.txt (frame,-1,x,y,w,h,score,class,...) it writes
OUT/<tracker>/NAME.txt with each tracker's default settings. Only the
package's public API is called; none of its code is copied into Trident.
benchmarks/eval_trackers_synth.py runs this script and scores the results.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # never let a checkout's folder shadow the package
import supervision as sv  # noqa: E402
import trackers as rf  # noqa: E402

PEERS = {"rf.ByteTrack": "ByteTrackTracker", "rf.SORT": "SORTTracker", "rf.OC-SORT": "OCSORTTracker"}


def read_dets(path: Path) -> dict[int, np.ndarray]:
    rows = np.loadtxt(path, delimiter=",", ndmin=2) if path.stat().st_size else np.zeros((0, 8))
    return {int(f): rows[rows[:, 0] == f] for f in np.unique(rows[:, 0])}


def run(cls_name: str, frames: dict[int, np.ndarray], n_frames: int, fps: float) -> list[str]:
    tracker = getattr(rf, cls_name)(frame_rate=fps)
    lines = []
    for f in range(1, n_frames + 1):
        r = frames.get(f, np.zeros((0, 8)))
        xyxy = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1) if len(r) else np.zeros((0, 4))
        det = sv.Detections(xyxy=xyxy.astype(np.float32), confidence=r[:, 6].astype(np.float32),
                            class_id=r[:, 7].astype(int) if len(r) else np.zeros(0, int))
        out = tracker.update(det)
        for box, tid, score, cls in zip(out.xyxy, out.tracker_id, out.confidence, out.class_id):
            if tid < 0:  # a detection no track took this frame
                continue
            x0, y0, x1, y1 = (float(v) for v in box)
            lines.append(f"{f},{int(tid)},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},{float(score):.4f},{int(cls)},-1")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dets", required=True, help="folder of NAME.txt detection files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--frames", type=int, nargs="*", default=None, help="frames per file, same order as sorted names")
    args = ap.parse_args()
    files = sorted(Path(args.dets).glob("*.txt"))
    for k, path in enumerate(files):
        frames = read_dets(path)
        n = args.frames[k] if args.frames else max(frames, default=0)
        for name, cls_name in PEERS.items():
            t0 = time.perf_counter()
            lines = run(cls_name, frames, n, args.fps)
            out = Path(args.out) / name / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(lines) + ("\n" if lines else ""))
            print(f"{name} {path.name}: {n} frames in {time.perf_counter() - t0:.2f} s")
    from importlib.metadata import version

    print(f"trackers {version('trackers')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
