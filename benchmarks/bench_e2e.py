"""End to end on real clips: `trident run` variants vs Ultralytics `model.track(..., save=True)`, alternated.

    python benchmarks/bench_e2e.py                       # vtest.avi + the bundled clip, FP32, 2 rounds
    python benchmarks/bench_e2e.py --rounds 3 --variant "ort2=--set engine.threads=2"
    python benchmarks/bench_e2e.py --budget-only --clips /usr/share/doc/opencv-doc/examples/data/vtest.avi

Every round runs, per clip, each Trident variant, then Ultralytics, then
`trident bench` on frames of the same clip (A B C A B C ...), so a load that
comes and goes on a shared machine hits them alike; the report quotes
medians over rounds. Each run is its own process (start-up not timed; the
whole process wall is printed too). Trident: frames over `metrics.elapsed_s`,
from its sources' start (model load, imports and warm-up before it) to the
last output closed, so its first frame's latency and the final encoder flush
count. Ultralytics: the frames after its first result over the time from
its first result to its last (its lazy ONNX session, warm-up and first frame
come before that), which if anything favours it.

Trident: `trident run` on the clip with its default outputs (annotated MP4,
MOT, JSON Lines with RLE masks), ByteTrack, every frame inferred, ONNX
Runtime CPU, FP32 (the bundled model by default). Detections per frame come
from its JSON Lines. The per-stage budget (wall and CPU per frame, and CPU by
thread role, pipeline/cpu_budget.py) is printed from its metrics.

Ultralytics: YOLOv8n-seg built from its yaml (random weights, offline) and
exported by Ultralytics to ONNX at 384x640, run with `model.track(...,
tracker="bytetrack.yaml", save=True)` on ONNX Runtime CPU - in its own
virtual environment (`--ultra-python`, default /work/ultra_venv/bin/python;
Ultralytics is AGPL, used here only as a measured baseline), skipped with a
message when that is absent. Its random weights give it ~0 detections, so it
pays nothing for masks or tracking.

Efficiency: Trident's FPS over `trident bench` images/s (batch 1, same model,
frames of the same clip, one torch thread, the engine loaded as `trident run`
loads it): against its throughput line (as many batches at once as the run
keeps in the engine: letterbox + infer + post-process with the machine to
themselves) and against one batch at a time (1 / p50 of the three).

CPU per frame: what every thread of the process spent during the run over
its frames (Trident: the thread budget; Ultralytics: `time.process_time`
around its loop). On a machine shared with other jobs FPS is what the others
leave over; CPU per frame is the cost itself, the better predictor of FPS on
a dedicated box where the pipeline is CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
BUNDLED_CLIP = ROOT / "pipeline" / "assets" / "demo_clip.mp4"
BUNDLED_FP32 = ROOT / "pipeline" / "assets" / "trident_n_synth.onnx"
sys.path.insert(0, str(ROOT))

from engines.bench import cpu_description  # noqa: E402
ULTRA_DEFAULT = "/work/ultra_venv/bin/python"

ULTRA = """
import sys, time
from ultralytics import YOLO
onnx, clip, out, frames = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = YOLO(onnx, task="segment")
n = dets = 0
t0 = c0 = None
for r in model.track(source=clip, tracker="bytetrack.yaml", imgsz=[384, 640], stream=True, save=True, project=out,
                     name="track", verbose=False, device="cpu"):
    n += 1
    dets += len(r.boxes)
    if t0 is None:  # the clock starts at the first result: its lazy model load and warm-up are set-up
        t0, c0, n = time.perf_counter(), time.process_time(), 0
    if frames and n >= frames - 1:
        break
print("RESULT", n, time.perf_counter() - t0, dets, time.process_time() - c0)
"""

EXPORT = """
from ultralytics import YOLO
print(YOLO("yolov8n-seg.yaml").export(format="onnx", imgsz=[384, 640], simplify=False, dynamic=False))
"""


def _run(cmd: list[str], cwd: str | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def trident_run(model: str, clip: str, out: Path, frames: int, extra: list[str]) -> dict:
    metrics = out / "metrics.json"
    cmd = [str(Path(sys.executable).parent / "trident"), "run", "--source", clip, "--model", model, "--device", "cpu",
           "--out", str(out), "--no-progress", "--metrics-json", str(metrics), *extra]
    if frames:
        cmd += ["--max-frames", str(frames)]
    wall, _ = _run(cmd)
    m = json.loads(metrics.read_text())
    n = sum(s["frames"] for s in m["streams"].values())
    jsonl = next(out.glob("*.jsonl"), None)
    dets = [len(json.loads(line)["objects"]) for line in jsonl.read_text().splitlines()] if jsonl else []
    cpu = sum(t["cpu_s"] for t in m.get("threads", {}).values())  # every thread of the process, during the run
    return {"frames": n, "loop_s": m["elapsed_s"], "fps": n / m["elapsed_s"], "process_s": wall,
            "dets_per_frame": statistics.mean(dets) if dets else 0.0, "cpu_ms_per_frame": cpu / max(n, 1) * 1e3, "metrics": m}


def ultra_export(python: str, tmp: Path) -> str | None:
    if not Path(python).exists():
        print(f"Ultralytics skipped: no {python} (python3 -m venv /work/ultra_venv && /work/ultra_venv/bin/pip install ultralytics onnxruntime)")
        return None
    proc = subprocess.run([python, "-c", EXPORT], capture_output=True, text=True, cwd=tmp)
    if proc.returncode:
        print("Ultralytics export failed:", proc.stderr[-800:])
        return None
    return str(tmp / proc.stdout.strip().splitlines()[-1])


def ultra_run(python: str, onnx: str, clip: str, out: Path, frames: int) -> dict:
    wall, stdout = _run([python, "-c", ULTRA, onnx, clip, str(out), str(frames)])
    _, n, loop, dets, cpu = next(line for line in stdout.splitlines() if line.startswith("RESULT")).split()
    return {"frames": int(n), "loop_s": float(loop), "fps": int(n) / float(loop), "process_s": wall, "dets_per_frame": int(dets) / max(int(n), 1),
            "cpu_ms_per_frame": float(cpu) / max(int(n), 1) * 1e3}


def trident_bench(model: str, clip: str, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "trident"), "bench", "--model", model, "--device", "cpu", "--video", clip,
           "--batch", "1", "--iters", "100", "--json", str(out / "bench.json")]
    _run(cmd)
    b = json.loads((out / "bench.json").read_text())
    return {"fps": b["images_per_s"], "serial_fps": b.get("serial_images_per_s", b["images_per_s"]), "concurrent": b.get("concurrent", 1),
            "infer_p50_ms": b["stages"]["infer"]["p50_ms"], "post_p50_ms": b["stages"]["postprocess"]["p50_ms"]}


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def print_budget(name: str, runs: list[dict]) -> None:
    """Median over rounds of each stage's wall and CPU per frame, and CPU per frame by thread role."""
    print(f"\nbudget: {name} (median of {len(runs)} runs; CPU: the stage's own thread)")
    print(f"  {'stage':<12} {'wall ms':>8} {'p50 ms':>8} {'cpu ms':>8}")
    stages = runs[0]["metrics"]["stages"]
    for stage in stages:
        rows = [r["metrics"]["stages"][stage] for r in runs if r["metrics"]["stages"][stage]["count"]]
        if not rows or stage == "end_to_end":
            continue
        cpu = [r["cpu_ms_mean"] for r in rows if "cpu_ms_mean" in r]
        cpu_text = f"{statistics.median(cpu):>8.2f}" if cpu else f"{'':>8}"
        print(f"  {stage:<12} {statistics.median(r['mean_ms'] for r in rows):>8.2f} {statistics.median(r['p50_ms'] for r in rows):>8.2f} {cpu_text}")
    roles = sorted({k for r in runs for k in r["metrics"].get("threads", {})})
    if roles:
        print(f"  {'thread role':<14} {'cpu ms/frame':>12} {'cores':>6}")
        total = 0.0
        for role in roles:
            vals = [r["metrics"]["threads"].get(role, {"ms_per_frame": 0.0, "cores": 0.0}) for r in runs]
            ms = statistics.median(v["ms_per_frame"] for v in vals)
            total += ms
            print(f"  {role:<14} {ms:>12.2f} {statistics.median(v['cores'] for v in vals):>6.2f}")
        print(f"  {'all':<14} {total:>12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(BUNDLED_FP32), help="Trident ONNX (default: the bundled FP32 model)")
    ap.add_argument("--clips", nargs="+", default=[c for c in (VTEST, str(BUNDLED_CLIP)) if Path(c).exists()])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--frames", type=int, default=0, help="stop each run after N frames (0 = the whole clip)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                    help="another `trident run` variant, e.g. 'ort2=--set engine.threads=2' (the default one is always run)")
    ap.add_argument("--ultra-python", default=ULTRA_DEFAULT)
    ap.add_argument("--budget-only", action="store_true", help="Trident variants only: no Ultralytics, no trident bench")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    variants = {"trident": []}
    for v in args.variant:
        name, _, rest = v.partition("=")
        variants[name] = shlex.split(rest)
    results: dict[str, dict[str, list[dict]]] = {clip: {} for clip in args.clips}
    with tempfile.TemporaryDirectory(prefix="trident-e2e-") as tmp_s:
        tmp = Path(tmp_s)
        onnx = None if args.budget_only else ultra_export(args.ultra_python, tmp)
        for rnd in range(args.rounds):
            for clip in args.clips:
                runs = results[clip]
                for name, extra in variants.items():
                    r = trident_run(args.model, clip, tmp / f"{name}-{rnd}", args.frames, extra)
                    runs.setdefault(name, []).append(r)
                    print(f"round {rnd} {Path(clip).name:<16} {name:<14} {r['fps']:6.1f} FPS  ({r['frames']} frames, {r['dets_per_frame']:.1f} det/frame)", flush=True)
                if onnx:
                    r = ultra_run(args.ultra_python, onnx, clip, tmp / f"ultra-{rnd}", args.frames)
                    runs.setdefault("ultralytics", []).append(r)
                    print(f"round {rnd} {Path(clip).name:<16} {'ultralytics':<14} {r['fps']:6.1f} FPS  ({r['frames']} frames, {r['dets_per_frame']:.1f} det/frame)", flush=True)
                if not args.budget_only:
                    b = trident_bench(args.model, clip, tmp / f"bench-{rnd}")
                    runs.setdefault("trident bench", []).append(b)
                    print(f"round {rnd} {Path(clip).name:<16} {'trident bench':<14} {b['fps']:6.1f} images/s", flush=True)
    print(f"\nmachine: {cpu_description()}; medians over rounds, runs alternated")
    for clip, runs in results.items():
        print(f"\n{Path(clip).name}:")
        for name, rows in runs.items():
            if name == "trident bench":
                print(f"  {name:<14} {_median(rows, 'fps'):6.1f} images/s with {rows[0]['concurrent']} batch(es) at once, {_median(rows, 'serial_fps'):.1f} one at a time  "
                      f"(infer p50 {_median(rows, 'infer_p50_ms'):.1f} ms, post p50 {_median(rows, 'post_p50_ms'):.1f} ms)")
            else:
                print(f"  {name:<14} {_median(rows, 'fps'):6.1f} FPS  loop {_median(rows, 'loop_s'):6.1f} s  process {_median(rows, 'process_s'):6.1f} s  "
                      f"{_median(rows, 'dets_per_frame'):5.1f} det/frame  CPU {_median(rows, 'cpu_ms_per_frame'):6.1f} ms/frame  "
                      f"runs {[round(r['fps'], 1) for r in rows]}")
        ours = _median(runs["trident"], "fps")
        if "ultralytics" in runs:
            ratios = [t["fps"] / u["fps"] for t, u in zip(runs["trident"], runs["ultralytics"])]
            # a round's two runs are minutes apart: on a VM whose speed drifts, the median round is the steadier figure
            print(f"  trident / ultralytics: {ours / _median(runs['ultralytics'], 'fps'):.2f}x (per round {[round(x, 2) for x in ratios]}, "
                  f"median round {statistics.median(ratios):.2f}x)")
            # what `time trident run ...` shows a user: imports, model load and warm-up included, both sides
            print(f"  whole process wall, ultralytics / trident: {_median(runs['ultralytics'], 'process_s') / _median(runs['trident'], 'process_s'):.2f}x "
                  f"(start-up and exit included; Ultralytics' loop also leaves out its first frame)")
            # on a machine shared with other jobs the FPS is what the others leave; CPU per frame is the cost itself
            print(f"  CPU per frame, ultralytics / trident: {_median(runs['ultralytics'], 'cpu_ms_per_frame') / _median(runs['trident'], 'cpu_ms_per_frame'):.2f}x")
        if "trident bench" in runs:
            bench = runs["trident bench"]
            print(f"  efficiency: {ours / _median(bench, 'fps') * 100:.0f}% of trident bench's throughput ({bench[0]['concurrent']} at once, "
                  f"the engine + post-process with the machine alone), {ours / _median(bench, 'serial_fps') * 100:.0f}% of one batch at a time")
        for name, rows in runs.items():
            if name not in ("ultralytics", "trident bench"):
                print_budget(f"{Path(clip).name} {name}", rows)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
