"""Instance mask head ("inst"), YOLACT-style.

Masks are not predicted per object. The head predicts K shared prototype
masks for the whole image (from P3, upsampled to stride 4) and, per anchor,
K coefficients; a detection's mask is sigmoid(coeffs @ protos), assembled
after NMS in engines/postprocess.py. The cost is one small extra branch per
level plus one prototype net, independent of the number of objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import TridentError
from training.losses.mask_loss import MaskLoss
from training.losses.targets import TargetBatch
from training.model.layers import ConvBNAct

__all__ = ["InstanceHead", "PrototypeNet"]


class PrototypeNet(nn.Module):
    """P3 (stride 8) -> K prototypes at stride 4.

    The 2x upsample sits after one conv at stride 8 so only the last, thin
    convs run at the expensive stride-4 resolution; with decoder_stride 8
    every conv runs at stride 8 and the prototypes are upsampled bilinearly.
    """

    def __init__(self, c_in: int, width: int, num_protos: int, decoder_stride: int = 4) -> None:
        super().__init__()
        self.decoder_stride = decoder_stride
        self.pre = ConvBNAct(c_in, width, 3)
        self.post = ConvBNAct(width, width, 3)
        self.out = nn.Conv2d(width, num_protos, 1)

    def forward(self, p3: torch.Tensor) -> torch.Tensor:
        if self.decoder_stride == 8:
            protos = self.out(self.post(self.pre(p3)))
            return F.interpolate(protos, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = F.interpolate(self.pre(p3), scale_factor=2.0, mode="nearest")
        return self.out(self.post(x))


class InstanceHead(nn.Module):
    """[P3, P4, P5] -> mask coefficients [B,A,K] and prototypes [B,K,H/4,W/4].

    Anchors are flattened in the same level-major order as the detection
    head, so row a of `mask_coeffs` belongs to row a of `boxes`.
    """

    output_names: tuple[str, ...] = ("mask_coeffs", "protos")

    def __init__(
        self,
        in_channels: Sequence[int],
        num_protos: int = 32,
        coeff_width: int | None = None,
        proto_width: int | None = None,
        loss: MaskLoss | None = None,
        decoder_stride: int = 4,
    ) -> None:
        super().__init__()
        self.num_protos = num_protos
        coeff_width = coeff_width or max(in_channels[0] // 4, num_protos)
        proto_width = proto_width or max(in_channels[0] // 2, num_protos)
        self.coeff_branches = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(c, coeff_width, 3),
                ConvBNAct(coeff_width, coeff_width, 3),
                nn.Conv2d(coeff_width, num_protos, 1),
            )
            for c in in_channels
        )
        self.protos = PrototypeNet(in_channels[0], proto_width, num_protos, decoder_stride)
        self.criterion = loss if loss is not None else MaskLoss()
        self.loss_names = self.criterion.loss_names
        # Mask targets come from the detection head's anchor assignment.
        self.requires: tuple[str, ...] = ("det",)

    def forward(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        coeffs = torch.cat([br(f).flatten(2) for br, f in zip(self.coeff_branches, feats)], dim=2)
        return {"mask_coeffs": coeffs.transpose(1, 2), "protos": self.protos(feats[0])}

    def export(self, raw: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(mask_coeffs [B,A,K], protos [B,K,H/4,W/4])."""
        return raw["mask_coeffs"], raw["protos"]

    def loss(self, raw: dict[str, torch.Tensor], targets: TargetBatch, shared: dict) -> dict[str, torch.Tensor]:
        if "assignment" not in shared:
            raise TridentError(
                "the 'inst' head needs the 'det' head's anchor assignment; build the model with 'det' before 'inst'"
            )
        return self.criterion(raw["mask_coeffs"], raw["protos"], shared["assignment"], targets)
