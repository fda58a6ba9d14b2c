"""Tiny torch modules exported with exactly the output layouts of foreign detectors.

`ConstUltralytics` / `ConstNanoDet` emit fixed tensors (plus 0 x the input, so
the graph keeps its input): the decoded boxes can be computed by hand.
`ConvUltralytics` is a small random-weight conv net whose outputs depend on
every pixel and channel, so a wrong channel order, normalisation or
letterbox changes its detections: the end-to-end test runs it on real footage.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

STRIDES = (8, 16, 32)


def points(hw: tuple[int, int], strides: Sequence[int] = STRIDES) -> list[int]:
    return [(-(-hw[0] // s)) * (-(-hw[1] // s)) for s in strides]


def export(module: nn.Module, path: Path, hw: tuple[int, int], output_names: Sequence[str], dynamic_batch: bool = False,
           input_name: str = "images", metadata: dict[str, str] | None = None, opset: int = 17) -> Path:
    import onnx

    dummy = torch.zeros((1, 3, *hw))
    axes = {input_name: {0: "batch"}, **{n: {0: "batch"} for n in output_names}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (dummy,), str(path), dynamo=False, opset_version=opset, input_names=[input_name],
                          output_names=list(output_names), dynamic_axes=axes)
    if metadata:
        proto = onnx.load(str(path))
        for k, v in metadata.items():
            e = proto.metadata_props.add()
            e.key, e.value = k, v
        onnx.save(proto, str(path))
    return path


class ConstOutputs(nn.Module):
    """Returns the given tensors (batch-expanded), touching the input so the exporter keeps it."""

    def __init__(self, tensors: Sequence[np.ndarray]):
        super().__init__()
        for i, t in enumerate(tensors):
            self.register_buffer(f"t{i}", torch.from_numpy(np.ascontiguousarray(t, np.float32)))
        self.n = len(tensors)

    def forward(self, x):
        zero = x.mean(dim=(1, 2, 3), keepdim=True)[:, :, 0] * 0.0  # [B,1,1]
        outs = []
        for i in range(self.n):
            t = getattr(self, f"t{i}")
            outs.append(t.unsqueeze(0).expand(x.shape[0], *t.shape) + zero.reshape(-1, *([1] * t.dim())))
        return tuple(outs)


class ConvUltralytics(nn.Module):
    """Random conv features at strides 8/16/32 -> the Ultralytics layout [B, 4+nc+nm, A] (+ protos)."""

    def __init__(self, nc: int = 3, nm: int = 4, seed: int = 0, segment: bool = True):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.nc, self.nm, self.segment = nc, nm if segment else 0, segment
        self.stem = nn.Conv2d(3, 8, 3, stride=4, padding=1)  # stride 4: the prototypes' level
        self.down = nn.ModuleList([nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1)])
        self.head = nn.Conv2d(8, 4 + nc + self.nm, 1)
        self.proto = nn.Conv2d(8, max(self.nm, 1), 1)
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        f = torch.relu(self.stem(x))
        protos = self.proto(f)
        outs = []
        for i, (conv, s) in enumerate(zip(self.down, STRIDES)):
            f = torch.relu(conv(f))
            h = self.head(f)  # [B, 4+nc+nm, gh, gw]
            b, _, gh, gw = h.shape
            ys, xs = torch.meshgrid(torch.arange(gh, dtype=x.dtype), torch.arange(gw, dtype=x.dtype), indexing="ij")
            cx = (xs + 0.5 + torch.tanh(h[:, 0])) * s
            cy = (ys + 0.5 + torch.tanh(h[:, 1])) * s
            w = torch.exp(h[:, 2].clamp(-3, 3)) * s * 2
            hh = torch.exp(h[:, 3].clamp(-3, 3)) * s * 2
            cls = torch.sigmoid(h[:, 4 : 4 + self.nc] - 1.0)
            parts = [cx[:, None], cy[:, None], w[:, None], hh[:, None], cls]
            if self.nm:
                parts.append(h[:, 4 + self.nc :])
            outs.append(torch.cat(parts, 1).flatten(2))
        preds = torch.cat(outs, 2)
        return (preds, protos) if self.segment else preds
