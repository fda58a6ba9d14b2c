"""`infer_every` K = 1, 2, 3: tracking quality (HOTA) on the synthetic val videos next to the frames per second.

    python benchmarks/bench_infer_every.py --data /work/data/synth80 --split val
    python benchmarks/bench_infer_every.py --data /work/data/synth80 --ks 1 2 3 4 --clip /usr/share/doc/opencv-doc/examples/data/vtest.avi

The bundled FP32 model on ONNX Runtime (CPU) runs the real pipeline
(decode, letterbox, network, post-process, ByteTrack) on every val video of a
`trident synth` dataset, once per K, alternating K video by video so a load
that comes and goes on a shared machine hits every K alike. The tracks of
every frame (predicted frames included) are scored against the ground truth
with trackers.metrics (HOTA, MOTA, IDF1). FPS is frames over the pipeline's
wall time without sinks; `--clip` also times `trident run` with its normal
outputs (MP4, MOT, JSON Lines) on a real clip per K, alternated over rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.bench import cpu_description  # noqa: E402


def _videos(data: Path, split: str) -> list[tuple[Path, Path]]:
    """(video, gt.txt) pairs of the split."""
    import yaml

    names = None
    if split != "all":
        names = set(yaml.safe_load((data / "dataset.yaml").read_text())["splits"][split]["videos"])
    pairs = []
    for gt in sorted(data.glob("mot/*/gt/gt.txt")):
        name = gt.parent.parent.name
        video = data / "videos" / f"{name}.mp4"
        if video.exists() and (names is None or name in names):
            pairs.append((video, gt))
    return pairs


def run_video(engine, video: Path, k: int):
    from pipeline.runtime import Pipeline
    from pipeline.sources import SourceConfig
    from trackers.config import TrackerConfig
    from trackers.mot_io import tracks_to_sequence

    pipe = Pipeline([SourceConfig(str(video))], engine, TrackerConfig(), infer_every=k)
    started = time.perf_counter()
    frames = [(r.frame.index + 1, r.tracks) for r in pipe]
    return tracks_to_sequence(frames), len(frames), time.perf_counter() - started


def clip_fps(model: str, clip: str, k: int, out: Path) -> float:
    metrics = out / f"k{k}.json"
    cmd = [str(Path(sys.executable).parent / "trident"), "run", "--source", clip, "--model", model, "--device", "cpu",
           "--out", str(out / f"k{k}"), "--no-progress", "--infer-every", str(k), "--metrics-json", str(metrics)]
    subprocess.run(cmd, check=True, capture_output=True)
    m = json.loads(metrics.read_text())
    return sum(s["frames"] for s in m["streams"].values()) / m["elapsed_s"]


def main() -> None:
    from engines.loader import load_engine
    from pipeline.commands import bundled_onnx
    from trackers.metrics import combine_metrics, evaluate_mot
    from trackers.mot_io import read_mot

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/data/synth80", help="a `trident synth` dataset")
    ap.add_argument("--split", default="val", choices=("val", "train", "all"))
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--model", default=str(bundled_onnx(int8=False)))
    ap.add_argument("--clip", default=None, help="also time `trident run` with its outputs on this clip per K")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the --clip timing")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    pairs = _videos(Path(args.data), args.split)
    if not pairs:
        raise SystemExit(f"no videos with ground truth in {args.data} ({args.split}); make them with `trident synth`")
    engine = load_engine(args.model, device="cpu")
    per_k = {k: {"metrics": [], "frames": 0, "seconds": 0.0} for k in args.ks}
    for video, gt_path in pairs:
        gt = read_mot(gt_path)
        for k in args.ks:
            seq, n, seconds = run_video(engine, video, k)
            per_k[k]["metrics"].append(evaluate_mot(gt, seq))
            per_k[k]["frames"] += n
            per_k[k]["seconds"] += seconds
    clip = {}
    if args.clip:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):
                for k in args.ks:
                    clip.setdefault(k, []).append(clip_fps(args.model, args.clip, k, Path(tmp)))
    print(f"{len(pairs)} {args.split} videos of {args.data}, bundled FP32 model, ByteTrack; {cpu_description()}")
    header = f"{'K':>3} {'HOTA':>6} {'DetA':>6} {'AssA':>6} {'MOTA':>6} {'IDF1':>6} {'IDsw':>5} {'FPS (no sinks)':>15}"
    if clip:
        header += f" {Path(args.clip).name + ' FPS':>18}"
    print(header)
    base_fps = per_k[args.ks[0]]["frames"] / per_k[args.ks[0]]["seconds"]
    report = {}
    for k in args.ks:
        m = combine_metrics(per_k[k]["metrics"])
        fps = per_k[k]["frames"] / per_k[k]["seconds"]
        line = f"{k:>3} {m.hota * 100:>6.1f} {m.deta * 100:>6.1f} {m.assa * 100:>6.1f} {m.mota * 100:>6.1f} {m.idf1 * 100:>6.1f} {m.idsw:>5} {fps:>8.1f} ({fps / base_fps:.2f}x)"
        report[k] = {"hota": m.hota, "mota": m.mota, "idf1": m.idf1, "fps": fps}
        if clip:
            med = statistics.median(clip[k])
            line += f" {med:>10.1f} ({med / statistics.median(clip[args.ks[0]]):.2f}x)"
            report[k]["clip_fps"] = clip[k]
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
