"""The multi-task network: backbone -> PAN-FPN neck -> task heads.

Public entry points: `ModelConfig`, `build_model`, `MultiTaskNet`,
`save_checkpoint`, `load_model`. See training/model/multitask.py for the
forward/export contract.
"""

from training.model.checkpoint import load_model, save_checkpoint
from training.model.config import BACKBONE_CHOICES, HEAD_CHOICES, ModelConfig, build_model
from training.model.multitask import ExportWrapper, MultiTaskNet

__all__ = [
    "ModelConfig",
    "build_model",
    "MultiTaskNet",
    "ExportWrapper",
    "save_checkpoint",
    "load_model",
    "BACKBONE_CHOICES",
    "HEAD_CHOICES",
]
