"""The eager PyTorch reference engine (optionally torch.compile'd, CUDA when present, FP16 on CUDA).

It needs the model definition, so it lives in `training/` and registers itself
for .pt/.pth files through the ``trident.engines`` entry points; its outputs
stay on the model's device (the post-process works where they are).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engines.base import check_images
from engines.postprocess import RawOutputs
from pipeline.errors import TridentError
from training.export import spec_from_model_config


class TorchEngine:
    def __init__(self, path: str | Path, device: str = "auto", compile: bool = False, half: bool = False, batch_range: tuple[int, int, int] = (1, 1, 64)):
        import torch

        from training.model.checkpoint import load_model

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
            raise TridentError(f"unknown device '{device}' for the torch engine ({Path(path).name}); use auto, cpu, cuda or cuda:N")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise TridentError(f"device {device} asked for but CUDA is not available; use --device cpu")
        if half and not device.startswith("cuda"):
            raise TridentError("--half (FP16) needs a CUDA device; on CPU run FP32")
        self.path = Path(path)
        self.device = torch.device(device)
        model, cfg, _ = load_model(self.path, map_location="cpu")
        model = model.fuse() if hasattr(model, "fuse") else model.eval()
        model = model.to(self.device)
        self.half = half  # FP16 via autocast: the uint8 input and its normalisation stay exact
        self.model = model
        self._forward = torch.compile(model.export_forward, dynamic=False) if compile else model.export_forward
        self.output_names = tuple(model.output_names)
        self.spec = spec_from_model_config(cfg, self.output_names, tuple(cfg.input_hw), batch_range, "fp16" if half else "fp32", self.path.name)

    def infer(self, images: Any) -> RawOutputs:
        import torch

        check_images(images, self.spec, self.path.name)
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
            outs = self._forward(images.to(self.device, non_blocking=True))
        return RawOutputs.from_sequence(self.output_names, [o.float() for o in outs])

    def close(self) -> None:
        self.model = None


def load(path: str | Path, device: str = "auto", compile: bool = False, half: bool = False, **options: Any) -> TorchEngine:
    """Loader registered for .pt/.pth checkpoints (entry point group trident.engines)."""
    if options:
        raise TridentError(f"the torch engine does not take option(s) {sorted(options)}; it takes device, compile and half")
    return TorchEngine(path, device=device, compile=compile, half=half)
