"""Task-aligned label assignment (TAL, from the TOOD paper).

An anchor becomes a positive for a ground-truth box when its centre lies
inside the box and it is among the `topk` anchors with the highest alignment
metric  t = s^alpha * IoU^beta,  where s is the predicted score of the gt's
class and IoU is between the predicted box and the gt. Because both factors
come from the current predictions, the assignment follows what the network
can already do well, which ties classification and localisation quality
together; the normalised t becomes the soft classification target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Assignment", "TaskAlignedAssigner", "pairwise_box_iou"]


@dataclass(frozen=True)
class Assignment:
    """Per-anchor targets, [B,A,...]. `gt_index` is the matched gt row (0 where background)."""

    fg_mask: torch.Tensor  # bool [B,A]
    gt_index: torch.Tensor  # int64 [B,A]
    target_labels: torch.Tensor  # int64 [B,A]
    target_boxes: torch.Tensor  # float [B,A,4] xyxy pixels
    target_scores: torch.Tensor  # float [B,A,C], onehot * normalised alignment


def pairwise_box_iou(gt: torch.Tensor, pred: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """IoU of every gt [B,M,4] with every prediction [B,A,4] -> [B,M,A] (batched box_iou)."""
    g = gt[:, :, None, :]
    p = pred[:, None, :, :]
    wh = (torch.minimum(g[..., 2:], p[..., 2:]) - torch.maximum(g[..., :2], p[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_g = (g[..., 2] - g[..., 0]).clamp(min=0) * (g[..., 3] - g[..., 1]).clamp(min=0)
    area_p = (p[..., 2] - p[..., 0]).clamp(min=0) * (p[..., 3] - p[..., 1]).clamp(min=0)
    return inter / (area_g + area_p - inter + eps)


class TaskAlignedAssigner(nn.Module):
    """Assign anchors to gts by task alignment; no parameters, no gradients.

    topk: positives per gt at most (more -> more, noisier positives).
    alpha, beta: exponents of score and IoU; beta > alpha makes localisation
    quality dominate, which is what keeps NMS from keeping poorly placed boxes.
    """

    def __init__(self, topk: int = 10, alpha: float = 1.0, beta: float = 6.0, eps: float = 1e-9) -> None:
        super().__init__()
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    @torch.no_grad()
    def forward(
        self,
        pred_scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        anchor_points: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_valid: torch.Tensor,
    ) -> Assignment:
        """pred_scores [B,A,C] probabilities, pred_boxes [B,A,4] xyxy pixels,
        anchor_points [A,2] pixel centres, gt_labels [B,M], gt_boxes [B,M,4], gt_valid [B,M]."""
        b, a, c = pred_scores.shape
        m = gt_boxes.shape[1]
        device = pred_scores.device
        if m == 0 or not bool(gt_valid.any()):
            return Assignment(
                fg_mask=torch.zeros(b, a, dtype=torch.bool, device=device),
                gt_index=torch.zeros(b, a, dtype=torch.int64, device=device),
                target_labels=torch.zeros(b, a, dtype=torch.int64, device=device),
                target_boxes=torch.zeros(b, a, 4, device=device),
                target_scores=torch.zeros(b, a, c, device=device),
            )
        pred_scores = pred_scores.float()
        pred_boxes = pred_boxes.float()

        inside = self._centres_inside(anchor_points, gt_boxes) & gt_valid[:, :, None]  # [B,M,A]
        iou = pairwise_box_iou(gt_boxes, pred_boxes) * inside
        cls_score = pred_scores.transpose(1, 2).gather(1, gt_labels[:, :, None].expand(-1, -1, a))  # [B,M,A]
        align = cls_score.pow(self.alpha) * iou.pow(self.beta) * inside

        # Rank inside-anchors above outside ones even when every alignment is
        # still 0 (untrained net), so tiny boxes still get their k positives.
        ranking = torch.where(inside, align, torch.full_like(align, -1.0))
        k = min(self.topk, a)
        top_idx = ranking.topk(k, dim=-1).indices
        candidate = torch.zeros_like(inside).scatter_(-1, top_idx, True)
        pos = candidate & inside  # [B,M,A]

        # An anchor claimed by several gts keeps only the gt it overlaps most.
        multi = pos.sum(1, keepdim=True) > 1
        best_gt = iou.argmax(1, keepdim=True)  # [B,1,A]
        best_onehot = torch.zeros_like(pos).scatter_(1, best_gt, True)
        pos = torch.where(multi, best_onehot & inside, pos)

        fg = pos.any(1)  # [B,A]
        gt_index = pos.to(torch.uint8).argmax(1)  # [B,A]
        target_labels = gt_labels.gather(1, gt_index)
        target_boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))

        # Scale each gt's alignment so its best anchor's target equals the
        # best IoU reached for that gt: targets stay IoU-like in [0,1].
        align = align * pos
        max_align = align.amax(-1, keepdim=True)
        max_iou = (iou * pos).amax(-1, keepdim=True)
        norm_align = (align * max_iou / (max_align + self.eps)).amax(1)  # [B,A]
        target_scores = torch.zeros(b, a, c, device=device)
        target_scores.scatter_(-1, target_labels[..., None], 1.0)
        target_scores = target_scores * (norm_align * fg)[..., None]
        return Assignment(fg, gt_index, target_labels, target_boxes, target_scores)

    def _centres_inside(self, points: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
        p = points[None, None]  # [1,1,A,2]
        g = gt_boxes[:, :, None]  # [B,M,1,4]
        margin = torch.cat([p - g[..., :2], g[..., 2:] - p], dim=-1)
        return margin.amin(-1) > self.eps
