"""Detection loss: TAL assignment, IoU-aware classification, CIoU box and DFL terms."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import complete_box_iou_loss

from training.losses.assigner import Assignment, TaskAlignedAssigner
from training.losses.targets import TargetBatch

__all__ = ["DetectionLoss", "quality_focal_loss", "varifocal_loss", "distribution_focal_loss"]

ClassificationLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def quality_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """QFL (Generalized Focal Loss): BCE against a soft IoU-quality target,
    down-weighted by |sigmoid - target|^gamma so easy negatives fade. Returns the sum."""
    prob = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * (prob - target).abs().pow(gamma)).sum()


def varifocal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.75, gamma: float = 2.0) -> torch.Tensor:
    """VFL (VarifocalNet): positives weighted by their quality target, negatives
    by alpha * p^gamma, so only negatives are focal-suppressed. Returns the sum."""
    prob = logits.sigmoid()
    weight = torch.where(target > 0, target, alpha * prob.detach().pow(gamma))
    return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum()


def distribution_focal_loss(dist_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DFL: push the bin distribution's mass onto the two bins around the real
    distance, weighted by proximity. dist_logits [N,R], target [N] in [0,R-1). Returns [N]."""
    left = target.floor().long()
    w_right = target - left.float()
    logp = F.log_softmax(dist_logits.float(), dim=-1)
    nll_left = -logp.gather(-1, left[:, None]).squeeze(-1)
    nll_right = -logp.gather(-1, (left + 1)[:, None]).squeeze(-1)
    return nll_left * (1.0 - w_right) + nll_right * w_right


class DetectionLoss(nn.Module):
    """Terms "cls", "box" and (when reg_max > 1) "dfl" of the detection head.

    Gains bring the terms to a comparable scale so that equal balancing
    weights are a sensible start; a balancing strategy then adjusts them.
    Images without box labels contribute to no term.
    """

    def __init__(
        self,
        num_classes: int,
        reg_max: int,
        assigner: TaskAlignedAssigner | None = None,
        classification_loss: ClassificationLoss = quality_focal_loss,
        cls_gain: float = 1.0,
        box_gain: float = 5.0,
        dfl_gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.assigner = assigner if assigner is not None else TaskAlignedAssigner()
        self.classification_loss = classification_loss
        self.cls_gain = cls_gain
        self.box_gain = box_gain
        self.dfl_gain = dfl_gain
        self.loss_names: tuple[str, ...] = ("cls", "box", "dfl") if reg_max > 1 else ("cls", "box")

    def forward(
        self,
        cls_logits: torch.Tensor,
        box_logits: torch.Tensor,
        pred_boxes: torch.Tensor,
        anchor_points: torch.Tensor,
        anchor_strides: torch.Tensor,
        targets: TargetBatch,
    ) -> tuple[dict[str, torch.Tensor], Assignment]:
        """cls_logits [B,A,C]; box_logits [B,A,4*reg_max] (or [B,A,4] without DFL);
        pred_boxes [B,A,4] decoded xyxy pixels; anchor_points [A,2]; anchor_strides [A,1]."""
        assignment = self.assigner(
            cls_logits.detach().sigmoid(),
            pred_boxes.detach(),
            anchor_points,
            targets.labels,
            targets.boxes,
            targets.valid,
        )
        labelled = targets.has_boxes
        if not bool(labelled.any()):
            # Nobody in the batch has boxes: zeros that still reach the
            # graph, so a joint backward() over all terms keeps working.
            zero = cls_logits.sum() * 0.0 + box_logits.sum() * 0.0
            return {name: zero for name in self.loss_names}, assignment

        fg = assignment.fg_mask  # already False for every unlabelled image
        # Normalised by the positive count (as in GFL), not by the sum of the
        # soft targets: early in training the targets are IoU-sized (~1e-3),
        # and a sum clamped at 1 would then scale every term down to nothing.
        num_fg = fg.sum().clamp(min=1).float()
        target_scores = assignment.target_scores[labelled]
        losses = {"cls": self.cls_gain * self.classification_loss(cls_logits[labelled].float(), target_scores) / num_fg}

        if not bool(fg.any()):
            zero = box_logits.sum() * 0.0
            losses["box"] = zero
            if self.reg_max > 1:
                losses["dfl"] = zero
            return losses, assignment

        # Box terms are a weighted mean over positives: well-aligned anchors
        # count more, but the term keeps its scale whatever the target sizes.
        weight = assignment.target_scores.sum(-1)[fg]
        if float(weight.sum()) < 1e-6:
            # Every positive has zero alignment (no predicted box overlaps its
            # gt yet): weigh them equally rather than dropping the box terms.
            weight = torch.ones_like(weight)
        norm = weight.sum()
        ciou = complete_box_iou_loss(pred_boxes[fg].float(), assignment.target_boxes[fg], reduction="none")
        losses["box"] = self.box_gain * (ciou * weight).sum() / norm
        if self.reg_max > 1:
            losses["dfl"] = self.dfl_gain * self._dfl(box_logits, assignment, anchor_points, anchor_strides, weight) / norm
        return losses, assignment

    def _dfl(
        self,
        box_logits: torch.Tensor,
        assignment: Assignment,
        anchor_points: torch.Tensor,
        anchor_strides: torch.Tensor,
        weight: torch.Tensor,
    ) -> torch.Tensor:
        fg = assignment.fg_mask
        b = fg.shape[0]
        points = anchor_points[None].expand(b, -1, -1)[fg]
        strides = anchor_strides[None].expand(b, -1, -1)[fg]
        tb = assignment.target_boxes[fg]
        ltrb = torch.cat([points - tb[:, :2], tb[:, 2:] - points], dim=-1) / strides
        # The top bin is R-1; staying a hair below it keeps `left + 1` a valid bin.
        ltrb = ltrb.clamp(0.0, self.reg_max - 1 - 0.01)
        logits = box_logits[fg].view(-1, 4, self.reg_max)
        per_side = distribution_focal_loss(logits.reshape(-1, self.reg_max), ltrb.reshape(-1)).view(-1, 4)
        return (per_side.mean(-1) * weight).sum()
