"""The training loop: one script for CPU, one GPU, or many GPUs under torchrun (DDP).

    trident train --config configs/n_synth.yaml [key=value ...]
    torchrun --nproc_per_node 4 -m training.train --config ...   # same script, DDP

Per step: the task schedule picks the active loss terms, the balancing
strategy turns them into one total, AMP (CUDA only) and gradient clipping
guard the update, the EMA follows the weights. Per `eval_every` epochs the EMA
weights are validated through the deployment post-process and the best ones
(by `fitness`) are saved as best.pt; last.pt holds everything needed to resume.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import TridentError
from training.config import TrainConfig

log = logging.getLogger("trident.train")

METADATA_KEYS = ("image_id", "orig_size", "scale", "pad")


def fitness(metrics: dict[str, Any]) -> float:
    """One number to pick the best checkpoint: the mean of the task metrics the model has."""
    values = [metrics.get(k) for k in ("box_map", "mask_map", "miou")]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else 0.0


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to `min_ratio`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TridentError(f"device {name} asked for but CUDA is not available; use device=cpu")
    return torch.device(name)


@dataclass
class TrainResult:
    best: Path | None
    last: Path
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    seconds: float


def build_datasets(cfg: TrainConfig):
    from torch.utils.data import ConcatDataset

    from training.data import CocoInstances, MosaicDataset, SyntheticVideoDataset, eval_transforms, train_transforms

    hw = tuple(cfg.model.input_hw)
    tf = train_transforms(hw, seed=cfg.seed, scale=tuple(cfg.data.scale), translate=cfg.data.translate, flip_p=cfg.data.flip,
                          boxes_from_masks=cfg.data.boxes_from_masks)
    parts, val = [], None
    if cfg.data.synthetic:
        raw = SyntheticVideoDataset(cfg.data.synthetic, cfg.data.train_split, transforms=tf)
        if cfg.data.mosaic > 0:
            raw = MosaicDataset(raw, np.random.default_rng(cfg.seed), hw, p=cfg.data.mosaic, transforms=tf)
        parts.append(raw)
        val = SyntheticVideoDataset(cfg.data.synthetic, cfg.data.val_split, transforms=eval_transforms(hw))
    for ann, images in zip(cfg.data.coco_annotations, cfg.data.coco_images):
        parts.append(CocoInstances(ann, images, transforms=tf))
    if not parts:
        raise TridentError("no training data: set data.synthetic to a `trident synth` folder or add data.coco_annotations")
    return (parts[0] if len(parts) == 1 else ConcatDataset(parts)), val


def make_balancer(cfg: TrainConfig, model):
    from training.balancing import DynamicWeightAverage, FixedWeights, UncertaintyWeighting

    if cfg.balancing == "uncertainty":
        return UncertaintyWeighting(model.loss_keys)
    if cfg.balancing == "dwa":
        return DynamicWeightAverage()
    return FixedWeights(dict(cfg.loss_weights))


def make_schedule(cfg: TrainConfig, model):
    from training.balancing import AlternatingSchedule, JointSchedule

    if cfg.schedule == "alternating":
        groups = [g for g in ([t for t in model.tasks if t != "sem"], [t for t in model.tasks if t == "sem"]) if g]
        return AlternatingSchedule(groups)
    return JointSchedule(model.tasks)


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    from torch.utils.data import DataLoader, DistributedSampler
    from tqdm import tqdm

    from training.data import collate, seed_worker
    from training.ema import ModelEMA
    from training.model.checkpoint import save_checkpoint
    from training.model.config import build_model
    from training.validate import validate_model

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        device = _device(cfg.device)
    main = rank == 0
    seed_everything(cfg.seed + rank, cfg.deterministic)
    out = Path(cfg.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)

    train_ds, val_ds = build_datasets(cfg)
    sampler = DistributedSampler(train_ds, shuffle=True, seed=cfg.seed) if world > 1 else None
    loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=cfg.data.workers,
        collate_fn=collate,
        worker_init_fn=seed_worker,
        drop_last=len(train_ds) > cfg.batch_size,
        generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=cfg.data.workers > 0,
    )
    model = build_model(cfg.model).to(device)
    if cfg.init:  # class lists may differ from the checkpoint's: shared classes keep their rows (by name)
        from training.model.transfer import init_from_checkpoint

        init_from_checkpoint(model, cfg.model, cfg.init)
    balancer = make_balancer(cfg, model)
    schedule = make_schedule(cfg, model)
    params = list(model.parameters()) + (list(balancer.parameters()) if isinstance(balancer, torch.nn.Module) else [])
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]  # BN and biases: weight decay only hurts them
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optim.name == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum, nesterov=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=(cfg.optim.momentum, 0.999))
    steps_per_epoch = max(1, len(loader))
    total_steps = cfg.max_iters or cfg.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, cfg.optim.warmup_iters, cfg.optim.min_lr_ratio))
    use_amp = cfg.amp and device.type == "cuda"
    cpu_amp = cfg.cpu_amp and device.type == "cpu"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16 if cpu_amp else torch.float16, enabled=use_amp or cpu_amp)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    step, start_epoch, best_fit, best_metrics, history = 0, 0, -1.0, {}, []
    if cfg.resume:
        state = _load_resume(Path(cfg.resume), device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        if isinstance(balancer, torch.nn.Module) and "balancer" in state:
            balancer.load_state_dict(state["balancer"])
        step, start_epoch = int(state["step"]), int(state["epoch"]) + 1
        best_fit, best_metrics = float(state.get("best_fitness", -1.0)), dict(state.get("best_metrics", {}))

    started = time.perf_counter()
    best_path, last_path = out / "best.pt", out / "last.pt"
    for epoch in range(start_epoch, cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        train_model.train()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and main), leave=False)
        running: dict[str, float] = {}
        for images, targets in bar:
            images = images.to(device, non_blocking=True)
            targets = [_to_device({k: v for k, v in t.items() if k not in METADATA_KEYS}, device) for t in targets]
            with autocast:
                _, losses = train_model(images, targets)
            active = schedule.select(losses, step)
            total, _ = balancer(active, step)
            if not torch.isfinite(total):
                raise TridentError(f"loss became {total.item()} at step {step}; lower optim.lr or check the labels")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            if cfg.optim.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update(model)
            step += 1
            for k, v in losses.items():
                running[k] = 0.9 * running.get(k, float(v.detach())) + 0.1 * float(v.detach())
            bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in running.items()} | {"lr": f"{scheduler.get_last_lr()[0]:.1e}"})
            if cfg.max_iters and step >= cfg.max_iters:
                break
        record: dict[str, Any] = {"epoch": epoch + 1, "step": step, "seconds": round(time.perf_counter() - started, 1), **{k: round(v, 5) for k, v in running.items()}}
        last_epoch = epoch + 1 == cfg.epochs or bool(cfg.max_iters and step >= cfg.max_iters)
        if main and val_ds is not None and ((epoch + 1) % cfg.eval_every == 0 or last_epoch):
            eval_model = ema.module if ema is not None else model
            result = validate_model(eval_model, cfg.model, val_ds, cfg.batch_size, cfg.eval_batches, str(device))
            metrics = result.to_dict()
            record.update({k: metrics.get(k) for k in ("box_map", "box_map50", "mask_map", "mask_map50", "miou")})
            fit = fitness(metrics)
            record["fitness"] = round(fit, 5)
            if fit > best_fit:
                best_fit, best_metrics = fit, metrics
                save_checkpoint(best_path, eval_model, cfg.model, {"epoch": epoch + 1, "step": step, "metrics": _plain(metrics), "train_config": _plain(cfg.to_dict())})
        if main:
            history.append(record)
            log.info("%s", record)
            if progress:
                print(" ".join(f"{k}={v}" for k, v in record.items() if v is not None), flush=True)
            _save_resume(last_path, model, optimizer, scheduler, ema, balancer, epoch, step, best_fit, best_metrics, cfg)
        if cfg.max_iters and step >= cfg.max_iters:
            break
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return TrainResult(best_path if best_path.exists() else None, last_path, best_metrics, history, time.perf_counter() - started)


def _to_device(target: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in target.items()}


def _plain(value: Any) -> Any:
    """JSON-able copy (checkpoints hold only plain data next to tensors, for weights_only loading)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _save_resume(path: Path, model, optimizer, scheduler, ema, balancer, epoch, step, best_fit, best_metrics, cfg) -> None:
    state = {
        "format": "trident-train-state-1",
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "step": step,
        "best_fitness": best_fit,
        "best_metrics": _plain(best_metrics),
        "config": _plain(cfg.to_dict()),
    }
    if ema is not None:
        state["ema"] = ema.state_dict()
    if isinstance(balancer, torch.nn.Module):
        state["balancer"] = balancer.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-save never leaves a truncated last.pt


def _load_resume(path: Path, device: torch.device) -> dict:
    if not path.exists():
        raise TridentError(f"resume file {path} does not exist; point resume= at a last.pt from an earlier run")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise TridentError(f"resume file {path} cannot be read ({type(exc).__name__}); it may be truncated") from None
    if not isinstance(state, dict) or state.get("format") != "trident-train-state-1":
        raise TridentError(f"{path} is not a Trident training state (last.pt); best.pt files hold weights only")
    return state


if __name__ == "__main__":  # torchrun -m training.train --config FILE [key=value ...]
    import argparse

    from training.config import load_train_config

    ap = argparse.ArgumentParser(prog="python -m training.train")
    ap.add_argument("--config", default=None)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    train(load_train_config(a.config, a.overrides))
