"""`trident train`: train the multi-task network from a config file plus key=value overrides."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the multi-task network (CPU, one GPU, or DDP under torchrun)",
        description="Train from a YAML/TOML config; any field can be overridden as key.sub=value "
        "(e.g. epochs=5 model.size=s data.synthetic=data/synth).",
    )
    p.add_argument("--config", default=None, help="YAML or TOML TrainConfig (see training/configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from training.config import load_train_config
    from training.train import train

    cfg = load_train_config(args.config, args.overrides)
    result = train(cfg, progress=not args.no_progress)
    summary = {
        "best": str(result.best) if result.best else None,
        "last": str(result.last),
        "seconds": round(result.seconds, 1),
        "best_metrics": {k: result.best_metrics.get(k) for k in ("box_map", "box_map50", "mask_map", "mask_map50", "miou")},
    }
    print(json.dumps(summary, indent=2))
    return 0
