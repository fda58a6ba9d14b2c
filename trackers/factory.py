"""`make_tracker`: the one place a config's algorithm name becomes a class."""

from __future__ import annotations

from trackers.base import BaseTracker
from trackers.byte_tracker import ByteTracker
from trackers.config import TrackerConfig
from trackers.ocsort import OcSortTracker
from trackers.sort import SortTracker

__all__ = ["make_tracker"]

_CLASSES: dict[str, type[BaseTracker]] = {"bytetrack": ByteTracker, "ocsort": OcSortTracker, "sort": SortTracker}


def make_tracker(config: TrackerConfig | None = None) -> BaseTracker:
    """A fresh tracker (its own IDs, starting at 1) for one stream."""
    config = TrackerConfig() if config is None else config
    # TrackerConfig already rejected unknown algorithm names.
    return _CLASSES[config.algorithm](config)
