"""`trident track` and `trident eval-mot` end to end, and their bad-input exits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from trackers.mot_io import read_mot


def _write_scene(tmp_path: Path) -> tuple[Path, Path]:
    """Ground truth of three moving objects and a detection file derived from it."""
    rng = np.random.default_rng(0)
    gt_lines, det_lines = [], []
    for f in range(1, 41):
        for i, (x0, y0, vx) in enumerate([(20, 30, 3), (300, 40, -2), (100, 200, 1)]):
            x = x0 + vx * f
            gt_lines.append(f"{f},{i + 1},{x},{y0},40,80,1,1,1")
            if rng.random() < 0.9:
                jx, jy = rng.normal(0, 1, 2)
                det_lines.append(f"{f},-1,{x + jx:.2f},{y0 + jy:.2f},40,80,{rng.uniform(0.6, 0.95):.3f},-1,-1,-1")
    gt, det = tmp_path / "gt.txt", tmp_path / "det.txt"
    gt.write_text("\n".join(gt_lines) + "\n")
    det.write_text("\n".join(det_lines) + "\n")
    return gt, det


@pytest.mark.parametrize("tracker", ["bytetrack", "sort"])
def test_track_then_eval_mot_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture, tracker: str) -> None:
    gt, det = _write_scene(tmp_path)
    out = tmp_path / "out" / "results.txt"
    assert main(["track", "--dets", str(det), "--out", str(out), "--tracker", tracker, "--fps", "30"]) == 0
    assert f"tracked 40 frames with {tracker}: 3 tracks" in capsys.readouterr().out
    res = read_mot(out)
    assert sorted(set(res.ids.tolist())) == [1, 2, 3] and res.last_frame == 40

    report = tmp_path / "metrics.json"
    assert main(["eval-mot", "--gt", str(gt), "--res", str(out), "--json", str(report)]) == 0
    table = capsys.readouterr().out
    assert "HOTA" in table and "MOTA" in table and "IDF1" in table
    data = json.loads(report.read_text())
    m = data["combined"]
    assert m["idsw"] == 0 and m["idf1"] > 0.85 and m["mota"] > 0.8 and m["hota"] > 0.7
    assert data["sequences"][0]["gt"] == str(gt)


def test_track_reads_a_yaml_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, det = _write_scene(tmp_path)
    cfg = tmp_path / "tracker.yaml"
    cfg.write_text("algorithm: sort\nmin_hits: 3\n")
    assert main(["track", "--dets", str(det), "--out", str(tmp_path / "r.txt"), "--config", str(cfg)]) == 0
    assert "with sort" in capsys.readouterr().out


def test_eval_mot_combines_several_sequences(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gt, _ = _write_scene(tmp_path)
    assert main(["eval-mot", "--gt", str(gt), str(gt), "--res", str(gt), str(gt)]) == 0
    assert "COMBINED" in capsys.readouterr().out


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["track", "--dets", "{tmp}/missing.txt", "--out", "{tmp}/r.txt"], "missing.txt: no such file"),
        (["track", "--dets", "{tmp}/bad.txt", "--out", "{tmp}/r.txt"], "bad.txt:2: expected 6 to 10"),
        (["track", "--dets", "{tmp}/det.txt", "--out", "{tmp}/r.txt", "--fps", "0"], "--fps must be a positive number"),
        (["track", "--dets", "{tmp}/det.txt", "--out", "{tmp}/r.txt", "--config", "{tmp}/typo.yaml"], "unknown tracker config key 'min_hit'"),
        (["track", "--dets", "{tmp}/det.txt", "--out", "{tmp}/r.txt", "--frames", "3"], "--frames 3 is less than"),
        (["eval-mot", "--gt", "{tmp}/det.txt", "--res", "{tmp}/det.txt", "{tmp}/det.txt"], "1 --gt file(s) but 2 --res"),
        (["eval-mot", "--gt", "{tmp}/missing.txt", "--res", "{tmp}/det.txt"], "missing.txt: no such file"),
        (["eval-mot", "--gt", "{tmp}/det.txt", "--res", "{tmp}/det.txt", "--iou", "1.5"], "--iou must be in (0, 1]"),
        (["eval-mot", "--gt", "{tmp}/det.txt", "--res", "{tmp}/dup.txt"], "dup.txt: frame 1 has the same id twice"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    (tmp_path / "det.txt").write_text("1,1,0,0,10,10,0.9\n5,1,0,0,10,10,0.9\n")
    (tmp_path / "bad.txt").write_text("1,-1,0,0,10,10,0.9\n2,-1,0,0\n")
    (tmp_path / "typo.yaml").write_text("min_hit: 3\n")
    (tmp_path / "dup.txt").write_text("1,4,0,0,10,10,0.9\n1,4,5,5,10,10,0.9\n")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2
    err = _one_line_error(capsys)
    assert message in err and err.startswith(f"trident {argv[0]}: error:")
