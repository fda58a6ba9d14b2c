"""Shared fixtures and the slow-test policy.

`slow` tests are skipped unless `--runslow` is given; a slow test that also
carries the `ci` marker belongs to the bounded set that runs every time
(CI included), so the default run stays under its time budget.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run every test marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow (only slow tests marked `ci` run by default)")
    for item in items:
        if "slow" in item.keywords and "ci" not in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic dataset shared by the tests that only read it: 3 videos x 24 frames at 192x128."""
    from training.synthetic import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig(videos=3, frames=24, width=192, height=128, seed=7)
    summary = generate_dataset(cfg, out, workers=2)
    return out, cfg, summary
