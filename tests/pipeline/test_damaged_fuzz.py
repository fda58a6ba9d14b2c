"""Damaged variants of real clips - cut at several points, bytes overwritten at several offsets, MPEG-TS
clocks restarting - through a whole run: no traceback, the run ends, every output parses, every decoded
frame is in every output, and frames lost are always named."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pipeline.app import run
from pipeline.commands import BUNDLED_CLIP, asset
from pipeline.config import build_run_config
from tests.pipeline import damage
from tests.pipeline.fakes import FakeEngine

# (name, base clip, how it is damaged, argument); `strict`: the damage provably loses frames, so the
# stream must fail with a message naming the file (elsewhere: failing, or every declared frame decoded)
VARIANTS = [
    *[(f"demo-cut{f}", "demo", "cut", f, True) for f in (0.3, 0.7)],  # the index (moov) is at the end
    *[(f"demo-noise{f}", "demo", "noise", f, False) for f in (0.25, 0.6, 0.9995)],  # the last one hits the index
    *[(f"mp4-cut{f}", "mp4", "cut", f, True) for f in (0.05, 0.35, 0.65, 0.9)],
    *[(f"mp4-noise{f}", "mp4", "noise", f, False) for f in (0.02, 0.3, 0.6)],
    *[(f"avi-cut{f}", "avi", "cut", f, True) for f in (0.02, 0.35, 0.65)],
    ("avi-cut0.97", "avi", "cut", 0.97, False),  # only the index at the end is lost: every frame decodes
    *[(f"avi-noise{f}", "avi", "noise", f, False) for f in (0.25, 0.5, 0.75)],
    ("mkv-cut0.5", "mkv", "cut", 0.5, True),  # Matroska keeps its duration as a tag
    ("mkv-noise0.5", "mkv", "noise", 0.5, False),
    *[(f"ts-cut{f}", "ts", "cut", f, True) for f in (0.3, 0.7)],
    *[(f"ts-noise{f}", "ts", "noise", f, False) for f in (0.3, 0.6)],
    ("ts-joined", "ts", "join", 3, False),
    ("ts-joined-noise", "ts", "join-noise", 0.5, False),
    ("ts-joined-cut", "ts", "join-cut", 0.8, True),
]


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz-bases")
    return {
        "demo": asset(BUNDLED_CLIP),
        "mp4": damage.encode(root / "clip.mp4", "mp4", "h264", 90, options={"movflags": "+faststart"}),
        "avi": damage.encode(root / "clip.avi", "avi", "mpeg4", 90),
        "mkv": damage.encode(root / "clip.mkv", "matroska", "h264", 90),
        "ts": damage.encode(root / "clip.ts", "mpegts", "h264", 45),
    }


def _make(bases: dict[str, Path], base: str, how: str, arg: float, dst: Path) -> Path:
    src = bases[base]
    if how == "cut":
        return damage.cut(src, dst, arg)
    if how == "noise":
        return damage.overwrite(src, dst, arg, 1500, seed=int(arg * 1e4))
    joined = damage.join([src] * (3 if how == "join" else 2), dst)
    if how == "join-noise":
        return damage.overwrite(joined, dst, arg, 1500, seed=3)
    return damage.cut(joined, dst, arg) if how == "join-cut" else joined


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name, base, how, arg, strict", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_a_damaged_clip_runs_to_the_end_with_its_loss_named_and_every_decoded_frame_kept(name, base, how, arg, strict, bases, tmp_path, caplog):
    path = _make(bases, base, how, arg, tmp_path / f"{name}{bases[base].suffix}")
    out, metrics_json = tmp_path / "out", tmp_path / "metrics.json"
    cfg = build_run_config({"sources": [str(path)], "output": {"dir": str(out)}, "metrics_json": str(metrics_json), "progress": False})
    caplog.set_level(logging.INFO)
    summary = run(cfg, engine=FakeEngine(max_batch=4), progress=False)

    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    sid = path.stem
    assert json.loads(metrics_json.read_text())["streams"][sid]["error"] == summary.metrics["streams"][sid]["error"]
    st = summary.metrics["streams"][sid]
    decoded, error = st["frames_decoded"], st["error"]
    assert st["frames"] == decoded == summary.frames
    assert set(summary.errors) <= {sid}  # a damaged input never breaks an output
    if error is not None:
        assert "\n" not in error and str(path) in error and summary.errors[sid] == error
    if strict:
        assert error is not None, f"{name}: frames were lost without a word"
    else:  # frames are missing only with an error that says so
        assert error is not None or not st["frames_missing"]
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and str(path) in r.getMessage()]
    if st["decode_errors"]:  # decode errors are said (in the error, or a warning of their own)
        assert any("decode error" in m or "decoded" in m or "decodable" in m for m in said)
    if how.startswith("join") and decoded > 45:
        assert st["discontinuities"] >= 1 and any("the clock jumps back" in m for m in said)
    # what was decoded is in every output, once, in order
    records = damage.jsonl(out / f"{sid}.jsonl")
    assert [r["frame"] for r in records] == list(range(decoded))
    pts = [r["pts"] for r in records]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    tracked = {r["frame"] + 1 for r in records if r["coasting_tracks"] or any(o["track_id"] is not None for o in r["objects"])}
    assert damage.mot_frames(out / f"{sid}.mot.txt") == tracked
    if decoded:
        assert damage.video_frames(out / f"{sid}.mp4") == decoded
