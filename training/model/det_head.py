"""Anchor-free decoupled detection head ("det").

Classification and box regression get separate conv branches per level:
the two tasks want different features (what vs. where); YOLOX reports
faster convergence and higher AP from decoupling them for little compute.

Every feature-map cell is one "anchor": a point at the cell centre that
predicts its distances to the four box sides. The training loss and the
exported graph both decode through the functions below, so they cannot drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.losses.detection_loss import DetectionLoss
from training.losses.targets import TargetBatch
from training.model.layers import ConvBNAct

__all__ = ["DetectHead", "make_anchors", "DistanceDecoder", "distances_to_boxes"]


def make_anchors(
    feats: Sequence[torch.Tensor], strides: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres in input pixels [A,2] (x, y) and each anchor's stride [A,1], level by level.

    The grid is built from the feature sizes as Python ints, so a traced graph
    holds it as a constant and no grid arithmetic runs at inference time. A
    graph exported with dynamic height/width (rect inference: a 4:3 camera
    runs at 384x512 instead of a padded 384x640) must still fit its anchors to
    a smaller input: the centres of a grid's top-left cells do not depend on
    the grid's size, so it takes that corner of the constant (two slices per
    level, read from the traced sizes; outside a trace they take everything).
    """
    points, stride_list = [], []
    for feat, stride in zip(feats, strides):
        h, w = feat.shape[-2], feat.shape[-1]  # traced sizes under torch.onnx.export, ints otherwise
        rows, cols = int(h), int(w)  # the example input's grid, the largest the graph accepts
        ys = (torch.arange(rows, device=feat.device, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(cols, device=feat.device, dtype=torch.float32) + 0.5) * stride
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([gx, gy], dim=-1)[:h, :w].reshape(-1, 2))
        stride_list.append(torch.full((rows * cols, 1), float(stride), device=feat.device)[: h * w])
    return torch.cat(points), torch.cat(stride_list)


class DistanceDecoder(nn.Module):
    """Box logits [B,A,4*R] -> ltrb distances in stride units [B,A,4].

    R > 1: Distribution Focal Loss style, a softmax over R bins per side and
    its expectation; the spread lets the net express ambiguous edges.
    R == 1: a softplus of a single value per side (plain regression).
    """

    def __init__(self, reg_max: int) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.register_buffer("bins", torch.arange(reg_max, dtype=torch.float32), persistent=False)

    def forward(self, box_logits: torch.Tensor) -> torch.Tensor:
        b, a, _ = box_logits.shape
        if self.reg_max == 1:
            return F.softplus(box_logits)
        prob = box_logits.view(b, a, 4, self.reg_max).softmax(-1)
        return prob @ self.bins


def distances_to_boxes(
    distances: torch.Tensor, anchor_points: torch.Tensor, anchor_strides: torch.Tensor
) -> torch.Tensor:
    """ltrb distances [B,A,4] (stride units) -> xyxy boxes [B,A,4] in input pixels."""
    d = distances * anchor_strides
    return torch.cat([anchor_points - d[..., :2], anchor_points + d[..., 2:]], dim=-1)


def _branch(c_in: int, width: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(ConvBNAct(c_in, width, 3), ConvBNAct(width, width, 3), nn.Conv2d(width, c_out, 1))


class DetectHead(nn.Module):
    """[P3, P4, P5] -> per-anchor class logits and ltrb box distances.

    reg_max: DFL bins per side (1 turns DFL off). With strides 8/16/32 and
    R = 16 the largest box side reachable from its centre is 15 strides,
    i.e. 480 px at stride 32, enough for a 640-wide input.
    """

    output_names: tuple[str, ...] = ("boxes", "scores")

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        reg_max: int = 16,
        strides: Sequence[int] = (8, 16, 32),
        box_width: int | None = None,
        cls_width: int | None = None,
        loss: DetectionLoss | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.strides = tuple(strides)
        box_width = box_width or max(16, in_channels[0] // 4, 4 * reg_max)
        # Half the P3 width is plenty for a handful of classes and saves ~10%
        # of the n model's CPU time; wide class lists get one channel each.
        cls_width = cls_width or max(in_channels[0] // 2, min(num_classes, 128))
        self.box_branches = nn.ModuleList(_branch(c, box_width, 4 * reg_max) for c in in_channels)
        self.cls_branches = nn.ModuleList(_branch(c, cls_width, num_classes) for c in in_channels)
        self.decoder = DistanceDecoder(reg_max)
        self.criterion = loss if loss is not None else DetectionLoss(num_classes, reg_max)
        self.loss_names = self.criterion.loss_names
        self.requires: tuple[str, ...] = ()
        self._init_biases()

    def _init_biases(self) -> None:
        # Start every class near p = 0.01 (RetinaNet prior): with ~5000 mostly
        # background anchors a 0.5 start floods the first steps with false positives.
        for branch in self.cls_branches:
            nn.init.constant_(branch[-1].bias, -math.log((1 - 0.01) / 0.01))
        # Start boxes about 2 strides from the anchor per side (16-128 px wide
        # boxes over the three levels) instead of the uniform-bins midpoint of
        # 7.5 strides, which would make every first box larger than the image:
        # near-zero IoUs give TAL near-zero targets and the head barely moves.
        # A geometric prior over the bins, p_j ~ (2/3)^j, has mean ~2.
        for branch in self.box_branches:
            bias = branch[-1].bias
            with torch.no_grad():
                if self.reg_max > 1:
                    prior = -math.log(1.5) * torch.arange(self.reg_max, dtype=bias.dtype)
                    bias.copy_(prior.repeat(4))
                else:
                    bias.fill_(math.log(math.e**2 - 1.0))  # softplus(b) = 2

    def forward(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw predictions: cls_logits [B,A,C], box_logits [B,A,4R], decoded boxes [B,A,4] (pixels)."""
        cls_maps = [br(f) for br, f in zip(self.cls_branches, feats)]
        box = [br(f).flatten(2) for br, f in zip(self.box_branches, feats)]
        cls_logits = torch.cat([m.flatten(2) for m in cls_maps], dim=2).transpose(1, 2)
        box_logits = torch.cat(box, dim=2).transpose(1, 2)
        # the grid sizes are read from the class maps, not from `feats`: in ONNX Runtime the maps are
        # already copied out of its blocked (NCHWc) layout for the flatten, the neck outputs are not, and
        # reading their shape there would cost one extra layout copy per level
        points, strides = make_anchors(cls_maps, self.strides)
        boxes = distances_to_boxes(self.decoder(box_logits), points, strides)
        return {
            "cls_logits": cls_logits,
            "box_logits": box_logits,
            "boxes": boxes,
            "anchor_points": points,
            "anchor_strides": strides,
        }

    def export(self, raw: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(boxes [B,A,4] xyxy pixels, scores [B,A,C] sigmoid probabilities)."""
        return raw["boxes"], raw["cls_logits"].sigmoid()

    def loss(self, raw: dict[str, torch.Tensor], targets: TargetBatch, shared: dict) -> dict[str, torch.Tensor]:
        """Detection terms; leaves the anchor assignment in `shared` for heads that need it."""
        losses, assignment = self.criterion(
            raw["cls_logits"], raw["box_logits"], raw["boxes"], raw["anchor_points"], raw["anchor_strides"], targets
        )
        shared["assignment"] = assignment
        return losses
