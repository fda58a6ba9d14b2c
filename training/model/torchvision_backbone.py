"""Torchvision classification networks as backbones, cut at strides 8/16/32.

`create_feature_extractor` rewrites the network with torch.fx so only the
layers up to the last tapped node run; the classifier is never executed and
the tapped maps come back by name. Weights are random unless the caller asks
for ImageNet weights *and* they are already in the torch hub cache: Trident
never downloads anything behind the user's back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.errors import TridentError
from training.model.normalize import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, ImageNormalizer

__all__ = ["TorchvisionBackbone", "TORCHVISION_TAPS"]


@dataclass(frozen=True)
class _Taps:
    """fx node names of the stride-8, -16 and -32 feature maps."""

    c3: str
    c4: str
    c5: str


# The stride-32 taps pick the last *block* rather than the final 1x1
# expansion conv where one exists (mobilenet's 960, efficientnet's 1280
# channels): the neck reduces channels anyway, and the expansion costs time.
TORCHVISION_TAPS: dict[str, _Taps] = {
    "resnet18": _Taps("layer2", "layer3", "layer4"),
    "resnet34": _Taps("layer2", "layer3", "layer4"),
    "resnet50": _Taps("layer2", "layer3", "layer4"),
    "mobilenet_v3_large": _Taps("features.6", "features.12", "features.15"),
    "mobilenet_v3_small": _Taps("features.3", "features.8", "features.11"),
    "efficientnet_b0": _Taps("features.3", "features.5", "features.7"),
    "efficientnet_b1": _Taps("features.3", "features.5", "features.7"),
    "regnet_y_400mf": _Taps("trunk_output.block2", "trunk_output.block3", "trunk_output.block4"),
    "regnet_y_800mf": _Taps("trunk_output.block2", "trunk_output.block3", "trunk_output.block4"),
}


def _cached_imagenet_weights(name: str):  # -> torchvision WeightsEnum
    """Return the default ImageNet weights enum for `name` if its file is cached, else raise."""
    from torchvision.models import get_model_weights

    weights = get_model_weights(name).DEFAULT
    cache = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    if not os.path.isfile(cache):
        raise TridentError(
            f"ImageNet weights for {name} are not in the torch hub cache ({cache}); "
            f"put the file there (download {weights.url} on a connected machine) or train without pretrained weights"
        )
    return weights


class TorchvisionBackbone(nn.Module):
    """images uint8 [B,3,H,W] BGR -> [C3, C4, C5] from a torchvision classifier.

    The normaliser flips BGR to RGB and applies the ImageNet mean/std, which
    is what these architectures (and their optional weights) expect.
    """

    def __init__(self, name: str, pretrained: bool = False) -> None:
        super().__init__()
        if name not in TORCHVISION_TAPS:
            raise TridentError(
                f"unknown torchvision backbone {name!r}; choose one of {', '.join(sorted(TORCHVISION_TAPS))}"
            )
        from torchvision.models import get_model
        from torchvision.models.feature_extraction import create_feature_extractor

        weights = _cached_imagenet_weights(name) if pretrained else None
        net = get_model(name, weights=weights)
        taps = TORCHVISION_TAPS[name]
        self.name = name
        self.normalize = ImageNormalizer(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, bgr_to_rgb=True)
        self.body = create_feature_extractor(net, return_nodes={taps.c3: "c3", taps.c4: "c4", taps.c5: "c5"})
        self.out_channels, self.strides = self._probe()

    @torch.no_grad()
    def _probe(self) -> tuple[list[int], list[int]]:
        """Measure channels and strides of the taps with one dummy forward.

        Reading them from the network avoids a hand-kept table going stale
        when torchvision changes an architecture, and catches a wrong tap.
        """
        was_training = self.body.training
        self.body.eval()
        size = 64
        feats = self.body(torch.zeros(1, 3, size, size))
        self.body.train(was_training)
        channels = [int(feats[k].shape[1]) for k in ("c3", "c4", "c5")]
        strides = [size // int(feats[k].shape[-1]) for k in ("c3", "c4", "c5")]
        if strides != [8, 16, 32]:
            raise TridentError(f"backbone {self.name} taps have strides {strides}, expected [8, 16, 32]")
        return channels, strides

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        feats = self.body(self.normalize(images))
        return [feats["c3"], feats["c4"], feats["c5"]]
