"""A small real model for engine tests: the n network at a 64x96 input, random weights, fixed seed."""

from __future__ import annotations

from pathlib import Path

import torch

INPUT_HW = (64, 96)


def tiny_model(heads=("det", "inst", "sem"), seed: int = 0):
    from training.model.config import ModelConfig, build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(input_hw=INPUT_HW, heads=tuple(heads))
    model = build_model(cfg).eval()
    if "det" in heads:
        # A fresh head predicts the 1 % class prior everywhere, so every score ties. Spread the
        # scores as a trained model's are, so NMS order and thresholds are exercised for real.
        with torch.no_grad():
            for branch in model.heads["det"].cls_branches:
                branch[-1].bias.zero_()
                branch[-1].weight.mul_(4.0)
    return model, cfg


def save_tiny_checkpoint(path: Path, heads=("det", "inst", "sem")) -> Path:
    from training.model.checkpoint import save_checkpoint

    model, cfg = tiny_model(heads)
    return save_checkpoint(path, model, cfg, {"note": "test"})


def export_tiny_model(tmp_path: Path, heads=("det", "inst", "sem"), batch_range=(1, 4)) -> Path:
    from training.export import export_onnx

    model, cfg = tiny_model(heads)
    return export_onnx(model, cfg, tmp_path / "tiny.onnx", batch_range=batch_range, source="tiny")
