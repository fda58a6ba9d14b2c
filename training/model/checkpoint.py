"""Save and load Trident checkpoints that `torch.load(weights_only=True)` can read.

A checkpoint is a dict of plain data: a format tag and version, the model
config as a JSON-able dict, the state dict (tensors only) and a caller's
`extra` (epoch, metrics, optimiser state, ...). No pickled classes, so a
checkpoint from an untrusted source cannot run code when loaded.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import TridentError
from training.model.config import ModelConfig, build_model

__all__ = ["save_checkpoint", "load_model", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "trident-checkpoint"
CHECKPOINT_VERSION = 1


def _check_plain(value: Any, where: str) -> None:
    """Reject anything weights_only loading would refuse, naming where it sits."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TridentError(f"checkpoint {where} has a key of type {type(k).__name__}; use str or int keys")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TridentError(
        f"checkpoint {where} is a {type(value).__name__}; only tensors, numbers, strings, None, "
        "lists and dicts can be stored (convert it, e.g. with .tolist() or str())"
    )


def save_checkpoint(path: str | os.PathLike, model: nn.Module, cfg: ModelConfig, extra: dict[str, Any] | None = None) -> Path:
    """Write `model`'s weights, `cfg` and `extra` to `path` atomically; returns the path.

    The file is written to a temporary name and renamed, so a crash mid-save
    leaves the previous checkpoint intact instead of a truncated one.
    """
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": cfg.to_dict(),
        "state_dict": state,
        "extra": extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    if not path.is_file():
        raise TridentError(f"checkpoint {path} does not exist; check the path or train a model with `trident train`")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise TridentError(
                f"{path} is not a Trident checkpoint: it holds pickled Python objects, which Trident does not load "
                "for safety; re-save the weights with training.model.checkpoint.save_checkpoint"
            ) from None
        raise TridentError(f"checkpoint {path} is corrupt ({exc}); re-copy it or save it again") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TridentError(f"checkpoint {path} is truncated or corrupt ({reason}); re-copy it or save it again") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise TridentError(
            f"{path} is not a Trident checkpoint (no '{CHECKPOINT_FORMAT}' tag); "
            "pass a file written by `trident train` or save_checkpoint"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise TridentError(
            f"checkpoint {path} has format version {payload.get('version')}, this Trident reads version "
            f"{CHECKPOINT_VERSION}; upgrade Trident or re-export the checkpoint"
        )
    return payload


def _check_class_counts(path: Path, saved: ModelConfig, wanted: ModelConfig) -> None:
    pairs = (
        ("thing", "num_classes", saved.num_classes, wanted.num_classes, "det" in wanted.heads),
        ("semantic", "num_sem_classes", saved.num_sem_classes, wanted.num_sem_classes, "sem" in wanted.heads),
    )
    for kind, key, have, want, used in pairs:
        if used and have != want:
            raise TridentError(
                f"checkpoint {path} was trained with {have} {kind} classes but the config asks for {want} "
                f"({key}); use a checkpoint trained for {want} classes or set {key}={have}"
            )


def load_model(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    config: ModelConfig | None = None,
) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Load (model in eval mode, its config, extra) from a checkpoint.

    `config`, when given, is what the caller expects; class counts must
    match the weights, and the model is built from `config` (so its class
    names win). Every failure is one TridentError naming the file and fix.
    """
    path = Path(path)
    payload = _read(path, map_location)
    try:
        saved = ModelConfig.from_dict(payload["config"])
    except (TridentError, TypeError, KeyError) as exc:
        raise TridentError(f"checkpoint {path} has an invalid model config: {exc}") from None
    cfg = saved
    if config is not None:
        _check_class_counts(path, saved, config)
        cfg = config
    model = build_model(cfg)
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise TridentError(f"checkpoint {path} has no state_dict; it is not a complete Trident checkpoint")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc))
        raise TridentError(
            f"checkpoint {path} does not fit the model described by the config ({first}); "
            "build the model with the checkpoint's own config"
        ) from None
    model.to(map_location).eval()
    return model, cfg, payload.get("extra", {})
