"""Instance mask loss on prototype-assembled masks (YOLACT-style).

Each positive anchor's mask is its coefficient vector times the shared
prototypes, at prototype resolution (stride 4). BCE and Dice are computed
only inside the matched gt box: outside it the exported post-process crops
the mask anyway, and without the crop large background areas would swamp
the loss of small objects.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.losses.assigner import Assignment
from training.losses.targets import TargetBatch

__all__ = ["MaskLoss", "box_crop_mask"]


def box_crop_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N,4] xyxy boxes in grid units -> bool [N,H,W], True where a cell centre is inside."""
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype)[None, :, None] + 0.5
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype)[None, None, :] + 0.5
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    return (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)


class MaskLoss(nn.Module):
    """Term "mask": BCE + Dice per positive anchor, averaged over all positives.

    max_per_image caps the positives that get a full mask per image, the only
    term whose memory grows with positives x prototype pixels; a random
    subset is an unbiased estimate of the mean.
    """

    def __init__(self, bce_gain: float = 1.0, dice_gain: float = 1.0, max_per_image: int = 256) -> None:
        super().__init__()
        self.bce_gain = bce_gain
        self.dice_gain = dice_gain
        self.max_per_image = max_per_image
        self.loss_names: tuple[str, ...] = ("mask",)

    def forward(
        self, coeffs: torch.Tensor, protos: torch.Tensor, assignment: Assignment, targets: TargetBatch
    ) -> dict[str, torch.Tensor]:
        """coeffs [B,A,K], protos [B,K,Hp,Wp]; `assignment` from the detection loss."""
        _, k, hp, wp = protos.shape
        img_h, img_w = targets.image_hw
        scale = torch.tensor([wp / img_w, hp / img_h, wp / img_w, hp / img_h], device=protos.device)
        bce_terms: list[torch.Tensor] = []
        dice_terms: list[torch.Tensor] = []
        for i, gt_masks in enumerate(targets.masks):
            if gt_masks is None or not bool(targets.has_boxes[i]):
                continue
            fg = assignment.fg_mask[i].nonzero().squeeze(1)
            if fg.numel() == 0:
                continue
            if fg.numel() > self.max_per_image:
                fg = fg[torch.randperm(fg.numel(), device=fg.device)[: self.max_per_image]]
            gt_idx = assignment.gt_index[i, fg]
            # Area downsampling keeps a soft fraction at object borders: a
            # better BCE target at stride 4 than a hard nearest-pixel pick.
            small = F.interpolate(gt_masks[None].float(), size=(hp, wp), mode="area")[0].clamp(0, 1)
            target = small[gt_idx]  # [P,Hp,Wp]
            logits = (coeffs[i, fg].float() @ protos[i].float().view(k, -1)).view(-1, hp, wp)
            crop = box_crop_mask(targets.boxes[i, gt_idx] * scale, hp, wp).float()
            area = crop.sum((1, 2)).clamp(min=1.0)
            bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            bce_terms.append((bce * crop).sum((1, 2)) / area)
            prob = logits.sigmoid() * crop
            inter = (prob * target).sum((1, 2))
            dice_terms.append(1.0 - (2.0 * inter + 1.0) / (prob.sum((1, 2)) + (target * crop).sum((1, 2)) + 1.0))
        if not bce_terms:
            return {"mask": coeffs.sum() * 0.0 + protos.sum() * 0.0}
        loss = self.bce_gain * torch.cat(bce_terms).mean() + self.dice_gain * torch.cat(dice_terms).mean()
        return {"mask": loss}
