"""MultiTaskNet: one backbone and neck shared by any non-empty set of task heads.

The network is assembled from parts passed in (like torchvision's
GeneralizedRCNN); it knows nothing about which heads exist. Each head is a
module with `forward(feats) -> raw dict`, `export(raw) -> tuple`,
`loss(raw, targets, shared) -> {term: tensor}` and the attributes
`output_names`, `loss_names` and `requires`. Loss keys are namespaced by the
head's key in `heads` ("loss_det_box"), so logging, balancing and task
schedules can group terms by task without a second list of task names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from pipeline.errors import TridentError
from training.losses.targets import TargetBatch
from training.model.normalize import check_images

__all__ = ["MultiTaskNet", "Head", "ExportWrapper"]


class Head(Protocol):
    """What MultiTaskNet needs from a task head (see the module docstring)."""

    output_names: tuple[str, ...]
    loss_names: tuple[str, ...]
    requires: tuple[str, ...]

    def __call__(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]: ...

    def export(self, raw: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]: ...

    def loss(self, raw: dict[str, torch.Tensor], targets: TargetBatch, shared: dict) -> dict[str, torch.Tensor]: ...


class MultiTaskNet(nn.Module):
    """backbone: uint8 images -> [C3,C4,C5]; neck: -> [P3,P4,P5]; heads run in dict order.

    `num_classes` is the number of thing classes the detection labels index
    into (used to validate targets); heads own their own class counts.
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, heads: Mapping[str, nn.Module], num_classes: int) -> None:
        super().__init__()
        if not heads:
            raise TridentError("a model needs at least one head; pass e.g. heads={'det': DetectHead(...)}")
        seen: list[str] = []
        for name, head in heads.items():
            missing = [r for r in getattr(head, "requires", ()) if r not in seen]
            if missing:
                raise TridentError(
                    f"head {name!r} needs head {missing[0]!r} built before it; heads given: {', '.join(heads)}"
                )
            seen.append(name)
        self.backbone = backbone
        self.neck = neck
        self.heads = nn.ModuleDict(dict(heads))
        self.num_classes = num_classes
        self.output_names: tuple[str, ...] = tuple(n for h in self.heads.values() for n in h.output_names)
        self.loss_keys: tuple[str, ...] = tuple(
            f"loss_{task}_{term}" for task, h in self.heads.items() for term in h.loss_names
        )

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.heads.keys())

    def _raw(self, images: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        check_images(images)
        feats = self.neck(self.backbone(images))
        return {name: head(feats) for name, head in self.heads.items()}

    def _decoded(self, raw: dict[str, dict[str, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        return tuple(t for name, head in self.heads.items() for t in head.export(raw[name]))

    def forward(
        self, images: torch.Tensor, targets: Sequence[Mapping[str, Any]] | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """images uint8 [B,3,H,W] BGR, H and W multiples of 32.

        Returns (outputs, losses): outputs maps each of `output_names` to the
        same decoded tensor `export_forward` returns; losses maps each of
        `loss_keys` to a scalar when `targets` is given (a term without labels
        in this batch is a graph-connected zero), else is empty.
        """
        raw = self._raw(images)
        outputs = dict(zip(self.output_names, self._decoded(raw)))
        if targets is None:
            return outputs, {}
        batch = TargetBatch.from_list(
            targets, images.shape[0], (int(images.shape[2]), int(images.shape[3])), self.num_classes, images.device
        )
        device_type = images.device.type
        if torch.is_autocast_enabled(device_type):
            # Features may run in float16/bfloat16; assignment, IoU and the losses do not.
            raw = {name: {k: v.float() for k, v in r.items()} for name, r in raw.items()}
        shared: dict[str, Any] = {}
        losses: dict[str, torch.Tensor] = {}
        with torch.autocast(device_type, enabled=False):
            for name, head in self.heads.items():
                for term, value in head.loss(raw[name], batch, shared).items():
                    losses[f"loss_{name}_{term}"] = value
        return outputs, losses

    def export_forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Tensors in, tuple out, in the order of `output_names`: the graph that gets exported.

        boxes [B,A,4] xyxy input pixels, scores [B,A,C] probabilities,
        mask_coeffs [B,A,K], protos [B,K,H/4,W/4], sem_logits [B,S,H/4,W/4];
        outputs of heads that are not built are left out.
        """
        return self._decoded(self._raw(images))

    def fuse(self) -> MultiTaskNet:
        """Fold BatchNorms into convs for inference (eval mode, in place); returns self."""
        from training.model.layers import fuse_conv_bn

        self.eval()
        return fuse_conv_bn(self)


class ExportWrapper(nn.Module):
    """Makes `export_forward` the module's forward, which is what tracers call."""

    def __init__(self, model: MultiTaskNet) -> None:
        super().__init__()
        self.model = model
        self.output_names = model.output_names
        # A fresh Module starts in training mode; exporters restore the
        # wrapper's mode on exit, which would flip the wrapped model's
        # BatchNorms back to training behind the caller's back.
        self.train(model.training)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.export_forward(images)
