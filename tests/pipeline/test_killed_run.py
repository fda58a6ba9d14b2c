"""`kill -9` in the middle of `trident run`: the annotated MP4 exists from the first frames and keeps
up with the JSON Lines within about a second of video."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import av
import pytest

from pipeline.commands import BUNDLED_CLIP, BUNDLED_INT8_ONNX, asset

FPS = 30  # the bundled clip's rate: one second of video


def _jsonl_lines(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _decodable_frames(path) -> int:
    n = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                n += 1
    except av.error.FFmpegError:
        pass  # the cut-off tail: what decoded before it is what a player shows
    return n


def _run_and_kill(tmp_path, after_lines: int, first_frame_playable: bool = False) -> tuple[int, int]:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--source", str(asset(BUNDLED_CLIP)), "--model", str(asset(BUNDLED_INT8_ONNX)),
           "--out", str(out), "--no-progress", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jsonl = out / "demo_clip.jsonl"
    deadline = time.monotonic() + 120
    try:
        while _jsonl_lines(jsonl) < after_lines:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run produced no results in 120 s"
            time.sleep(0.005)
        # the early case: kill as soon as the video plays its first frame (the encoder thread may trail the JSONL)
        while first_frame_playable and _decodable_frames(out / "demo_clip.mp4") < 1:
            assert proc.poll() is None and time.monotonic() < deadline, "the MP4 never became playable"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    return _jsonl_lines(jsonl), _decodable_frames(out / "demo_clip.mp4")


def test_a_killed_run_leaves_a_video_within_a_second_of_the_jsonl(tmp_path):
    lines, frames = _run_and_kill(tmp_path, 60)
    assert lines >= 60
    assert frames >= lines - FPS, f"the MP4 holds {frames} frames but the JSONL {lines}"
    assert frames <= lines + FPS  # sanity: both describe the same frames


def test_a_run_killed_early_leaves_a_video_that_plays_from_its_first_frame(tmp_path):
    lines, frames = _run_and_kill(tmp_path, 3, first_frame_playable=True)
    assert frames >= 1  # a fragment per frame: playable before a second of video was encoded
    assert frames >= lines - FPS, f"the MP4 holds {frames} frames but the JSONL {lines}"
