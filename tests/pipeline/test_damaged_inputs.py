"""Damaged files and restarting clocks: each is named in one line, keeps every decoded frame, and
never stops another stream."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pipeline.app import run
from pipeline.cli import main
from pipeline.config import build_run_config
from pipeline.runtime import Pipeline
from pipeline.sources import SourceConfig
from pipeline.sources.clock import SourceClock
from tests.pipeline import damage
from tests.pipeline.fakes import FakeEngine

FRAMES = 120  # 4 s at 30 fps


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    return {
        "mp4": damage.encode(root / "clip.mp4", "mp4", "h264", FRAMES, options={"movflags": "+faststart"}),
        "avi": damage.encode(root / "clip.avi", "avi", "mpeg4", FRAMES),
        "ts_a": damage.encode(root / "a.ts", "mpegts", "h264", 60),
        "ts_b": damage.encode(root / "b.ts", "mpegts", "h264", 60),
    }


def _run(tmp_path: Path, tiny_onnx: Path, *sources: Path, extra: tuple[str, ...] = ()) -> tuple[int, dict]:
    out = tmp_path / "out"
    rc = main(["run", *[a for s in sources for a in ("--source", str(s))], "--model", str(tiny_onnx), "--out", str(out),
               "--no-progress", "--metrics-json", str(tmp_path / "metrics.json"), "--set", "postprocess.score_threshold=0.3", *extra])
    return rc, json.loads((tmp_path / "metrics.json").read_text())["streams"]


def _assert_outputs_hold_every_decoded_frame(out: Path, sid: str, decoded: int) -> list[dict]:
    records = damage.jsonl(out / f"{sid}.jsonl")
    assert [r["frame"] for r in records] == list(range(decoded))
    assert damage.video_frames(out / f"{sid}.mp4") == decoded
    tracked = {r["frame"] + 1 for r in records if r["coasting_tracks"] or any(o["track_id"] is not None for o in r["objects"])}
    assert damage.mot_frames(out / f"{sid}.mot.txt") == tracked
    return records


def _stream_errors(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and name in r.getMessage()]


@pytest.mark.parametrize(
    "case, make, declared, what",
    [
        ("faststart MP4 cut in half", lambda m, d: damage.cut(m["mp4"], d / "half.mp4", 0.5), FRAMES, "the container declares"),
        ("AVI cut in half", lambda m, d: damage.cut(m["avi"], d / "half.avi", 0.5), FRAMES, "the container declares"),
        ("AVI with random bytes in the middle", lambda m, d: damage.overwrite(m["avi"], d / "noisy.avi", 0.5, 4000), FRAMES, "the container declares"),
    ],
)
def test_a_damaged_file_is_a_named_error_of_its_stream_and_keeps_every_decoded_frame(case, make, declared, what, media, tiny_onnx, tmp_path, caplog):
    path = make(media, tmp_path)
    caplog.set_level(logging.WARNING)
    rc, streams = _run(tmp_path, tiny_onnx, path)
    sid = path.stem
    st = streams[sid]
    decoded = st["frames_decoded"]
    assert rc == 1, case
    assert 0 < decoded < declared and st["frames"] == decoded
    assert st["frames_declared"] == declared and st["frames_missing"] == declared - decoded
    message = st["error"]
    assert "\n" not in message and message.startswith(f"{path}: decoded {decoded} of {declared} frames {what}; ")
    assert "the file is truncated or damaged after " in message and "results are kept" in message
    assert _stream_errors(caplog, str(path)) == [f"{sid}: {message}"]  # said once, on stderr
    _assert_outputs_hold_every_decoded_frame(tmp_path / "out", sid, decoded)


def test_mpeg_ts_files_joined_with_cat_run_to_the_end_on_one_clock(media, clips, tiny_onnx, tmp_path, caplog):
    joined = damage.join([media["ts_a"], media["ts_b"]], tmp_path / "joined.ts")
    caplog.set_level(logging.WARNING)
    rc, streams = _run(tmp_path, tiny_onnx, joined, clips[1])
    assert rc == 0
    st = streams["joined"]
    assert st["frames"] == st["frames_decoded"] == 120 and st["discontinuities"] == 1 and st["error"] is None
    warnings = [r.getMessage() for r in caplog.records if "clock jumps" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(f"{joined}: the clock jumps back from 2.03 s to 0.07 s at frame 60 (")
    assert "timestamps restart" in warnings[0] and "tracks started afresh" in warnings[0]
    records = _assert_outputs_hold_every_decoded_frame(tmp_path / "out", "joined", 120)
    pts = [r["pts"] for r in records]
    assert all(b > a for a, b in zip(pts, pts[1:])) and pts[60] - pts[59] == pytest.approx(1 / 30, abs=2e-3)
    # the other stream of the run is whole
    assert streams["video_0000"]["frames"] == 15 and streams["video_0000"]["error"] is None


def test_tracks_end_at_a_clock_restart_and_the_ids_after_it_are_new(media, tmp_path):
    joined = damage.join([media["ts_a"], media["ts_b"]], tmp_path / "joined.ts")
    pipe = Pipeline([SourceConfig(str(joined))], FakeEngine())
    results = list(pipe)
    ids = [r.tracks.track_ids.tolist() for r in results]
    assert len(results) == 120 and not pipe.errors
    assert ids[59] == [1] and ids[60] == [2] and ids[-1] == [2]  # one steady box: one identity per side
    assert pipe.trackers["joined"].removed_history[-1].track_id == 1


def test_the_clock_places_a_stray_timestamp_between_its_neighbours_and_re_bases_a_restart():
    clock = SourceClock(0.1, jump_s=2.0)
    raws = [0.0, 0.1, 0.2, 9.0, 0.3, 0.4, 0.4, 0.5, 0.0, 0.1, 5.0, 5.1]
    placed = [p for i, r in enumerate(raws) for p in clock.push(r, i)] + clock.flush()
    assert [item for item, _, _ in placed] == list(range(len(raws)))
    pts = [t for _, t, _ in placed]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    jumps = {item: (j.before_s, j.after_s) for item, _, j in placed if j is not None}
    assert jumps == {8: (0.5, 0.0), 10: (0.1, 5.0)}  # 9.0 and the repeated 0.4 were strays, not restarts
    assert clock.stray == 2 and pts[8] == pytest.approx(0.6) and pts[10] == pytest.approx(0.8)


def test_a_stream_whose_tracker_fails_ends_alone_and_the_others_finish(clips, media):
    pipe = Pipeline([SourceConfig(str(clips[0])), SourceConfig(str(media["avi"]))], FakeEngine(max_batch=4))
    tracker = pipe.trackers["clip"]
    real = tracker.update

    def update(dets, frame_time):
        if tracker.frame_count == 5:
            raise ValueError("boom")
        return real(dets, frame_time)

    tracker.update = update
    per_stream: dict[str, list[int]] = {}
    for result in pipe:
        per_stream.setdefault(result.frame.stream_id, []).append(result.frame.index)
    assert per_stream == {"video_0000": list(range(24)), "clip": list(range(5))}
    assert set(pipe.errors) == {"clip"}
    assert pipe.errors["clip"].startswith("tracking failed at frame 5 (ValueError: boom); this stream stopped there")
    summary = pipe.metrics.summary()["streams"]
    assert summary["clip"]["error"] == pipe.errors["clip"] and summary["video_0000"]["error"] is None


def test_a_stream_whose_post_process_fails_ends_alone_with_its_outputs_up_to_there(clips, media, monkeypatch, tmp_path):
    import pipeline.runtime as runtime

    real, ok = runtime.postprocess, {"avi": 0}

    def postprocess(raw, spec, letterboxes, cfg):
        avi = sum(tuple(lb.orig_hw) == (96, 160) for lb in letterboxes)
        if ok["avi"] + avi > 3:  # the AVI's 4th frame cannot be post-processed
            raise RuntimeError("bad output")
        ok["avi"] += avi
        return real(raw, spec, letterboxes, cfg)

    monkeypatch.setattr(runtime, "postprocess", postprocess)
    cfg = build_run_config({"sources": [str(clips[0]), str(media["avi"])], "output": {"dir": str(tmp_path)}, "batch": {"max_batch": 4}})
    summary = run(cfg, engine=FakeEngine(max_batch=4), progress=False)
    assert [r["frame"] for r in damage.jsonl(tmp_path / "video_0000.jsonl")] == list(range(24))
    assert [r["frame"] for r in damage.jsonl(tmp_path / "clip.jsonl")] == [0, 1, 2]  # its frames before the failure
    assert damage.video_frames(tmp_path / "clip.mp4") == 3 and damage.mot_frames(tmp_path / "clip.mot.txt") <= {1, 2, 3}
    assert set(summary.errors) == {"clip"}
    assert summary.errors["clip"].startswith("post-processing failed at frame 3 (RuntimeError: bad output); this stream stopped there")
    assert summary.metrics["streams"]["video_0000"]["frames"] == 24 and summary.metrics["streams"]["clip"]["frames"] == 3


def test_the_opencv_decoder_names_a_truncated_file_too(media, tmp_path):
    half = damage.cut(media["avi"], tmp_path / "half.avi", 0.5)
    pipe = Pipeline([SourceConfig(str(half), decoder="opencv")], FakeEngine())
    frames = pipe.drain()
    assert 0 < frames < FRAMES
    assert pipe.errors["half"].startswith(f"{half}: decoded {frames} of ~{FRAMES} frames ")


def test_decode_errors_missing_frames_and_clock_restarts_reach_every_metrics_output(media, tmp_path):
    noisy = damage.overwrite(media["mp4"], tmp_path / "noisy.mp4", 0.6, 2000)
    joined = damage.join([media["ts_a"], media["ts_b"]], tmp_path / "joined.ts")
    pipe = Pipeline([SourceConfig(str(noisy)), SourceConfig(str(joined))], FakeEngine())
    pipe.drain()
    s = pipe.metrics.summary()["streams"]
    assert s["noisy"]["decode_errors"] > 0 and s["noisy"]["frames_missing"] == FRAMES - s["noisy"]["frames_decoded"] > 0
    assert s["joined"]["discontinuities"] == 1 and s["joined"]["frames_missing"] is None  # its duration restarted too
    prom = pipe.metrics.prometheus_text()
    assert f'trident_stream_decode_errors_total{{stream="noisy"}} {s["noisy"]["decode_errors"]}' in prom
    assert f'trident_stream_missing_frames{{stream="noisy"}} {s["noisy"]["frames_missing"]}' in prom
    assert 'trident_stream_discontinuities_total{stream="joined"} 1' in prom and 'missing_frames{stream="joined"}' not in prom
    table = pipe.metrics.format_table().splitlines()
    header = next(line for line in table if line.startswith("stream"))
    row = next(line for line in table if line.startswith("joined")).split()
    assert header.split()[5:7] == ["dec.err", "clock"] and row[6] == "1"


def test_clock_jump_must_be_positive():
    with pytest.raises(Exception, match="clock_jump_s must be > 0"):
        SourceConfig("a.ts", clock_jump_s=0)
