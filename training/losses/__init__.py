"""Losses of the multi-task model: TAL assignment, detection, mask and semantic terms."""

from training.losses.assigner import Assignment, TaskAlignedAssigner
from training.losses.detection_loss import DetectionLoss, quality_focal_loss, varifocal_loss
from training.losses.mask_loss import MaskLoss
from training.losses.semantic_loss import SemanticLoss
from training.losses.targets import SEMANTIC_IGNORE, TargetBatch

__all__ = [
    "Assignment",
    "TaskAlignedAssigner",
    "DetectionLoss",
    "quality_focal_loss",
    "varifocal_loss",
    "MaskLoss",
    "SemanticLoss",
    "TargetBatch",
    "SEMANTIC_IGNORE",
]
