"""Files through the whole pipeline: nothing lost, order kept, bad files reported, outputs valid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.config import build_run_config
from pipeline.runtime import Pipeline, stream
from pipeline.sources import SourceConfig
from tests.pipeline.fakes import FakeEngine

BIN = Path(sys.executable).parent


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_frame_of_two_batched_files_reaches_the_sinks_once_in_order(clips, tiny_onnx, tmp_path):
    a, b = clips
    rc = main(["run", "--source", str(a), "--source", str(b), "--model", str(tiny_onnx), "--out", str(tmp_path), "--batch", "4", "--no-progress",
               "--set", "postprocess.score_threshold=0.3"])
    assert rc == 0
    ja, jb = _jsonl(tmp_path / "video_0000.jsonl"), _jsonl(tmp_path / "video_0000-2.jsonl")
    assert [r["frame"] for r in ja] == list(range(24))
    assert [r["frame"] for r in jb] == list(range(15))
    assert _decoded_frames(tmp_path / "video_0000.mp4") == 24 and _decoded_frames(tmp_path / "video_0000-2.mp4") == 15
    mot = np.loadtxt(tmp_path / "video_0000.mot.txt", delimiter=",", ndmin=2)
    assert mot.shape[1] == 9 and mot[:, 0].min() >= 1 and mot[:, 0].max() <= 24
    # every object in the JSON lines carries a box, a score and an RLE mask of the frame's size
    objs = [o for r in ja for o in r["objects"]]
    assert objs and all(o["mask"]["size"] == [128, 192] for o in objs)


def test_stream_iterator_yields_frame_results_with_tracks(clips):
    engine = FakeEngine(max_batch=4)
    results = list(stream([str(clips[0]), str(clips[1])], engine, batch=__import__("pipeline.batcher", fromlist=["BatchConfig"]).BatchConfig(max_batch=4)))
    per_stream = {}
    for r in results:
        per_stream.setdefault(r.frame.stream_id, []).append(r.frame.index)
        assert r.tracks is not None and len(r.detections) == 1
    assert per_stream == {"video_0000": list(range(24)), "video_0000-2": list(range(15))}
    assert max(engine.batch_sizes) > 1  # frames of both streams shared engine calls
    last = [r for r in results if r.frame.stream_id == "video_0000"][-1]
    assert last.tracks.track_ids.tolist() == [1]  # one steady object -> one identity all along


def test_a_corrupt_file_is_reported_and_the_other_stream_is_kept(clips, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clips[0].read_bytes()[:3000])  # cut inside the first frames
    notvideo = tmp_path / "notes.mp4"
    notvideo.write_text("this is not a video\n" * 50)
    out = tmp_path / "out"
    engine = FakeEngine()
    cfgs = [SourceConfig(str(clips[1])), SourceConfig(str(broken)), SourceConfig(str(notvideo))]
    pipe = Pipeline(cfgs, engine)
    frames = pipe.drain()
    assert frames >= 15
    assert set(pipe.errors) == {"broken", "notes"}
    assert "truncated" in pipe.errors["broken"] or "corrupt" in pipe.errors["broken"]
    assert "notes.mp4" in pipe.errors["notes"] and "not a video" in pipe.errors["notes"]
    rc = main(["run", "--source", str(notvideo), "--model", "x.onnx", "--out", str(out)])
    assert rc == 2 and "model file x.onnx does not exist" in capsys.readouterr().err


def test_missing_file_and_missing_sources_are_one_line_errors(tiny_onnx, tmp_path, capsys):
    rc = main(["run", "--source", str(tmp_path / "nope.mp4"), "--model", str(tiny_onnx), "--out", str(tmp_path / "o"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1 and "video file" in out and "does not exist" in out
    rc = main(["run", "--model", str(tiny_onnx), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no sources given" in capsys.readouterr().err


def test_unknown_config_key_names_the_key(tiny_onnx, tmp_path, capsys):
    rc = main(["run", "--source", "a.mp4", "--model", str(tiny_onnx), "--set", "tracker.hgh_score=0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and "tracker.hgh_score" in err and "high_score" in err
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("sources: [a.mp4]\nbatch: {max_batch: 2, max_wait: 3}\n")
    rc = main(["run", "--config", str(cfg_file), "--model", str(tiny_onnx)])
    assert rc == 2 and "unknown config key 'batch.max_wait'" in capsys.readouterr().err


def test_config_file_builds_nested_typed_config():
    cfg = build_run_config({"sources": ["a.mp4", {"uri": "rtsp://cam/1", "read_timeout_s": 2}], "batch": {"max_batch": 2}, "tracker": {"algorithm": "sort"}})
    assert [s.uri for s in cfg.sources] == ["a.mp4", "rtsp://cam/1"] and cfg.sources[1].read_timeout_s == 2.0
    assert cfg.batch.max_batch == 2 and cfg.tracker.algorithm == "sort"


def test_sigterm_mid_run_leaves_playable_and_parsable_outputs(tmp_path, tiny_onnx):
    from training.synthetic import SynthConfig, generate_dataset

    generate_dataset(SynthConfig(videos=1, frames=400, width=192, height=128, seed=5), tmp_path / "long", workers=1)
    clip = tmp_path / "long" / "videos" / "video_0000.mp4"
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [str(BIN / "trident"), "run", "--source", str(clip), "--model", str(tiny_onnx), "--out", str(out), "--no-progress",
         "--set", "postprocess.score_threshold=0.3", "--set", "batch.max_batch=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    jsonl = out / "video_0000.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 20):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert "interrupted: outputs were flushed and closed" in stdout, stderr
    assert proc.returncode == 130  # interrupted, distinct from a finished run (0) and a failed source (1)
    records = _jsonl(jsonl)
    assert 20 <= len(records) < 400
    assert [r["frame"] for r in records] == list(range(len(records)))
    assert _decoded_frames(out / "video_0000.mp4") == len(records)
    assert len(np.loadtxt(out / "video_0000.mot.txt", delimiter=",", ndmin=2)) > 0


def test_drop_oldest_bounds_latency_behind_a_slow_engine_and_counts_drops(tmp_path):
    from training.synthetic import SynthConfig, generate_dataset

    generate_dataset(SynthConfig(videos=1, frames=150, width=128, height=96, seed=9), tmp_path, workers=1)
    clip = str(tmp_path / "videos" / "video_0000.mp4")
    engine = FakeEngine(delay_s=0.02, max_batch=1)
    pipe = Pipeline([SourceConfig(clip, queue_policy="drop_oldest", queue_size=3)], engine)
    processed = pipe.drain()
    src = pipe.sources["video_0000"]
    summary = pipe.metrics.summary()["streams"]["video_0000"]
    assert src.queue.max_depth <= 3
    assert summary["dropped"] == src.queue.dropped > 0
    assert processed + src.queue.dropped == 150  # every frame either processed or counted as dropped
    # latency bounded by the queue, not by the length of the input: ~3 frames x 20 ms
    assert summary["latency"]["p99_ms"] < 400
