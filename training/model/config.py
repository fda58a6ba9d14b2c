"""ModelConfig (what to build) and build_model (how to build it).

The config is plain data so it can travel inside checkpoints and ONNX
metadata; build_model is the only place that turns names into modules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from pipeline.errors import TridentError

if TYPE_CHECKING:
    from training.model.multitask import MultiTaskNet

__all__ = ["ModelConfig", "build_model", "BACKBONE_CHOICES", "HEAD_CHOICES", "NECK_WIDTHS"]

HEAD_CHOICES: tuple[str, ...] = ("det", "inst", "sem")

# P3/P4/P5 channels and C2f depth of the neck per size. For the CSP backbone
# these equal its stage widths, so the neck needs no lateral 1x1 convs.
NECK_WIDTHS: dict[str, tuple[tuple[int, int, int], int]] = {
    "n": ((64, 128, 256), 1),
    "s": ((128, 256, 512), 1),
    "m": ((192, 384, 576), 2),
}


def _thing_classes() -> tuple[str, ...]:
    # Imported on use: the synthetic module pulls in OpenCV.
    from training.synthetic.shapes import THING_CLASSES

    return THING_CLASSES


def _semantic_classes() -> tuple[str, ...]:
    from training.synthetic.shapes import SEMANTIC_CLASSES

    return SEMANTIC_CLASSES


@dataclass(frozen=True)
class ModelConfig:
    """What network to build. Defaults: the `n` model for the bundled synthetic dataset.

    size: width/depth preset "n" | "s" | "m" (backbone and neck).
    backbone: "csp" (Trident's own) or a torchvision name (see BACKBONE_CHOICES).
    heads: any non-empty subset of ("det", "inst", "sem"); "inst" needs "det".
    num_classes / class_names: thing classes of "det"/"inst" (0-based ids).
    num_sem_classes / sem_class_names: semantic classes including background.
    num_protos: K, mask prototypes and coefficients per anchor.
    input_hw: network input (height, width), multiples of 32.
    reg_max: DFL bins per box side; 1 turns DFL off.
    decoder_stride: where the semantic head and the prototype net run their
        second 3x3 conv: 4 (after the 2x upsample; the bundled model) or 8
        (before it, then a bilinear 2x of the 1x1 outputs: a quarter of
        that conv's cost, 6-10 % of the network's CPU time). Outputs are at
        stride 4 either way; the weights have the same shapes, so one
        starts from the other's checkpoint.
    pretrained: load cached ImageNet weights into a torchvision backbone
        (never downloads; an error says where to put the file).
    """

    size: str = "n"
    backbone: str = "csp"
    heads: tuple[str, ...] = HEAD_CHOICES
    num_classes: int = 4
    class_names: tuple[str, ...] = field(default_factory=_thing_classes)
    num_sem_classes: int = 7
    sem_class_names: tuple[str, ...] = field(default_factory=_semantic_classes)
    num_protos: int = 32
    input_hw: tuple[int, int] = (384, 640)
    reg_max: int = 16
    decoder_stride: int = 4
    pretrained: bool = False

    def __post_init__(self) -> None:
        if self.size not in NECK_WIDTHS:
            raise TridentError(f"unknown model size {self.size!r}; choose one of {', '.join(NECK_WIDTHS)}")
        if self.backbone not in BACKBONE_CHOICES:
            raise TridentError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONE_CHOICES)}")
        if not self.heads:
            raise TridentError(f"heads is empty; choose a non-empty subset of {', '.join(HEAD_CHOICES)}")
        for h in self.heads:
            if h not in HEAD_CHOICES:
                raise TridentError(f"unknown head {h!r}; choose from {', '.join(HEAD_CHOICES)}")
        if "inst" in self.heads and "det" not in self.heads:
            raise TridentError("head 'inst' needs head 'det' (masks are assembled per detection); add 'det' to heads")
        if len(self.class_names) != self.num_classes:
            raise TridentError(
                f"class_names has {len(self.class_names)} names but num_classes is {self.num_classes}; give one name per class"
            )
        if len(self.sem_class_names) != self.num_sem_classes:
            raise TridentError(
                f"sem_class_names has {len(self.sem_class_names)} names but num_sem_classes is "
                f"{self.num_sem_classes}; give one name per class (background included)"
            )
        h, w = self.input_hw
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise TridentError(f"input_hw must be positive multiples of 32, got {h}x{w}; e.g. 384x640")
        if self.num_protos < 1 or self.reg_max < 1:
            raise TridentError(f"num_protos and reg_max must be >= 1, got {self.num_protos} and {self.reg_max}")
        if self.decoder_stride not in (4, 8):
            raise TridentError(f"decoder_stride must be 4 or 8, got {self.decoder_stride!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of to_dict; an unknown key is an error naming the key."""
        names = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in names:
                raise TridentError(f"unknown model config key {key!r}; valid keys are {', '.join(sorted(names))}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fixed)


def _csp_backbone(cfg: ModelConfig) -> nn.Module:
    from training.model.csp_backbone import CSPBackbone

    return CSPBackbone.from_size(cfg.size)


def _torchvision_backbone(name: str) -> Callable[[ModelConfig], nn.Module]:
    def build(cfg: ModelConfig) -> nn.Module:
        from training.model.torchvision_backbone import TorchvisionBackbone

        return TorchvisionBackbone(name, pretrained=cfg.pretrained)

    return build


_TORCHVISION_NAMES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "efficientnet_b1",
    "regnet_y_400mf",
    "regnet_y_800mf",
)
_BACKBONES: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "csp": _csp_backbone,
    **{name: _torchvision_backbone(name) for name in _TORCHVISION_NAMES},
}
BACKBONE_CHOICES: tuple[str, ...] = tuple(_BACKBONES)


def _det_head(cfg: ModelConfig, channels: list[int]) -> nn.Module:
    from training.model.det_head import DetectHead

    return DetectHead(channels, cfg.num_classes, reg_max=cfg.reg_max)


def _inst_head(cfg: ModelConfig, channels: list[int]) -> nn.Module:
    from training.model.inst_head import InstanceHead

    return InstanceHead(channels, num_protos=cfg.num_protos, decoder_stride=cfg.decoder_stride)


def _sem_head(cfg: ModelConfig, channels: list[int]) -> nn.Module:
    from training.model.sem_head import SemanticHead

    return SemanticHead(channels, cfg.num_sem_classes, decoder_stride=cfg.decoder_stride)


_HEADS: dict[str, Callable[[ModelConfig, list[int]], nn.Module]] = {
    "det": _det_head,
    "inst": _inst_head,
    "sem": _sem_head,
}


def build_model(cfg: ModelConfig) -> MultiTaskNet:
    """Build the network `cfg` describes, with random weights (or cached ImageNet
    weights for a torchvision backbone when cfg.pretrained)."""
    from training.model.multitask import MultiTaskNet
    from training.model.neck import PANFPN

    if not isinstance(cfg, ModelConfig):
        raise TridentError(f"build_model needs a ModelConfig, got {type(cfg).__name__}")
    backbone = _BACKBONES[cfg.backbone](cfg)
    widths, depth = NECK_WIDTHS[cfg.size]
    neck = PANFPN(backbone.out_channels, widths, depth)
    # Canonical order, whatever the config's order: "inst" reads what "det" assigned.
    heads = {name: _HEADS[name](cfg, neck.out_channels) for name in HEAD_CHOICES if name in cfg.heads}
    return MultiTaskNet(backbone, neck, heads, num_classes=cfg.num_classes)
