"""The training loop end to end on tiny data: checkpoints, resume, bad config, overfitting to high mAP."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.cli import main
from pipeline.errors import TridentError
from training.config import load_train_config
from training.train import lr_factor, train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from training.synthetic import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("tiny")
    generate_dataset(SynthConfig(videos=2, frames=6, width=160, height=96, seed=3, val_fraction=0.5), root, workers=1)
    return root


def _overrides(data, out, *extra):
    return [f"data.synthetic={data}", "model.input_hw=[96,160]", "batch_size=4", f"out={out}", "optim.warmup_iters=2", *extra]


def test_lr_warms_up_then_decays_by_cosine():
    assert lr_factor(0, 100, 10, 0.05) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, 0.05) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, 0.05) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_factor(100, 100, 10, 0.05) == pytest.approx(0.05)


def test_train_cli_writes_best_and_last_checkpoints(tiny_data, tmp_path, capsys):
    rc = main(["train", "--no-progress", *_overrides(tiny_data, tmp_path / "run", "epochs=2", "eval_every=1")])
    assert rc == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{\n") :])
    assert summary["best"].endswith("best.pt") and set(summary["best_metrics"]) >= {"box_map", "mask_map", "miou"}
    from training.model.checkpoint import load_model

    model, cfg, extra = load_model(tmp_path / "run" / "best.pt")
    assert cfg.input_hw == (96, 160) and extra["epoch"] in (1, 2) and "box_map" in extra["metrics"]
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 2  # 6 train frames, batch 4, drop_last -> 1 step per epoch


def test_resume_continues_the_step_count(tiny_data, tmp_path):
    first = train(load_train_config(None, _overrides(tiny_data, tmp_path, "epochs=1")), progress=False)
    assert [h["step"] for h in first.history] == [1]
    resumed = train(load_train_config(None, _overrides(tiny_data, tmp_path, "epochs=3", f"resume={tmp_path / 'last.pt'}")), progress=False)
    assert [(h["epoch"], h["step"]) for h in resumed.history] == [(2, 2), (3, 3)]


def test_init_starts_a_new_run_from_checkpoint_weights(tiny_data, tmp_path):
    from training.model.checkpoint import load_model

    first = train(load_train_config(None, _overrides(tiny_data, tmp_path / "a", "epochs=1")), progress=False)
    weights, _, _ = load_model(first.best)
    second = train(load_train_config(None, _overrides(tiny_data, tmp_path / "b", "epochs=1", "optim.lr=0", "ema_decay=0", f"init={first.best}")), progress=False)
    again, _, _ = load_model(second.best)
    # lr=0: the weights the run started from are the weights it saved (BN statistics aside)
    convs = [k for k, v in weights.state_dict().items() if k.endswith("conv.weight")]
    assert convs and all(torch.equal(weights.state_dict()[k], again.state_dict()[k]) for k in convs)
    assert second.history[0]["step"] == 1  # a new run: the schedule starts again


def test_cpu_amp_trains_in_bfloat16_and_keeps_float32_weights(tiny_data, tmp_path, monkeypatch):
    entered = []
    real_autocast = torch.autocast

    def recording_autocast(device_type, dtype=None, enabled=True, **kw):
        entered.append((device_type, dtype, enabled))
        return real_autocast(device_type, dtype=dtype, enabled=enabled, **kw)

    monkeypatch.setattr(torch, "autocast", recording_autocast)
    result = train(load_train_config(None, _overrides(tiny_data, tmp_path, "epochs=2", "cpu_amp=true", "device=cpu")), progress=False)
    assert ("cpu", torch.bfloat16, True) in entered
    assert all(h["loss_det_box"] == h["loss_det_box"] for h in result.history)  # not NaN
    state = torch.load(result.last, weights_only=True)
    assert {v.dtype for k, v in state["model"].items() if v.is_floating_point()} == {torch.float32}


def test_bad_training_inputs_are_clear_errors(tiny_data, tmp_path, capsys):
    assert main(["train", *_overrides(tiny_data, tmp_path, "optim.lrr=1")]) == 2
    assert "unknown config key 'optim.lrr'" in capsys.readouterr().err
    assert main(["train", *_overrides(tmp_path / "nowhere", tmp_path)]) == 2
    assert "dataset.yaml" in capsys.readouterr().err
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TridentError, match="cannot be read|not a Trident training state"):
        train(load_train_config(None, _overrides(tiny_data, tmp_path, f"resume={tmp_path / 'best.pt'}")), progress=False)


@pytest.mark.slow
@pytest.mark.ci
def test_overfitting_a_few_frames_reaches_high_map(tiny_data, tmp_path):
    """Train on the 6 frames of one video and evaluate on the same frames: the model must fit them."""
    from training.data import SyntheticVideoDataset, eval_transforms
    from training.model.checkpoint import load_model
    from training.validate import validate_model

    cfg = load_train_config(None, _overrides(tiny_data, tmp_path, "epochs=60", "data.scale=[1.0,1.0]", "data.translate=0.0", "data.flip=0.0",
                                             "ema_decay=0", "optim.lr=0.004", "eval_every=1000", "optim.warmup_iters=20"))
    result = train(cfg, progress=False)
    model, mcfg, _ = load_model(result.best)
    metrics = validate_model(model, mcfg, SyntheticVideoDataset(tiny_data, "train", transforms=eval_transforms((96, 160))))
    print(metrics.format_table())
    assert metrics.box_map50 > 0.8, metrics.format_table()
    assert metrics.miou > 0.6
