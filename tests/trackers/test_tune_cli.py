"""`trident tune-tracker`: a seeded search that finds better thresholds than a
bad start, prints YAML that `trident track --config` loads, and refuses bad
input with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.cli import main
from trackers.config import TrackerConfig
from trackers.tune import sample_configs, search_space


def _write_set(tmp_path: Path, n: int = 2) -> tuple[list[str], list[str]]:
    """n small sequences: objects crossing and briefly missed, detections with jitter, low scores and clutter."""
    gts, dets = [], []
    for k in range(n):
        rng = np.random.default_rng(k)
        gt_lines, det_lines = [], []
        objects = [(20 + 30 * k, 30, 4), (400, 40, -3), (100, 200, 2), (300, 220, -2)]
        for f in range(1, 51):
            for i, (x0, y0, vx) in enumerate(objects):
                x = x0 + vx * f
                gt_lines.append(f"{f},{i + 1},{x},{y0},40,80,1,1,1")
                if rng.random() < 0.85:
                    jx, jy = rng.normal(0, 1.5, 2)
                    det_lines.append(f"{f},-1,{x + jx:.2f},{y0 + jy:.2f},40,80,{rng.uniform(0.3, 0.95):.3f},-1,-1,-1")
            if rng.random() < 0.3:
                det_lines.append(f"{f},-1,{rng.uniform(0, 500):.1f},{rng.uniform(0, 300):.1f},30,30,0.35,-1,-1,-1")
        seq = tmp_path / f"seq{k}"
        seq.mkdir()
        (seq / "gt.txt").write_text("\n".join(gt_lines) + "\n")
        (seq / "det.txt").write_text("\n".join(det_lines) + "\n")
        gts.append(str(seq / "gt.txt"))
        dets.append(str(seq / "det.txt"))
    return gts, dets


def test_tune_beats_a_bad_start_and_prints_yaml_that_track_loads(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gts, dets = _write_set(tmp_path)
    start = tmp_path / "start.yaml"
    start.write_text("algorithm: ocsort\nhigh_score: 0.9\nnew_track_score: 0.95\n")   # believes almost nothing
    out = tmp_path / "best.yaml"
    argv = ["tune-tracker", "--gt", *gts, "--dets", *dets, "--trials", "8", "--seed", "3", "--config", str(start),
            "--workers", "1", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert printed == out.read_text()
    header = [line for line in printed.splitlines() if line.startswith("#")]
    hota, start_hota = (float(v) for v in __import__("re").search(r"HOTA ([\d.]+) \(start ([\d.]+)\)", header[1]).groups())
    assert hota > start_hota + 10
    values = yaml.safe_load(printed)
    assert values["algorithm"] == "ocsort" and values["fps"] == 30.0
    assert TrackerConfig.from_dict(values).high_score < 0.9
    # The same seed gives the same answer.
    assert main(argv) == 0 and capsys.readouterr().out == printed
    # The printed YAML is a --config.
    assert main(["track", "--dets", dets[0], "--out", str(tmp_path / "r.txt"), "--config", str(out)]) == 0
    assert "with ocsort" in capsys.readouterr().out


def test_grid_search_walks_grid_levels_and_random_search_stays_in_range() -> None:
    base = TrackerConfig(algorithm="bytetrack")
    space = search_space("bytetrack", ["match_iou", "min_hits"])
    grid = sample_configs(base, space, 20, "grid", 0)
    assert grid[0] == base and len(grid) == 1 + 9                    # 3 IoU levels x 3 min_hits
    assert {c.match_iou for c in grid[1:]} == {0.1, 0.3, 0.5} and {c.min_hits for c in grid[1:]} == {1, 2, 3}
    rand = sample_configs(base, search_space("ocsort"), 30, "random", 1)
    assert len(rand) == 30 and all(0.2 <= c.high_score <= 0.7 and c.low_score <= c.high_score for c in rand[1:])
    assert sample_configs(base, space, 6, "random", 1) == sample_configs(base, space, 6, "random", 1)
    assert "momentum_weight" not in search_space("bytetrack") and "low_score" not in search_space("sort")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gt", "{g0}", "--dets", "{d0}", "{d1}"], "1 --gt file(s) but 2 --dets"),
        (["--gt", "{tmp}/missing.txt", "--dets", "{d0}"], "missing.txt: no such file"),
        (["--gt", "{tmp}/empty.txt", "--dets", "{d0}"], "empty.txt: no ground-truth boxes"),
        (["--gt", "{g0}", "--dets", "{d0}", "--tracker", "sort", "--params", "low_score"], "'low_score' is not searched for sort"),
        (["--gt", "{g0}", "--dets", "{d0}", "--config", "{tmp}/typo.yaml"], "unknown tracker config key 'hgh_score'"),
        (["--gt", "{g0}", "--dets", "{d0}", "--out", "{tmp}"], "is a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    gts, dets = _write_set(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "typo.yaml").write_text("hgh_score: 0.3\n")
    subst = {"{g0}": gts[0], "{d0}": dets[0], "{d1}": dets[1], "{tmp}": str(tmp_path)}
    args = []
    for a in argv:
        for k, v in subst.items():
            a = a.replace(k, v)
        args.append(a)
    code = main(["tune-tracker", *args, "--trials", "2", "--workers", "1"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("trident tune-tracker: error:"), err


def test_zero_trials_is_argparse_usage_error_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gts, dets = _write_set(tmp_path, n=1)
    with pytest.raises(SystemExit) as exc:
        main(["tune-tracker", "--gt", gts[0], "--dets", dets[0], "--trials", "0"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "trident tune-tracker: error: argument --trials: must be >= 1, got 0"
