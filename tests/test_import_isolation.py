"""Dependency direction of DESIGN.md, checked by importing each package in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = {"torch", "torchvision", "cv2", "onnxruntime", "tensorrt", "av"}
OURS = {"pipeline", "engines", "trackers", "training"}


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "module, forbidden",
    [
        # the contracts and the light package root pull in numpy only
        ("pipeline", HEAVY | {"engines", "trackers", "training"}),
        ("pipeline.errors", HEAVY | {"engines", "trackers", "training"}),
        ("pipeline.contracts", HEAVY | {"engines", "trackers", "training"}),
        ("pipeline.letterbox", HEAVY | {"engines", "trackers", "training"}),
        ("pipeline.boxes", HEAVY | {"engines", "trackers", "training"}),
        ("pipeline.config_files", HEAVY | {"engines", "trackers", "training"}),
        ("pipeline.cli", HEAVY | {"engines", "trackers", "training"}),
        ("trackers", HEAVY | {"engines", "training"}),
        ("engines", HEAVY | {"training", "trackers"}),
        ("training", HEAVY | {"engines", "trackers"}),
        ("training.synthetic", {"torch", "engines", "trackers", "onnxruntime", "tensorrt"}),
    ],
)
def test_package_imports_only_what_its_layer_allows(module, forbidden):
    loaded = _loaded_after_import(module)
    assert not loaded & forbidden, f"importing {module} pulled in {sorted(loaded & forbidden)}"
