"""The two exception types every package raises for input a user can fix, and the words for a missing PyTorch."""

from __future__ import annotations

__all__ = ["TridentError", "ContractError", "TORCH_MODULES", "needs_torch"]

# PyTorch is an extra (`train`, `tensorrt`, `gpu`): the core install runs ONNX and OpenVINO models without it
TORCH_MODULES = ("torch", "torchvision")


class TridentError(Exception):
    """Bad input a user can fix. The message names the thing and the fix; the
    CLI prints it as one line and exits non-zero instead of a traceback."""


class ContractError(TridentError, ValueError):
    """An array handed to a data contract has the wrong shape, dtype or value."""


def needs_torch(what: str) -> str:
    """The one message for a missing PyTorch: what needs it, and the extra that brings it."""
    return (
        f"{what} PyTorch, which is not installed (the core install runs ONNX and OpenVINO models only); "
        "pip install 'trident-vision[train]' (training, export, .pt models), or 'trident-vision[tensorrt]' / '[gpu]' "
        "on a CUDA machine - see README, Installing"
    )
