"""Trident's own CSP backbone: a C2f stack in three sizes (n/s/m).

Stride-2 convs halve the resolution five times; the maps after stages 3, 4
and 5 (strides 8, 16, 32) go to the neck. Trained from scratch on BGR/255
input, so it needs no ImageNet mean/std nor a channel flip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.errors import TridentError
from training.model.layers import SPPF, C2f, ConvBNAct
from training.model.normalize import ImageNormalizer

__all__ = ["CSPBackbone", "CSPWidths", "CSP_SIZES"]


@dataclass(frozen=True)
class CSPWidths:
    """Channel widths of the stem and the four stages, and C2f depth per stage."""

    stem: int
    stages: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]


# Widths tuned against the CPU budget in benchmarks/bench_model_cpu.py: most
# of the latency at 384x640 sits in the high-resolution stages, so the stem
# and stage 2 stay thin while the stride-32 stage carries the capacity.
CSP_SIZES: dict[str, CSPWidths] = {
    "n": CSPWidths(stem=16, stages=(32, 64, 128, 256), depths=(1, 2, 2, 1)),
    "s": CSPWidths(stem=32, stages=(64, 128, 256, 512), depths=(1, 2, 2, 1)),
    "m": CSPWidths(stem=48, stages=(96, 192, 384, 576), depths=(2, 4, 4, 2)),
}


class CSPBackbone(nn.Module):
    """images uint8 [B,3,H,W] BGR -> [C3, C4, C5] at strides 8, 16, 32."""

    def __init__(self, widths: CSPWidths) -> None:
        super().__init__()
        s2, s3, s4, s5 = widths.stages
        d2, d3, d4, d5 = widths.depths
        self.normalize = ImageNormalizer()
        self.stem = ConvBNAct(3, widths.stem, 3, 2)
        self.stage2 = nn.Sequential(ConvBNAct(widths.stem, s2, 3, 2), C2f(s2, s2, d2))
        self.stage3 = nn.Sequential(ConvBNAct(s2, s3, 3, 2), C2f(s3, s3, d3))
        self.stage4 = nn.Sequential(ConvBNAct(s3, s4, 3, 2), C2f(s4, s4, d4))
        self.stage5 = nn.Sequential(ConvBNAct(s4, s5, 3, 2), C2f(s5, s5, d5), SPPF(s5, s5))
        self.out_channels: list[int] = [s3, s4, s5]
        self.strides: list[int] = [8, 16, 32]

    @classmethod
    def from_size(cls, size: str) -> CSPBackbone:
        if size not in CSP_SIZES:
            raise TridentError(f"unknown model size {size!r}; choose one of {', '.join(CSP_SIZES)}")
        return cls(CSP_SIZES[size])

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stage2(self.stem(self.normalize(images)))
        c3 = self.stage3(x)
        c4 = self.stage4(c3)
        return [c3, c4, self.stage5(c4)]
