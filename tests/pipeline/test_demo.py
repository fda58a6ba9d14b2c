"""`trident demo`: the bundled model (shipped as ONNX) on the bundled clip."""

from __future__ import annotations

import json

import av

from pipeline.cli import main
from pipeline.commands import BUNDLED_CLIP, BUNDLED_INT8_ONNX, BUNDLED_ONNX, BUNDLED_WEIGHTS, asset


def test_bundled_assets_ship_with_the_package():
    assert asset(BUNDLED_WEIGHTS).stat().st_size > 1_000_000
    with av.open(str(asset(BUNDLED_CLIP))) as c:
        assert c.streams.video[0].frames == 150


def test_demo_writes_video_tracks_and_summary_from_the_shipped_int8_onnx(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--max-frames", "20", "--no-progress"]) == 0
    assert "exporting" not in capsys.readouterr().out  # nothing to export: the ONNX files ship with the package
    assert not (tmp_path / "cache" / "trident").exists()
    records = [json.loads(line) for line in (out / "demo_clip.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(20))
    # the trained model finds objects in the clip and the tracker gives them identities
    assert sum(len(r["objects"]) for r in records) >= 20
    assert any(o["track_id"] is not None for r in records for o in r["objects"])
    with av.open(str(out / "demo_clip.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 20
    summary = json.loads((out / "summary.json").read_text())
    assert summary["streams"]["demo_clip"]["frames"] == 20
    assert main(["demo", "--out", str(out), "--max-frames", "5", "--no-progress", "--fp32"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["streams"]["demo_clip"]["frames"] == 5


def test_shipped_onnx_files_are_exports_of_the_shipped_checkpoint(tmp_path):
    """The ONNX assets must never drift from the checkpoint: re-export it and compare outputs on clip frames."""
    import numpy as np

    from engines.loader import load_engine
    from engines.preprocess import letterbox_batch
    from pipeline.bench_command import video_frames
    from training.export import export_checkpoint

    fresh = load_engine(export_checkpoint(asset(BUNDLED_WEIGHTS), tmp_path / "fresh.onnx", batch_range=(1, 8)), device="cpu")
    fp32, int8 = load_engine(asset(BUNDLED_ONNX), device="cpu"), load_engine(asset(BUNDLED_INT8_ONNX), device="cpu")
    assert fp32.spec == fresh.spec and (fp32.spec.precision, int8.spec.precision) == ("fp32", "int8")
    assert int8.spec.batch_range == fp32.spec.batch_range == (1, 1, 8)
    images, _ = letterbox_batch(video_frames(asset(BUNDLED_CLIP), 2), fp32.spec.input_hw)
    ref, got, q = fresh.infer(images), fp32.infer(images), int8.infer(images)
    for name in fp32.spec.output_names:
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), atol=1e-4, rtol=1e-4, err_msg=name)
    # INT8 is the same network up to quantization noise
    assert (q.sem_logits.argmax(1) == ref.sem_logits.argmax(1)).mean() > 0.95
    confident = ref.scores.max(-1) > 0.5
    assert confident.sum() > 10 and np.median(np.abs(q.boxes[confident] - ref.boxes[confident])) < 2.0
