"""Synthetic moving-objects video dataset with boxes, masks, semantic labels and track ids."""

from training.synthetic.generate import SynthConfig, SynthSummary, generate_dataset
from training.synthetic.shapes import SEMANTIC_CLASSES, THING_CLASSES

__all__ = ["SynthConfig", "SynthSummary", "generate_dataset", "SEMANTIC_CLASSES", "THING_CLASSES"]
