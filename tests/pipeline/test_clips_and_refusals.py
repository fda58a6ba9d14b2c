"""Clips recorded around events (decodable, of the right length, one per burst) and `trident run` refusing bad zones/events input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.pipeline.moving_box import LINE_X, MovingBoxEngine, write_clip

FPS = 30


def pause_then_cross(frame: int) -> float:
    """Crosses at ~frame 30 and back at ~45 (one burst), stands still, crosses again at ~150 (a second clip)."""
    if frame < 25:
        return LINE_X + 20
    if frame < 35:
        return LINE_X + 20 - 4 * (frame - 25)  # to LINE_X - 20
    if frame < 40:
        return LINE_X - 20
    if frame < 50:
        return LINE_X - 20 + 4 * (frame - 40)
    if frame < 145:
        return LINE_X + 20
    if frame < 155:
        return LINE_X + 20 - 4 * (frame - 145)
    return LINE_X - 20


def _frames_of(path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        return [f.time for f in c.decode(video=0)]


def test_clips_hold_pre_and_post_roll_around_each_burst_and_events_name_them(tmp_path):
    from pipeline.app import run
    from pipeline.config import build_run_config

    clip = write_clip(tmp_path / "walk.mp4", 200, FPS)
    zones = tmp_path / "zones.yaml"
    zones.write_text(f"lines:\n  - {{name: door, points: [[{LINE_X}, 0], [{LINE_X}, 64]]}}\n")
    pre, post = 0.51, 0.51  # not a whole number of frames: no boundary falls on a frame's time
    cfg = build_run_config({
        "sources": [str(clip)], "output": {"dir": str(tmp_path / "out"), "mot": False, "jsonl": False},
        "zones": str(zones), "events": [str(tmp_path / "events.jsonl")],
        "clips": {"dir": str(tmp_path / "clips"), "pre_roll_s": pre, "post_roll_s": post}, "progress": False,
    })
    summary = run(cfg, engine=MovingBoxEngine(pause_then_cross))
    assert summary.frames == 200 and not summary.errors
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    crossings = [e for e in events if e["kind"] == "line_cross"]
    assert [e["direction"] for e in crossings] == ["in", "out", "in"]
    # bursts by the planner's rule: an event within `post` of the previous one's end joins its clip
    bursts: list[list[dict]] = []
    for e in crossings:
        if bursts and e["pts"] <= bursts[-1][-1]["pts"] + post:
            bursts[-1].append(e)
        else:
            bursts.append([e])
    assert len(bursts) == 2 and len(bursts[0]) == 2
    files = sorted((tmp_path / "clips").glob("*.mp4"))
    assert len(files) == 2
    for burst in bursts:
        path = burst[0]["clip"]
        assert all(e["clip"] == path for e in burst) and path in map(str, files)
        first, last = burst[0]["frame"], burst[-1]["frame"]
        start = next(i for i in range(200) if i / FPS >= first / FPS - pre)  # the ring's oldest frame
        end = next(i for i in range(200) if i / FPS >= last / FPS + post)  # the first frame at or past the end
        times = _frames_of(path)
        assert len(times) == end - start + 1, (path, start, end, len(times))
        assert times[-1] - times[0] == pytest.approx((end - start) / FPS, abs=0.01)  # played at the stream's rate


def test_a_stream_that_ends_inside_a_clip_leaves_a_complete_file(tmp_path):
    from pipeline.app import run
    from pipeline.config import build_run_config

    clip = write_clip(tmp_path / "walk.mp4", 40, FPS)
    zones = tmp_path / "zones.yaml"
    zones.write_text(f"lines:\n  - {{name: door, points: [[{LINE_X}, 0], [{LINE_X}, 64]]}}\n")
    cfg = build_run_config({
        "sources": [str(clip)], "output": {"dir": str(tmp_path / "out"), "video": False, "mot": False, "jsonl": False},
        "zones": str(zones), "clips": {"dir": str(tmp_path / "clips"), "pre_roll_s": 0.2, "post_roll_s": 5, "annotated": False},
        "progress": False,
    })
    run(cfg, engine=MovingBoxEngine(pause_then_cross))
    (path,) = (tmp_path / "clips").glob("*.mp4")
    event_frame = int(path.stem.rsplit("-f", 1)[1])  # clips are named after their first event's frame
    start = next(i for i in range(40) if i / FPS >= event_frame / FPS - 0.2)
    assert len(_frames_of(path)) == 40 - start  # raw frames from the pre-roll to the stream's last frame


def _trident(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--zones", "{bad}"], ["zones file", "lines[0].points", "at least 2 points"]),
        (["--zones", "{good}", "--tracker", "none"], ["--zones counts tracks", "--tracker"]),
        (["--record-clips", "{tmp}/clips"], ["--record-clips", "--zones"]),
        (["--events", "ftp://127.0.0.1/x"], ["--events", "unknown scheme ftp://", "mqtt://HOST:PORT/TOPIC"]),
        (["--events", "events.txt"], ["neither an address nor a .jsonl file"]),
        (["--events", "mqtt://user:hunter2@127.0.0.1:99999/t"], ["port 99999", "user:***@"]),
        (["--events", "{tmp}/nofolder/e.jsonl"], ["does not exist"]),
        (["--zones", "{classes}"], ["'persn' is not a class of the model", "person, car, truck, ball"]),
    ],
)
def test_run_refuses_bad_zones_and_events_with_one_line(tmp_path, extra, words):
    from pipeline.commands import BUNDLED_CLIP, BUNDLED_INT8_ONNX, asset

    (tmp_path / "bad.yaml").write_text("lines:\n  - {name: door, points: [[1, 2]]}\n")
    (tmp_path / "good.yaml").write_text("lines:\n  - {name: door, points: [[1, 2], [3, 4]]}\n")
    (tmp_path / "classes.yaml").write_text("lines:\n  - {name: door, points: [[1, 2], [3, 4]], classes: [persn]}\n")
    names = {"bad": tmp_path / "bad.yaml", "good": tmp_path / "good.yaml", "classes": tmp_path / "classes.yaml", "tmp": tmp_path}
    args = [a.format(**names) for a in extra]
    out = _trident("run", "--source", str(asset(BUNDLED_CLIP)), "--model", str(asset(BUNDLED_INT8_ONNX)), "--out", str(tmp_path / "out"), "--no-progress", *args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "hunter2" not in out.stderr + out.stdout
    assert not list((tmp_path / "out").glob("*.mp4"))  # refused before anything ran


def test_mqtt_without_paho_names_the_extra(monkeypatch):
    from pipeline.errors import TridentError
    from pipeline.events.factory import make_event_sink

    monkeypatch.setitem(sys.modules, "paho", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(TridentError, match=r"needs paho-mqtt: pip install 'trident-vision\[events\]'"):
        make_event_sink("mqtt://127.0.0.1:1883/t")
