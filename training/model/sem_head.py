"""Semantic segmentation head ("sem"): P3 -> per-pixel class logits at stride 4.

P3 of the PAN-FPN has already received the stride-16/32 context through
the top-down path, so a light decoder on P3 alone sees the whole scene; the
2x upsample recovers the edges that stride 8 would blur.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.losses.semantic_loss import SemanticLoss
from training.losses.targets import TargetBatch
from training.model.layers import ConvBNAct

__all__ = ["SemanticHead"]


class SemanticHead(nn.Module):
    """[P3, P4, P5] -> sem_logits [B,S,H/4,W/4], S = classes including background."""

    output_names: tuple[str, ...] = ("sem_logits",)

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        width: int | None = None,
        loss: SemanticLoss | None = None,
        decoder_stride: int = 4,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.decoder_stride = decoder_stride
        width = width or max(in_channels[0] // 2, 16)
        self.pre = ConvBNAct(in_channels[0], width, 3)
        self.post = ConvBNAct(width, width, 3)
        self.classifier = nn.Conv2d(width, num_classes, 1)
        self.criterion = loss if loss is not None else SemanticLoss(num_classes)
        self.loss_names = self.criterion.loss_names
        self.requires: tuple[str, ...] = ()

    def forward(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.pre(feats[0])
        if self.decoder_stride == 8:
            logits = self.classifier(self.post(x))
            return {"sem_logits": F.interpolate(logits, scale_factor=2.0, mode="bilinear", align_corners=False)}
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return {"sem_logits": self.classifier(self.post(x))}

    def export(self, raw: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(sem_logits [B,S,H/4,W/4]); softmax/argmax happen in post-processing."""
        return (raw["sem_logits"],)

    def loss(self, raw: dict[str, torch.Tensor], targets: TargetBatch, shared: dict) -> dict[str, torch.Tensor]:
        return self.criterion(raw["sem_logits"], targets)
