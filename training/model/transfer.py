"""Start a model from a checkpoint trained for other classes: every shared weight, and class rows by name.

Fine-tuning the bundled checkpoint (person, car, truck, ball on synthetic
scenes) into a student for a teacher's classes (person, car, ...) should keep
what it knows about each class it already has, not just the backbone. The
per-class tensors are the last layer of the detection head's class branches
(one output row per thing class) and the semantic classifier (one row per
semantic class); their rows are copied by class *name*, so `person` starts as
`person` whatever its index. Classes the checkpoint never saw keep their fresh
initialisation (the detection head's low prior), and nothing else changes shape.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import TridentError
from training.model.config import ModelConfig

log = logging.getLogger("trident.train")


@dataclass(frozen=True)
class TransferReport:
    copied: int  # tensors copied whole
    remapped: int  # per-class tensors copied row by row
    kept_classes: tuple[str, ...]  # thing classes that started from the checkpoint's rows
    new_classes: tuple[str, ...]  # thing classes that start fresh
    kept_semantic: tuple[str, ...]
    fresh: tuple[str, ...]  # tensors the checkpoint could not fill (names)


def _rows(new_names: tuple[str, ...], old_names: tuple[str, ...]) -> list[tuple[int, int]]:
    old = {n: i for i, n in enumerate(old_names)}
    return [(i, old[n]) for i, n in enumerate(new_names) if n in old]


def init_from_checkpoint(model: nn.Module, cfg: ModelConfig, path: str | os.PathLike) -> TransferReport:
    """Load `path` into `model` (built from `cfg`), mapping class rows by name when the class lists differ.

    Architecture (size, backbone, heads) must match; only the class lists and
    decoder_stride (same weight shapes) may differ. Same class lists: a plain strict load.
    """
    from training.model.checkpoint import _read

    payload = _read(Path(path), "cpu")
    saved = ModelConfig.from_dict(payload["config"])
    for key in ("size", "backbone", "num_protos", "reg_max"):
        if getattr(saved, key) != getattr(cfg, key):
            raise TridentError(
                f"init checkpoint {path} has model.{key}={getattr(saved, key)!r} but the config asks for {getattr(cfg, key)!r}; "
                f"only the class lists may differ when starting from a checkpoint - set model.{key}={getattr(saved, key)!r}"
            )
    old_state = payload["state_dict"]
    new_state = model.state_dict()
    thing_rows = _rows(tuple(cfg.class_names), tuple(saved.class_names))
    sem_rows = _rows(tuple(cfg.sem_class_names), tuple(saved.sem_class_names))
    copied = remapped = 0
    fresh = []
    with torch.no_grad():
        for key, target in new_state.items():
            source = old_state.get(key)
            if source is None:
                fresh.append(key)
                continue
            if source.shape == target.shape and not _is_class_tensor(key, source, saved, cfg):
                target.copy_(source)
                copied += 1
                continue
            if _is_class_tensor(key, source, saved, cfg) and source.shape[1:] == target.shape[1:]:
                for new_i, old_i in sem_rows if key.startswith("heads.sem") else thing_rows:
                    target[new_i] = source[old_i]
                remapped += 1
                continue
            fresh.append(key)
    model.load_state_dict(new_state)
    report = TransferReport(
        copied, remapped,
        kept_classes=tuple(cfg.class_names[i] for i, _ in thing_rows),
        new_classes=tuple(n for n in cfg.class_names if n not in saved.class_names),
        kept_semantic=tuple(cfg.sem_class_names[i] for i, _ in sem_rows),
        fresh=tuple(fresh),
    )
    log.info("init from %s: %d tensors copied, %d remapped by class name (kept %s, new %s), %d fresh",
             path, copied, remapped, list(report.kept_classes), list(report.new_classes), len(fresh))
    return report


def _is_class_tensor(key: str, source: torch.Tensor, saved: ModelConfig, cfg: ModelConfig) -> bool:
    """The last layer of a class branch or the semantic classifier: dim 0 counts classes."""
    if key.startswith("heads.sem.classifier."):
        return source.shape[0] == saved.num_sem_classes and tuple(saved.sem_class_names) != tuple(cfg.sem_class_names)
    if key.startswith("heads.det.cls_branches.") and source.ndim >= 1 and source.shape[0] == saved.num_classes:
        # the 1x1 output conv of each level (its index is the last in the branch); hidden convs have cls_width rows
        return tuple(saved.class_names) != tuple(cfg.class_names) and len(key.split(".")) == 6
    return False
