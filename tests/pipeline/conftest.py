from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Two short synthetic clips of different lengths: (path_a 24 frames, path_b 15 frames) at 192x128."""
    from training.synthetic import SynthConfig, generate_dataset

    root = tmp_path_factory.mktemp("clips")
    generate_dataset(SynthConfig(videos=2, frames=24, width=192, height=128, seed=21, val_fraction=0.0), root / "a", workers=1)
    generate_dataset(SynthConfig(videos=1, frames=15, width=192, height=128, seed=22), root / "b", workers=1)
    return root / "a" / "videos" / "video_0000.mp4", root / "b" / "videos" / "video_0000.mp4"


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    from tests.engines.helpers import export_tiny_model

    return export_tiny_model(tmp_path_factory.mktemp("model"), batch_range=(1, 4))
