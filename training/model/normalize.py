"""Turn raw uint8 BGR frames into the float tensor a backbone was designed for.

Normalisation lives inside the network so that every engine (eager, ONNX
Runtime, TensorRT) feeds the same raw frame bytes and none of them can get
the mean/std or the channel order wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pipeline.errors import TridentError

__all__ = ["ImageNormalizer", "check_images", "IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB"]

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def check_images(images: torch.Tensor, stride: int = 32) -> None:
    """Raise TridentError unless `images` is uint8 [B,3,H,W] with H, W multiples of `stride`.

    Float input is rejected rather than silently rescaled: a float tensor is
    ambiguous (0-1 or 0-255? RGB or BGR? already normalised?), and guessing
    wrong trains or runs a model on garbage without any error.
    """
    if not isinstance(images, torch.Tensor):
        raise TridentError(f"images must be a torch.Tensor uint8 [B,3,H,W] BGR, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TridentError(
            f"images must be uint8 [B,3,H,W] BGR in 0..255, got dtype {str(images.dtype).replace('torch.', '')}; "
            "pass the raw frames (normalisation happens inside the model)"
        )
    if images.dim() != 4 or images.shape[1] != 3:
        raise TridentError(f"images must have shape [B,3,H,W], got {list(images.shape)}")
    h, w = int(images.shape[2]), int(images.shape[3])
    if h % stride or w % stride:
        raise TridentError(
            f"image height and width must be multiples of {stride}, got {h}x{w}; letterbox the frames to e.g. 384x640"
        )


class ImageNormalizer(nn.Module):
    """uint8 BGR [B,3,H,W] -> float (x/255 - mean)/std, optionally flipped to RGB.

    `mean`/`std` are given in the backbone's own channel order (after the
    optional flip). Stored as buffers so they follow `.to(device)` and end up
    as constants in the exported graph.
    """

    def __init__(
        self,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        bgr_to_rgb: bool = False,
    ) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise TridentError(f"mean and std need 3 values each, got {len(mean)} and {len(std)}")
        std_t = torch.tensor(std, dtype=torch.float32)
        # Fold /255 and /std into one scale so the graph does a single multiply-add.
        self.register_buffer("scale", (1.0 / (255.0 * std_t)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer(
            "shift", (-torch.tensor(mean, dtype=torch.float32) / std_t).view(1, 3, 1, 1), persistent=False
        )
        self.bgr_to_rgb = bgr_to_rgb

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if self.bgr_to_rgb:
            x = x.flip(1)
        return x * self.scale + self.shift
