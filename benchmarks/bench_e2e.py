"""End-to-end FPS on a 30 s clip: `trident run` vs Ultralytics `model.track(..., tracker="bytetrack.yaml")`.

    python benchmarks/bench_e2e.py --model runs/trident_n.onnx [--seconds 30]

Both read the same 640x384 H.264 clip, run an n-size segmentation model
through ONNX Runtime on the CPU at 384x640, track with ByteTrack and write an
annotated video; each is timed as a whole process (start-up included) after
one untimed warm-up of the file cache. YOLOv8n-seg is built from its yaml with
random weights and exported by Ultralytics itself (benchmark-only dependency:
`pip install ultralytics`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ULTRA = """
import sys, time
from ultralytics import YOLO
onnx, clip, out = sys.argv[1], sys.argv[2], sys.argv[3]
model = YOLO(onnx, task="segment")
t0 = time.perf_counter(); n = 0
for r in model.track(source=clip, tracker="bytetrack.yaml", imgsz=[384, 640], stream=True, save=True, project=out, name="track", verbose=False, device="cpu"):
    n += 1
print(n, time.perf_counter() - t0)
"""

EXPORT = """
import sys
from ultralytics import YOLO
print(YOLO("yolov8n-seg.yaml").export(format="onnx", imgsz=[384, 640], simplify=False, dynamic=False))
"""


def make_clip(folder: Path, seconds: int) -> Path:
    from training.synthetic import SynthConfig, generate_dataset

    clip = folder / "videos" / "video_0000.mp4"
    if not clip.exists():
        generate_dataset(SynthConfig(videos=1, frames=30 * seconds, seed=77), folder, workers=1)
    return clip


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="Trident ONNX model (trident export)")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--clip-dir", default="/tmp/trident_e2e_clip")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    clip = make_clip(Path(args.clip_dir), args.seconds)
    frames = 30 * args.seconds
    bindir = Path(sys.executable).parent
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ours_cmd = [str(bindir / "trident"), "run", "--source", str(clip), "--model", args.model, "--out", f"{tmp}/ours", "--no-progress"]
        timed(ours_cmd + ["--max-frames", "30"])  # warm the file cache and the ONNX Runtime binary
        wall, _ = timed(ours_cmd)
        print(f"trident run: {frames / wall:.1f} FPS", flush=True)
        results["trident run (ORT CPU, ByteTrack, MP4)"] = {"frames": frames, "seconds": wall, "fps": frames / wall}
        try:
            export = subprocess.run([sys.executable, "-c", EXPORT], capture_output=True, text=True, cwd=tmp)
            onnx = str(Path(tmp) / export.stdout.strip().splitlines()[-1]) if export.returncode == 0 else None
        except FileNotFoundError:
            onnx = None
        if onnx:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", ULTRA, onnx, str(clip), f"{tmp}/ultra"], capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if out.returncode == 0:
                n = int(out.stdout.split()[-2])
                results["ultralytics model.track (ORT CPU, bytetrack.yaml, save)"] = {"frames": n, "seconds": wall, "fps": n / wall}
            else:
                print("ultralytics run failed:", out.stderr[-1500:])
        else:
            print("ultralytics unavailable or export failed; only Trident was timed")
    print(f"{frames} frames of 640x384 H.264, input 384x640, this machine")
    for name, r in results.items():
        print(f"{name:<58} {r['seconds']:>7.1f} s  {r['fps']:>6.1f} FPS")
    names = list(results)
    if len(names) == 2:
        print(f"speed-up: {results[names[0]]['fps'] / results[names[1]]['fps']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
