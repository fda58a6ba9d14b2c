"""Semantic segmentation loss: cross-entropy plus soft Dice, 255 = ignore.

CE alone under-weights thin or rare classes (a few road-marking pixels next
to a sky of background); the Dice term is per class, so each class counts
equally whatever its pixel share.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import TridentError
from training.losses.targets import SEMANTIC_IGNORE, TargetBatch

__all__ = ["SemanticLoss"]


class SemanticLoss(nn.Module):
    """Term "seg" = ce_gain * CE + dice_gain * Dice over images that have semantic labels.

    Logits (stride 4) are upsampled bilinearly to the label resolution, so
    the labels are never resampled and thin structures keep their pixels.
    """

    def __init__(self, num_classes: int, ce_gain: float = 1.0, dice_gain: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ce_gain = ce_gain
        self.dice_gain = dice_gain
        self.loss_names: tuple[str, ...] = ("seg",)

    def forward(self, logits: torch.Tensor, targets: TargetBatch) -> dict[str, torch.Tensor]:
        """logits [B,S,H/4,W/4] -> {"seg": scalar}."""
        labelled = targets.has_semantic
        if not bool(labelled.any()):
            return {"seg": logits.sum() * 0.0}
        labels = targets.semantic[labelled]
        valid = labels != SEMANTIC_IGNORE
        if not bool(valid.any()):
            return {"seg": logits.sum() * 0.0}
        bad = valid & ((labels < 0) | (labels >= self.num_classes))
        if bool(bad.any()):
            value = int(labels[bad][0])
            raise TridentError(
                f"semantic label {value} is outside 0..{self.num_classes - 1} (and is not {SEMANTIC_IGNORE} = ignore); "
                f"the model was built with num_sem_classes={self.num_classes}"
            )
        up = F.interpolate(logits[labelled].float(), size=targets.image_hw, mode="bilinear", align_corners=False)
        ce = F.cross_entropy(up, labels, ignore_index=SEMANTIC_IGNORE)

        prob = up.softmax(1) * valid[:, None]
        onehot = F.one_hot(labels.clamp(0, self.num_classes - 1), self.num_classes).permute(0, 3, 1, 2)
        onehot = onehot * valid[:, None]
        inter = (prob * onehot).sum((0, 2, 3))
        denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
        dice = 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)
        return {"seg": self.ce_gain * ce + self.dice_gain * dice.mean()}
