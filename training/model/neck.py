"""PAN-FPN neck: a top-down pass spreads stride-32 semantics to the fine
levels, then a bottom-up pass brings the fine localisation back up (PANet)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.model.layers import C2f, ConvBNAct

__all__ = ["PANFPN"]


def _lateral(c_in: int, c_out: int) -> nn.Module:
    # Torchvision backbones hand over 512-2048 channels; squeezing them first
    # keeps the neck's cost set by its own widths, not by the backbone's.
    return nn.Identity() if c_in == c_out else ConvBNAct(c_in, c_out, 1)


class PANFPN(nn.Module):
    """[C3, C4, C5] -> [P3, P4, P5] with `out_channels` per level, same strides."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], depth: int = 1) -> None:
        super().__init__()
        c3, c4, c5 = in_channels
        p3, p4, p5 = out_channels
        self.lat3 = _lateral(c3, p3)
        self.lat4 = _lateral(c4, p4)
        self.lat5 = _lateral(c5, p5)
        # C2f without the residual add: these blocks mix two different
        # sources after a concat, so an identity path through them is moot.
        self.top4 = C2f(p5 + p4, p4, depth, shortcut=False)
        self.top3 = C2f(p4 + p3, p3, depth, shortcut=False)
        self.down3 = ConvBNAct(p3, p3, 3, 2)
        self.bottom4 = C2f(p3 + p4, p4, depth, shortcut=False)
        self.down4 = ConvBNAct(p4, p4, 3, 2)
        self.bottom5 = C2f(p4 + p5, p5, depth, shortcut=False)
        self.out_channels: list[int] = [p3, p4, p5]

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = self.lat3(feats[0]), self.lat4(feats[1]), self.lat5(feats[2])
        t4 = self.top4(torch.cat([F.interpolate(c5, scale_factor=2.0, mode="nearest"), c4], dim=1))
        p3 = self.top3(torch.cat([F.interpolate(t4, scale_factor=2.0, mode="nearest"), c3], dim=1))
        p4 = self.bottom4(torch.cat([self.down3(p3), t4], dim=1))
        p5 = self.bottom5(torch.cat([self.down4(p4), c5], dim=1))
        return [p3, p4, p5]
