"""`trident demo`: the bundled model on the bundled clip, ONNX exported on first use and cached."""

from __future__ import annotations

import json

import av

from pipeline.cli import main
from pipeline.commands import BUNDLED_CLIP, BUNDLED_WEIGHTS, asset


def test_bundled_assets_ship_with_the_package():
    assert asset(BUNDLED_WEIGHTS).stat().st_size > 1_000_000
    with av.open(str(asset(BUNDLED_CLIP))) as c:
        assert c.streams.video[0].frames == 150


def test_demo_writes_video_tracks_and_summary_and_caches_the_onnx(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--max-frames", "20", "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert "exporting the bundled model to ONNX (first run only)" in first
    cached = sorted(p.name for p in (tmp_path / "cache" / "trident").glob("trident_n_synth-*.onnx"))
    assert len(cached) == 2 and cached[0].endswith(".int8.onnx")  # FP32 export and its INT8 copy
    records = [json.loads(line) for line in (out / "demo_clip.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(20))
    # the trained model finds objects in the clip and the tracker gives them identities
    assert sum(len(r["objects"]) for r in records) >= 20
    assert any(o["track_id"] is not None for r in records for o in r["objects"])
    with av.open(str(out / "demo_clip.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 20
    summary = json.loads((out / "summary.json").read_text())
    assert summary["streams"]["demo_clip"]["frames"] == 20
    assert main(["demo", "--out", str(out), "--max-frames", "5", "--no-progress"]) == 0
    assert "exporting" not in capsys.readouterr().out  # second run uses the cached ONNX
