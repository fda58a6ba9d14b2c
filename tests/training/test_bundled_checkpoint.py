"""The bundled checkpoint still performs: scored on synthetic videos it never saw (a seed no training run used)."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.commands import BUNDLED_WEIGHTS, asset

# Measured on exactly this data when the checkpoint was bundled (see README "Measured");
# the floors leave room for library-version noise, not for a broken export or post-process.
FLOORS = {"box_map": 0.75, "mask_map": 0.70, "miou": 0.70}  # measured 0.843 / 0.806 / 0.791


@pytest.mark.slow
@pytest.mark.ci
def test_bundled_checkpoint_scores_above_its_floors_on_unseen_synthetic_videos(tmp_path, capsys):
    from training.synthetic import SynthConfig, generate_dataset

    data = tmp_path / "unseen"
    generate_dataset(SynthConfig(videos=3, frames=40, seed=20261125, val_fraction=0.67), data, workers=1)
    report = tmp_path / "eval.json"
    assert main(["eval", "--weights", str(asset(BUNDLED_WEIGHTS)), "--data", str(data), "--json", str(report)]) == 0
    metrics = json.loads(report.read_text())
    assert metrics["num_images"] == 80
    for key, floor in FLOORS.items():
        assert metrics[key] >= floor, f"{key} {metrics[key]:.3f} < {floor}"
