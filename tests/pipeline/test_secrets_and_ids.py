"""Nothing leaks, nothing escapes: camera passwords (whatever characters they hold) appear in no log,
error, metric or output file; stream ids stay safe file names inside --out; a glob source is expanded.

The leak tests run `trident run` in a subprocess, so what is checked is what a user sees: the real
stderr (FFmpeg's own lines included), stdout, metrics.json and every file written under --out.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from pipeline.cli import main
from pipeline.config import expand_patterns
from pipeline.errors import TridentError
from pipeline.metrics import Metrics
from pipeline.runtime import Pipeline, _unique_ids
from pipeline.sources import SourceConfig, classify, redact, stream_name
from pipeline.sources.uri import MAX_ID_BYTES, ffmpeg_url
from tests.pipeline.fakes import FakeEngine
from tests.support.rtsp import RtspServer, free_port, rtsp_available

# distinctive pieces, so a fragment that survived redaction cannot match anything else by chance
PASSWORDS = ["Zq7@Xw9", "Zq7/Xw9#Kp3?Lm5", "Zq7@Xw9:Kp3/Lm5#Rt6?Vb8", "Zq7 Xw9'Kp3", "Zq7%40Xw9"]
FRAGMENTS = ("Zq7", "Xw9", "Kp3", "Lm5", "Rt6", "Vb8")


def _leaks(text: str) -> list[str]:
    return [f for f in FRAGMENTS if f in text]


# --- redaction, one function for every address -------------------------------------------------


@pytest.mark.parametrize("password", PASSWORDS)
def test_redact_hides_the_whole_userinfo_in_the_address_and_in_what_ffmpeg_echoes(password):
    uri = f"rtsp://admin:{password}@10.0.0.7:554/live"
    assert redact(uri, uri) == "rtsp://admin:***@10.0.0.7:554/live"
    # FFmpeg quotes the URL it was given, i.e. the percent-encoded form
    echoed = f"[Errno 111] Connection refused: '{ffmpeg_url(uri)}'"
    assert redact(echoed, uri) == "[Errno 111] Connection refused: 'rtsp://admin:***@10.0.0.7:554/live'"
    assert stream_name(uri) == "10-0-0-7-554_live"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rtsp://admin:hun@ter2@host/x", "rtsp://admin:***@host/x"),  # was admin:***@ter2@host
        ("rtsp://admin:a/b#c?d@host/x", "rtsp://admin:***@host/x"),
        ("open 'rtsp://u:p@h/x', then 'http://a:b@c/'", "open 'rtsp://u:***@h/x', then 'http://a:***@c/'"),
        ("rtsp://TOKEN123@host/x", "rtsp://***@host/x"),  # a userinfo without ':' may itself be the secret
        ("rtspsrc location=rtsp://h/x user-pw=\"s e\" ! appsink", "rtspsrc location=rtsp://h/x user-pw=*** ! appsink"),
        ("http://h/snap.jpg?user=admin&password=Zq7", "http://h/snap.jpg?user=admin&password=***"),
        ("rtsp://h/x and /videos/a:b@c.mp4", "rtsp://h/x and /videos/a:b@c.mp4"),
    ],
)
def test_redact_without_the_uri_still_finds_userinfo_up_to_the_last_at(text, expected):
    assert redact(text) == expected
    assert redact(redact(text)) == redact(text)  # idempotent: redacting twice changes nothing


def test_a_password_with_a_space_is_found_through_the_sources_own_uri():
    uri = "rtsp://admin:Zq7 Xw9@h/x"  # invalid as a URL, and people still write it
    assert redact(f"cannot open {uri}: refused", uri) == "cannot open rtsp://admin:***@h/x: refused"


def test_credentials_reach_ffmpeg_percent_encoded_once():
    assert ffmpeg_url("rtsp://admin:a/b#c?d@h:554/x?q=1") == "rtsp://admin:a%2Fb%23c%3Fd@h:554/x?q=1"
    assert ffmpeg_url("rtsp://admin:hun@ter2@h/x") == "rtsp://admin:hun%40ter2@h/x"
    assert ffmpeg_url("rtsp://admin:p%40ss@h/x") == "rtsp://admin:p%40ss@h/x"  # already encoded: kept
    assert ffmpeg_url("rtsp://admin:50%off@h/x") == "rtsp://admin:50%25off@h/x"  # a lone % is a literal %
    assert ffmpeg_url("rtsp://h/x?a=b") == "rtsp://h/x?a=b"
    assert ffmpeg_url("rtmp://u:p/q@h/app") == "rtmp://u:p/q@h/app"  # FFmpeg's RTMP does not decode userinfo


def test_an_unknown_scheme_is_refused_by_name_without_its_password():
    with pytest.raises(TridentError) as err:
        classify("rstp://admin:Zq7/Xw9@cam/live")
    assert str(err.value).startswith("source 'rstp://admin:***@cam/live' has an unknown scheme 'rstp://'; use one of rtsp://")
    assert not _leaks(str(err.value))


def test_a_scalar_sources_value_is_named_without_its_password():
    from pipeline.config import build_run_config

    with pytest.raises(TridentError) as err:
        build_run_config({"sources": "rtsp://admin:Zq7@Xw9@cam/live"})
    assert "sources: [rtsp://admin:***@cam/live]" in str(err.value) and not _leaks(str(err.value))


# --- stream ids are safe file names ------------------------------------------------------------


@pytest.mark.parametrize(
    "stream_id, expected",
    [
        ("../escaped", "escaped"),
        ("cam/1", "cam_1"),
        ("a b", "a_b"),
        ("..\\..\\win", "win"),
        ("caméra 東京", "caméra_東京"),
        ("x" * 300, "x" * MAX_ID_BYTES),
        ("é" * 300, "é" * (MAX_ID_BYTES // 2)),  # cut on a character, never inside one
        ("", "clip"),  # empty is the default: named after the source
    ],
)
def test_stream_ids_become_safe_file_names(stream_id, expected):
    assert _unique_ids([SourceConfig("/data/clip.mp4", stream_id=stream_id)]) == [expected]


@pytest.mark.parametrize("stream_id", [".", "..", "/", "  ", "***"])
def test_a_stream_id_with_nothing_usable_is_refused_naming_the_key(stream_id):
    with pytest.raises(TridentError) as err:
        _unique_ids([SourceConfig("a.mp4"), SourceConfig("b.mp4", stream_id=stream_id)])
    assert str(err.value).startswith(f"sources[1].stream_id {stream_id!r} has no character usable in a file name; use letters")


def test_ids_stay_unique_after_sanitising_and_regardless_of_case():
    cfgs = [SourceConfig("a.mp4", stream_id=s) for s in ("a b", "a_b", "A_B", "a/b")] + [SourceConfig("/x/a_b.mp4")]
    assert _unique_ids(cfgs) == ["a_b", "a_b-2", "A_B-3", "a_b-4", "a_b-5"]


def test_names_derived_from_urls_never_hold_userinfo():
    assert stream_name("rtsp://admin:a/b#c?d@192.168.1.20:554/cam/1") == "192-168-1-20-554_cam_1"
    assert stream_name("rtsp://Zq7@Xw9@[fe80::1]:8554/s") == "fe80-1-8554_s"
    assert stream_name("http://h/../../etc") == "h_etc"


def test_stream_ids_from_the_config_keep_every_output_inside_out(clips, tiny_onnx, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    (tmp_path / "run").mkdir()
    cfg = tmp_path / "run" / "run.yaml"
    cfg.write_text(
        f"sources:\n  - {{uri: '{clips[1]}', stream_id: '../escaped'}}\n  - {{uri: '{clips[1]}', stream_id: 'cam/1'}}\n"
        f"  - {{uri: '{clips[1]}', stream_id: 'a b'}}\n  - {{uri: '{clips[1]}', stream_id: 'ünï'}}\n"
    )
    out = tmp_path / "run" / "out"
    rc = main(["run", "--config", str(cfg), "--model", str(tiny_onnx), "--out", str(out), "--max-frames", "2", "--no-video", "--no-progress"])
    assert rc == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(["run/run.yaml"] + [f"run/out/{s}{x}" for s in ("escaped", "cam_1", "a_b", "ünï") for x in (".jsonl", ".mot.txt")])
    assert sum(1 for _ in (out / "cam_1.jsonl").open()) == 2  # the frames were kept under the safe name
    assert "sources[0].stream_id '../escaped' is not a safe file name; the stream is called 'escaped'" in caplog.text
    assert "sources[1].stream_id 'cam/1' is not a safe file name; the stream is called 'cam_1'" in caplog.text


def test_an_unusable_stream_id_stops_the_cli_with_one_line(clips, tiny_onnx, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"sources:\n  - {{uri: '{clips[1]}', stream_id: '..'}}\n")
    rc = main(["run", "--config", str(cfg), "--model", str(tiny_onnx), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "trident run: error: sources[0].stream_id '..' has no character usable in a file name; use letters, digits" in err
    assert not list(tmp_path.glob("out/*"))


# --- globs ---------------------------------------------------------------------------------------


def test_a_glob_becomes_one_source_per_matching_file_sorted(clips, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("b.mp4", "a.mp4", "c.avi"):
        shutil.copy(clips[1], folder / name)
    (folder / "d.mp4").mkdir()  # a folder is not a video
    literal = tmp_path / "odd[1].mp4"  # a real file whose name looks like a pattern
    shutil.copy(clips[1], literal)
    got = expand_patterns([str(folder / "*.mp4"), {"uri": str(folder / "[ab].*"), "max_frames": 3}, str(literal), "rtsp://h/x?a=1"])
    assert got == [
        str(folder / "a.mp4"),
        str(folder / "b.mp4"),
        {"uri": str(folder / "a.mp4"), "max_frames": 3},
        {"uri": str(folder / "b.mp4"), "max_frames": 3},
        str(literal),
        "rtsp://h/x?a=1",  # '?' begins a query here, not a pattern
    ]


def test_a_glob_with_one_stream_id_for_many_files_is_refused(clips, tmp_path):
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(clips[1], tmp_path / name)
    with pytest.raises(TridentError, match="matches 2 files but has one stream_id 'cam'; drop stream_id"):
        expand_patterns([{"uri": str(tmp_path / "*.mp4"), "stream_id": "cam"}])


def test_cli_glob_runs_every_file_and_an_empty_pattern_is_named(clips, tiny_onnx, tmp_path, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("b.mp4", "a.mp4"):
        shutil.copy(clips[1], folder / name)
    out = tmp_path / "out"
    args = ["--model", str(tiny_onnx), "--out", str(out), "--max-frames", "2", "--no-video", "--no-progress"]
    assert main(["run", "--source", str(folder / "*.mp4"), *args]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "a.mot.txt", "b.jsonl", "b.mot.txt"]
    capsys.readouterr()
    assert main(["run", "--source", str(folder / "*.mkv"), *args]) == 2
    err = capsys.readouterr().err
    assert err == f"trident run: error: source pattern '{folder / '*.mkv'}' matches no file; check the folder and the pattern\n"


# --- what a run against a camera with such a password prints and writes --------------------------


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("password", PASSWORDS[:3])
def test_an_unreachable_camera_with_any_password_leaks_it_nowhere_and_reports_once(password, tiny_onnx, tmp_path):
    port = free_port()  # nothing listens there
    uri = f"rtsp://admin:{password}@127.0.0.1:{port}/stream"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"sources:\n  - {{uri: {json.dumps(uri)}, max_reconnects: 1, open_timeout_s: 1, reconnect_initial_s: 0.1}}\n")
    out, metrics_json = tmp_path / "out", tmp_path / "metrics.json"
    proc = _cli("run", "--config", str(cfg), "--model", str(tiny_onnx), "--out", str(out), "--metrics-json", str(metrics_json))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    written = {p.name: p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()}
    assert {"127-0-0-1-%d_stream.jsonl" % port, "127-0-0-1-%d_stream.mot.txt" % port} <= set(written)
    everything = proc.stdout + proc.stderr + metrics_json.read_text() + "".join(written.values())
    assert _leaks(everything) == []
    message = f"camera rtsp://admin:***@127.0.0.1:{port}/stream unreachable after 2 attempt(s)"
    # once on stderr (the source's line, when it happened), once in the stream table of the summary
    assert proc.stderr.count(message) == 1 and proc.stdout.count(message) == 1
    assert re.search(rf"^127-0-0-1-{port}_stream +0 .* closed - {re.escape(message)}", proc.stdout, re.M)
    stream = json.loads(metrics_json.read_text())["streams"][f"127-0-0-1-{port}_stream"]
    assert stream["error"].startswith(message) and stream["state"] == "closed"


def test_prometheus_text_and_the_metrics_of_such_a_camera_hold_no_password():
    port = free_port()
    uri = f"rtsp://admin:{PASSWORDS[2]}@127.0.0.1:{port}/stream"
    metrics = Metrics()
    pipe = Pipeline([SourceConfig(uri, open_timeout_s=1, reconnect_initial_s=0.1, max_reconnects=1)], FakeEngine(), metrics=metrics)
    assert pipe.drain() == 0
    (sid,) = pipe.sources
    assert sid == f"127-0-0-1-{port}_stream"
    text = metrics.prometheus_text() + json.dumps(metrics.summary()) + json.dumps(pipe.errors) + metrics.format_table()
    assert f'trident_stream_frames_total{{stream="{sid}"}} 0' in text
    assert "admin:***@127.0.0.1" in text and _leaks(text) == []


# --- a real camera that asks for the password ------------------------------------------------------

@pytest.mark.parametrize("password", ["Zq7@Xw9:Kp3/Lm5#Rt6?Vb8", "Zq7%40Xw9"])
@pytest.mark.rtsp
@pytest.mark.skipif(not rtsp_available(), reason="GStreamer RTSP server not installed (see .ci/run for the Debian packages)")
def test_a_password_with_at_colon_slash_hash_question_opens_the_camera(password, caplog):
    caplog.set_level(logging.DEBUG)
    real = password.replace("%40", "@")  # a percent-encoded password is read as its decoded self
    with RtspServer(user="admin", password=real) as server:
        uri = server.url.replace("rtsp://", f"rtsp://admin:{password}@")
        cfg = SourceConfig(uri, max_frames=5, open_timeout_s=5, read_timeout_s=3, queue_policy="block", max_reconnects=2)
        pipe = Pipeline([cfg], FakeEngine())
        results = list(pipe)
    assert len(results) == 5 and not pipe.errors
    assert results[0].frame.stream_id == f"127-0-0-1-{server.port}_stream"
    assert _leaks(caplog.text) == []


@pytest.mark.rtsp
@pytest.mark.skipif(not rtsp_available(), reason="GStreamer RTSP server not installed (see .ci/run for the Debian packages)")
def test_a_wrong_password_is_one_redacted_message_and_no_retry_loop(tiny_onnx, tmp_path):
    with RtspServer(user="admin", password="right-one") as server:
        uri = server.url.replace("rtsp://", "rtsp://admin:Zq7/Xw9#Kp3@")
        t0 = time.monotonic()
        proc = _cli("run", "--source", uri, "--model", str(tiny_onnx), "--out", str(tmp_path / "out"), "--no-progress")
        took = time.monotonic() - t0
    message = (
        f"camera rtsp://admin:***@127.0.0.1:{server.port}/stream refused the credentials (Server returned 401 Unauthorized "
        "(authorization failed)"
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count(message) == 1 and "check the user name and password in the URL" in proc.stderr
    assert "reconnecting" not in proc.stderr and took < 60  # no retries against a camera that said no
    assert _leaks(proc.stdout + proc.stderr) == []


def test_the_summary_repeats_only_errors_the_stream_table_cannot_show(tmp_path, capsys):
    from pipeline.app import RunSummary
    from pipeline.commands import _report

    errors = {"cam": "camera rtsp://u:***@h/x unreachable", "cam:jsonl": "OSError: disk full"}
    summary = RunSummary(3, tmp_path, {"cam": []}, errors, {"streams": {"cam": {"error": errors["cam"]}}})
    assert _report(summary) != 0
    out = capsys.readouterr().out
    assert "error: cam:jsonl: OSError: disk full" in out and "unreachable" not in out  # the table above carries that one
