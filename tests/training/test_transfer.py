"""Starting a model for other classes from a checkpoint: shared weights copied, class rows moved by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.errors import TridentError
from training.model.checkpoint import load_model
from training.model.config import ModelConfig, build_model
from training.model.transfer import init_from_checkpoint

BUNDLED = Path(__file__).resolve().parents[2] / "pipeline" / "assets" / "trident_n_synth.pt"


def test_class_rows_follow_their_names_and_new_classes_start_fresh():
    cfg = ModelConfig(num_classes=3, class_names=("truck", "person", "bicycle"), num_sem_classes=3,
                      sem_class_names=("background", "person", "bicycle"))
    model = build_model(cfg)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_checkpoint(model, cfg, BUNDLED)
    old = load_model(BUNDLED)[0].state_dict()  # classes person, car, truck, ball
    new = model.state_dict()
    for level in range(3):
        w = f"heads.det.cls_branches.{level}.2.weight"
        assert torch.equal(new[w][0], old[w][2]) and torch.equal(new[w][1], old[w][0])  # truck, person
        assert torch.equal(new[w][2], fresh[w][2])  # bicycle: not in the checkpoint
    assert torch.equal(new["heads.sem.classifier.bias"][1], old["heads.sem.classifier.bias"][3])  # person
    assert torch.equal(new["backbone.stem.conv.weight"], old["backbone.stem.conv.weight"])
    assert report.kept_classes == ("truck", "person") and report.new_classes == ("bicycle",) and not report.fresh


def test_another_architecture_is_refused_with_the_key_to_set():
    cfg = ModelConfig(size="s")
    with pytest.raises(TridentError, match="model.size='n'"):
        init_from_checkpoint(build_model(cfg), cfg, BUNDLED)


def test_a_decoder_stride_8_model_starts_from_the_bundled_stride_4_checkpoint_with_every_weight():
    cfg = ModelConfig(decoder_stride=8)
    model = build_model(cfg)
    report = init_from_checkpoint(model, cfg, BUNDLED)
    old = load_model(BUNDLED)[0].state_dict()
    assert report.fresh == () and report.remapped == 0 and report.copied == len(old)
    for key in ("heads.sem.post.conv.weight", "heads.inst.protos.post.conv.weight"):
        assert torch.equal(model.state_dict()[key], old[key])
