"""Served (Triton) vs local inference, side by side on this machine.

    .venv/bin/python benchmarks/bench_triton.py [--frames 200] [--rounds 2] [--clients 3]

1. Throughput: one `trident run` with ONNX Runtime in-process, then `--clients`
   `trident run` processes against one `trident serve-model` server (PyTriton
   tritonserver, dynamic batching), alternately for `--rounds`; FPS from each
   run's own metrics (frames / processing time), summed over the clients.
2. Latency: one frame at a time, local `engine.infer` vs the served one over
   gRPC (socket) and over system shared memory, alternately; p50 of each and
   the difference ("added latency").
3. Bytes per frame on the wire (tensor payload, both directions).

`--control` adds `--clients` local processes (each its own ONNX Runtime) per
round: the same number of processes without a server, because on a shared
machine more processes also means a larger share of the CPU.

The server venv is the one `trident serve-model --make-venv` makes. The machine
is shared by other jobs: read medians, not single numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.bench import cpu_description  # noqa: E402
from engines.triton_repo import ServingConfig, write_repository  # noqa: E402
from engines.triton_serve import ServerProcess, find_server_python, free_port  # noqa: E402
from pipeline.commands import BUNDLED_CLIP, asset, bundled_onnx  # noqa: E402


def run_processes(models: list[str], frames: int, out: Path, extra_env: dict | None = None) -> list[float]:
    """Start one `trident run` per model at once; each one's FPS from its metrics JSON."""
    procs = []
    for i, model in enumerate(models):
        metrics = out / f"m{i}.json"
        cmd = [sys.executable, "-m", "pipeline.cli", "run", "--model", model, "--source", str(asset(BUNDLED_CLIP)), "--max-frames", str(frames),
               "--no-video", "--no-progress", "--out", str(out / f"r{i}"), "--metrics-json", str(metrics)]
        procs.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(extra_env or {}))), metrics))
    fps = []
    for proc, metrics in procs:
        _, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"trident run failed: {err[-2000:]}")
        streams = json.loads(metrics.read_text())["streams"]
        fps.append(sum(s["fps"] for s in streams.values()))
    return fps


def _compute_ms(client, model: str) -> tuple[int, float]:
    """(executions, total ms) of the model's compute_infer so far, from Triton's own statistics."""
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]["inference_stats"]["compute_infer"]
    return int(stats.get("count", 0)), int(stats.get("ns", 0)) / 1e6


def latency(local, remotes: dict, frames: list, iters: int, client, model: str) -> dict[str, dict[str, float]]:
    """p50 wall time per frame of each engine, alternately; for the served ones also the server's own
    model time (compute_infer, which includes PyTriton's hop to its Python process), so the added
    latency can be read without comparing two processes' share of a loaded CPU."""
    from engines.preprocess import letterbox_batch

    batches = [letterbox_batch([f], local.spec.input_hw)[0] for f in frames]
    times: dict[str, list[float]] = {"local": [], **{k: [] for k in remotes}}
    compute = {k: 0.0 for k in remotes}
    overhead: dict[str, list[float]] = {k: [] for k in remotes}  # per request: wall - the server's model time
    for i in range(iters):
        images = batches[i % len(batches)]
        for name, engine in (("local", local), *remotes.items()):
            before = _compute_ms(client, model) if name in remotes else None
            t0 = time.perf_counter()
            engine.infer(images)
            times[name].append((time.perf_counter() - t0) * 1e3)
            if before is not None:
                spent = _compute_ms(client, model)[1] - before[1]  # requests are sequential: this one's model time
                compute[name] += spent
                overhead[name].append(times[name][-1] - spent)
    out = {k: {"p50_ms": float(np.percentile(v, 50)), "mean_ms": float(np.mean(v))} for k, v in times.items()}
    for k in remotes:
        out[k]["server_model_mean_ms"] = compute[k] / iters
        out[k]["added_mean_ms"] = out[k]["mean_ms"] - out[k]["server_model_mean_ms"]
        out[k]["added_p50_ms"] = float(np.percentile(overhead[k], 50))
        out[k]["added_p50_vs_local_ms"] = out[k]["p50_ms"] - out["local"]["p50_ms"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--queue-delay-us", type=int, default=ServingConfig().max_queue_delay_us)
    p.add_argument("--python", default=None, help="server venv interpreter (default: the --make-venv one)")
    p.add_argument("--skip-fps", action="store_true", help="latency and bytes only")
    p.add_argument("--control", action="store_true", help="also --clients local processes (each its own ONNX Runtime): same process count, no server")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    from engines.loader import load_engine
    from pipeline.bench_command import video_frames

    onnx = bundled_onnx(int8=False)
    work = Path(tempfile.mkdtemp(prefix="bench-triton-"))
    write_repository(onnx, work / "repo", ServingConfig(name="trident", max_queue_delay_us=args.queue_delay_us))
    server = ServerProcess(work / "repo", "trident", find_server_python(args.python), free_port()).start()
    uri = f"triton://127.0.0.1:{server.grpc_port}/trident"
    result: dict = {"cpu": cpu_description()}
    try:
        local_fps, remote_fps, control_fps = [], [], []
        for r in range(0 if args.skip_fps else args.rounds):
            local_fps.append(sum(run_processes([str(onnx)], args.frames, work / f"local{r}")))
            if args.control:
                control = run_processes([str(onnx)] * args.clients, args.frames, work / f"control{r}")
                control_fps.append(sum(control))
                print(f"round {r + 1}: {args.clients} local processes {control_fps[-1]:.1f} FPS total", flush=True)
            per_client = run_processes([uri] * args.clients, args.frames, work / f"remote{r}")
            remote_fps.append(sum(per_client))
            print(f"round {r + 1}: 1 local {local_fps[-1]:.1f} FPS | {args.clients} served {remote_fps[-1]:.1f} FPS total ({', '.join(f'{f:.1f}' for f in per_client)})", flush=True)
        if local_fps:
            result["local_fps"], result["served_fps"] = statistics.median(local_fps), statistics.median(remote_fps)
            result["ratio"] = result["served_fps"] / result["local_fps"]
        if control_fps:
            result["local_processes_fps"] = statistics.median(control_fps)

        frames = video_frames(asset(BUNDLED_CLIP), 8)
        local = load_engine(onnx, device="cpu")
        remotes = {"grpc": load_engine(uri + "?shm=off"), "shm": load_engine(uri + "?shm=on")}
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        result["queue_delay_us"] = args.queue_delay_us
        result["latency"] = latency(local, remotes, frames, args.iters, client, "trident")
        client.close()
        sock = remotes["grpc"].stats
        result["bytes_per_frame"] = {"sent": sock.bytes_sent / sock.frames, "received": sock.bytes_received / sock.frames}
        for e in (local, *remotes.values()):
            e.close()
    finally:
        server.stop()
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
