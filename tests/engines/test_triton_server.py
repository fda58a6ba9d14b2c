"""A real Triton Inference Server (PyTriton's tritonserver, `trident serve-model`'s server) on 127.0.0.1.

One server per module (it takes ~10 s to start); its venv (nvidia-pytriton,
onnxruntime, numpy, made from Debian's /usr/bin/python3) is built once into
~/.cache/trident/triton-server (~35 s) and reused. Skipped with the reason
when /usr/bin/python3 or the package index is not there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.commands import BUNDLED_CLIP, asset, bundled_onnx
from pipeline.errors import TridentError

pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed: pip install 'trident-vision[triton]'")

MODEL = "trident"


@pytest.fixture(scope="module")
def server_python():
    from engines.triton_serve import BASE_PYTHON, make_server_venv

    if not Path(BASE_PYTHON).exists():
        pytest.skip(f"{BASE_PYTHON} is absent: PyTriton's stub needs Debian's system Python (see README)")
    try:
        return make_server_venv()
    except TridentError as exc:
        pytest.skip(f"the Triton server venv cannot be made here ({exc})")


@pytest.fixture(scope="module")
def server(server_python, tmp_path_factory):
    from engines.triton_repo import ServingConfig, write_repository
    from engines.triton_serve import ServerProcess, free_port

    repo = tmp_path_factory.mktemp("triton-repo")
    write_repository(bundled_onnx(int8=False), repo, ServingConfig(name=MODEL))
    proc = ServerProcess(repo, MODEL, server_python, free_port())
    proc.start()
    yield proc
    proc.stop()


def _uri(server, **options) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"triton://127.0.0.1:{server.grpc_port}/{MODEL}" + (f"?{query}" if query else "")


def _stream(engine, max_frames: int):
    import pipeline
    from pipeline.sources import SourceConfig

    return list(pipeline.stream(SourceConfig(uri=str(asset(BUNDLED_CLIP)), max_frames=max_frames), engine))


def test_served_model_gives_the_local_detections_and_track_ids(server):
    from engines.loader import load_engine

    local = _stream(load_engine(bundled_onnx(int8=False), device="cpu"), 40)
    remote_engine = load_engine(_uri(server))
    assert remote_engine._shm, "a loopback server is reached through system shared memory"
    remote = _stream(remote_engine, 40)
    assert [r.frame.index for r in remote] == list(range(40))
    assert sum(len(r.detections) for r in local) > 40
    for a, b in zip(local, remote):
        np.testing.assert_allclose(b.detections.boxes, a.detections.boxes, atol=1e-3, rtol=0)
        np.testing.assert_array_equal(b.detections.class_ids, a.detections.class_ids)
        np.testing.assert_array_equal(b.tracks.track_ids, a.tracks.track_ids)


def test_the_spec_comes_from_the_server_and_a_wrong_name_is_one_clear_error(server):
    from dataclasses import replace

    from engines.loader import load_engine
    from engines.spec import read_onnx_spec

    engine = load_engine(_uri(server, shm="off"))
    assert engine.spec == replace(read_onnx_spec(bundled_onnx(int8=False)), dynamic_hw=False)  # served at input_hw only
    engine.close()
    with pytest.raises(TridentError, match=r"does not serve a ready model named 'nope'"):
        load_engine(f"triton://127.0.0.1:{server.grpc_port}/nope")
    with pytest.raises(TridentError, match="unreachable"):  # the HTTP port does not speak gRPC, and gRPC-only was asked
        load_engine(f"triton://127.0.0.1:{server.http_port}/{MODEL}?protocol=grpc")
    http = load_engine(f"triton://127.0.0.1:{server.http_port}/{MODEL}?shm=off")  # auto: gRPC fails there, HTTP answers
    assert http.protocol == "http" and len(_stream(http, 3)) == 3


def _batch_counts(server) -> dict[int, int]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    stats = client.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
    client.close()
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def test_three_run_processes_share_one_server_and_it_batches_across_them(server, tmp_path):
    """Each client sends one frame per request (--batch 1): any batch > 1 in Triton's statistics was
    formed across processes. Every frame of every file arrives; the JSONL equals a local run's.

    The three clients must overlap in time: the local reference runs first (not beside them, where it
    staggered their start-up), and each sends 60 frames - with 30, a fast CPU finished one client's
    frames before the next had imported torch, and no batch formed (CI, Zen 5 EPYC)."""
    before = _batch_counts(server)
    frames = 60
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--source", str(asset(BUNDLED_CLIP)), "--max-frames", str(frames),
           "--batch", "1", "--no-video", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    local = subprocess.run([*cmd, "--model", str(bundled_onnx(int8=False)), "--out", str(tmp_path / "local")], capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stdout[-1500:] + local.stderr[-1500:]
    procs = [subprocess.Popen([*cmd, "--model", _uri(server, shm="off"), "--out", str(tmp_path / f"n{i}")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(3)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-1500:] for o in outs)

    def objects(folder: Path) -> list:
        lines = [json.loads(line) for line in next(folder.glob("*.jsonl")).read_text().splitlines()]
        return [(r["frame"], [(o["class_id"], o["track_id"], o["box"]) for o in r["objects"]]) for r in lines]

    reference = objects(tmp_path / "local")
    assert [f for f, _ in reference] == list(range(frames))
    for i in range(3):
        got = objects(tmp_path / f"n{i}")
        assert [f for f, _ in got] == list(range(frames))
        for (_, a), (_, b) in zip(reference, got):
            assert [(c, t) for c, t, _ in a] == [(c, t) for c, t, _ in b]
            assert all(np.abs(np.subtract(ba, bb)).max() <= 0.011 for (_, _, ba), (_, _, bb) in zip(a, b))  # JSONL rounds to 0.01
    after = _batch_counts(server)
    grown = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert sum(size * n for size, n in grown.items()) == 3 * (frames + 1)  # + each engine's one request at open
    assert sum(n for size, n in grown.items() if size > 1) > 0, f"no batch larger than 1 was formed: {grown}"


@pytest.mark.rtsp
def test_a_server_restart_mid_run_loses_no_file_frame_and_live_frames_drop(server):
    from tests.support.rtsp import RtspServer, rtsp_available

    import pipeline
    from engines.loader import load_engine
    from pipeline.sources import SourceConfig

    if not rtsp_available():
        pytest.skip("GStreamer RTSP server not installed (see .ci/run for the Debian packages)")
    engine = load_engine(_uri(server, retry_s=90))
    file_frames = 80
    with RtspServer(fps=15) as camera:
        sources = [SourceConfig(uri=str(asset(BUNDLED_CLIP)), stream_id="file", max_frames=file_frames),
                   SourceConfig(uri=camera.url, stream_id="live", max_frames=240)]
        pipe = pipeline.stream(sources, engine)
        seen: dict[str, list[int]] = {"file": [], "live": []}
        restarted = threading.Event()

        def restart() -> None:
            server.stop()
            time.sleep(2.0)
            server.start()
            restarted.set()

        def on_result(result) -> None:
            seen[result.frame.stream_id].append(result.frame.index)
            if len(seen["file"]) == 10 and result.frame.stream_id == "file":
                threading.Thread(target=restart, daemon=True).start()

        pipe.drain(on_result)
    assert restarted.is_set()
    assert seen["file"] == list(range(file_frames)), "a file source waits for the server and loses nothing"
    live = pipe.metrics.summary()["streams"]["live"]
    assert live["dropped"] > 0, "a live source keeps its latency bounded by dropping while the server is away"
    assert engine.stats.outages >= 1 and engine.stats.retries >= 2 and engine.stats.outage_s > 2.0
    assert not pipe.errors
