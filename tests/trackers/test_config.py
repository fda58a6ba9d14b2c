"""TrackerConfig validation and make_tracker."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.errors import TridentError
from trackers import ByteTracker, SortTracker, TrackerConfig, make_tracker


def test_from_dict_names_the_unknown_key() -> None:
    with pytest.raises(TridentError, match="'hgh_score'"):
        TrackerConfig.from_dict({"algorithm": "sort", "hgh_score": 0.5})


def test_from_dict_round_trips_every_field() -> None:
    cfg = TrackerConfig(algorithm="sort", fps=25.0, min_hits=3, lost_buffer_s=2.0)
    assert TrackerConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("algorithm", "deepsort", "bytetrack, ocsort, sort"),
        ("fps", 0.0, "fps"),
        ("high_score", 1.5, "high_score"),
        ("low_score", 0.7, "low_score"),
        ("min_hits", 0, "min_hits"),
        ("lost_buffer_s", float("nan"), "lost_buffer_s"),
        ("removed_history", -1, "removed_history"),
    ],
)
def test_invalid_values_are_errors_naming_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(TridentError, match=message):
        TrackerConfig(**{field: value})


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrackerConfig().fps = 10.0  # type: ignore[misc]


def test_make_tracker_picks_the_algorithm() -> None:
    assert type(make_tracker(TrackerConfig(algorithm="sort"))) is SortTracker
    assert type(make_tracker(TrackerConfig(algorithm="bytetrack"))) is ByteTracker
    assert type(make_tracker()) is ByteTracker


def test_every_threshold_field_has_a_comment_saying_what_it_trades() -> None:
    import inspect

    import trackers.config as module

    source = inspect.getsource(module.TrackerConfig)
    for f in dataclasses.fields(TrackerConfig):
        line = next(i for i, text in enumerate(source.splitlines()) if text.strip().startswith(f"{f.name}:"))
        assert source.splitlines()[line - 1].strip().startswith("#"), f"{f.name} has no comment above it"
