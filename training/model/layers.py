"""Convolution building blocks shared by the CSP backbone, the neck and the heads.

The blocks follow the CSP / C2f idea (split the channels, run a few
bottlenecks on one part, concatenate every intermediate result, fuse with a
1x1 conv): gradients reach early layers through short paths while most of the
compute stays on half the channels. Written from the papers (CSPNet, YOLOv8's
published architecture description), not from any reference code.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNAct", "Bottleneck", "C2f", "SPPF", "fuse_conv_bn"]


class ConvBNAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm -> SiLU; `fuse()` folds the BN for inference."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, padding=k // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.1)
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()
        # Variance-preserving init keeps activations near unit variance, the
        # value BN's running_var starts at. PyTorch's default conv init gives
        # ~1e-3 variances here, so for hundreds of steps the eval-mode
        # statistics would sit orders of magnitude off the batch statistics.
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> None:
        """Fold BN into the conv weights (eval only): one op fewer per layer on CPU."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(self.conv.eval(), self.bn.eval())
            self.bn = nn.Identity()


class Bottleneck(nn.Module):
    """Two 3x3 convs with an optional residual add."""

    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c, c, 3)
        self.cv2 = ConvBNAct(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with every bottleneck output concatenated before the final 1x1.

    Keeping all intermediate maps (not only the last) gives the fuse conv
    features of several receptive-field sizes for the price of a concat.
    """

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.cv1 = ConvBNAct(c_in, 2 * self.hidden, 1)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(n))
        self.cv2 = ConvBNAct((2 + n) * self.hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling by three chained 5x5 max-pools (receptive fields 5, 9, 13)."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNAct(c_in, hidden, 1)
        self.pool = nn.MaxPool2d(k, stride=1, padding=k // 2)
        self.cv2 = ConvBNAct(hidden * 4, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        p1 = self.pool(x)
        p2 = self.pool(p1)
        return self.cv2(torch.cat([x, p1, p2, self.pool(p2)], dim=1))


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every ConvBNAct's BatchNorm into its conv, in place; returns `module`.

    Only for inference: a fused model has no BN statistics left to train.
    """
    for m in module.modules():
        if isinstance(m, ConvBNAct):
            m.fuse()
    return module
