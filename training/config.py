"""TrainConfig: everything `trident train` does, as one typed, frozen, file-loadable config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.config_files import apply_override, config_from_dict, load_config_file

from pipeline.errors import TridentError
from training.model.config import ModelConfig


@dataclass(frozen=True)
class DataConfig:
    synthetic: str = "data/synth"  # root of a `trident synth` dataset (dataset.yaml); "" to skip
    train_split: str = "train"
    val_split: str = "val"
    coco_annotations: tuple[str, ...] = ()  # extra COCO instance sets (boxes + masks), paired with coco_images
    coco_images: tuple[str, ...] = ()
    scale: tuple[float, float] = (0.6, 1.4)  # random-affine zoom range; wider = more scale robustness, slower to fit
    translate: float = 0.1
    flip: float = 0.5
    mosaic: float = 0.0  # probability of a 4-image mosaic; helps small objects, costs CPU in the loader
    # After zoom/shift, recompute each box from its mask: tighter when exact masks (synthetic, COCO) are cut at
    # the border. Off when the box is the label and the mask approximate (autolabel's motion masks, clipped to
    # the teacher's box): refitting would teach the mask's extent instead of the teacher's box.
    boxes_from_masks: bool = True
    workers: int = 0  # DataLoader processes; 0 = load in the training process


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adamw"  # adamw | sgd
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.937  # SGD momentum / AdamW beta1
    warmup_iters: int = 200  # linear LR warm-up; keeps early large gradients from wrecking BN statistics
    min_lr_ratio: float = 0.05  # cosine decays to lr * this
    grad_clip: float = 10.0  # max gradient norm; 0 disables


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 30
    batch_size: int = 8
    max_iters: int = 0  # stop after this many optimiser steps (0 = epochs decide); for smoke runs
    ema_decay: float = 0.9995  # weight EMA for evaluation and export; 0 disables
    amp: bool = True  # float16 mixed precision, used only on CUDA
    cpu_amp: bool = False  # bfloat16 autocast on CPU: ~1.4x faster steps on CPUs with AVX512-BF16 or AMX, slower without
    seed: int = 0
    deterministic: bool = False  # bitwise-reproducible kernels (slower); seeding is always on
    balancing: str = "fixed"  # fixed | uncertainty | dwa
    loss_weights: tuple[tuple[str, float], ...] = ()  # for fixed: (("loss_sem_ce", 0.5), ...)
    schedule: str = "joint"  # joint | alternating (det+inst on one step, sem on the next)
    eval_every: int = 1  # epochs between validations (and best-checkpoint selection)
    eval_batches: int = 0  # cap validation at this many batches (0 = the whole split)
    out: str = "runs/train"
    resume: str = ""  # a last.pt to continue from (weights, optimiser, schedule, EMA)
    init: str = ""  # a best.pt/last.pt whose weights start a new run (fine-tuning, longer schedules)
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise TridentError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.balancing not in ("fixed", "uncertainty", "dwa"):
            raise TridentError(f"balancing must be fixed, uncertainty or dwa, got {self.balancing!r}")
        if self.schedule not in ("joint", "alternating"):
            raise TridentError(f"schedule must be joint or alternating, got {self.schedule!r}")
        if self.optim.name not in ("adamw", "sgd"):
            raise TridentError(f"optim.name must be adamw or sgd, got {self.optim.name!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise TridentError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if len(self.data.coco_annotations) != len(self.data.coco_images):
            raise TridentError("data.coco_annotations and data.coco_images must have the same length (one image folder per file)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


def load_train_config(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """YAML/TOML file (optional) + `key.sub=value` overrides -> TrainConfig."""
    data: dict[str, Any] = load_config_file(path) if path else {}
    for assignment in overrides:
        apply_override(data, assignment)
    if isinstance(data.get("loss_weights"), dict):
        data["loss_weights"] = [[k, float(v)] for k, v in data["loss_weights"].items()]
    if "loss_weights" in data:
        data["loss_weights"] = [tuple(p) for p in data["loss_weights"]]
    return config_from_dict(TrainConfig, data)
