"""Trident multi-object trackers: Kalman filter, SORT, ByteTrack, OC-SORT, MOT I/O and metrics.

    from trackers import TrackerConfig, make_tracker
    tracker = make_tracker(TrackerConfig(algorithm="bytetrack"))
    tracks = tracker.update(detections, frame_time)

Names are imported lazily so `import trackers` (e.g. by the CLI to register
its commands) does not pull in scipy.

Note: this import name shadows Roboflow's `trackers` package on PyPI; install
that one in a separate environment if you need both.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrackerConfig": "trackers.config",
    "make_tracker": "trackers.factory",
    "ByteTracker": "trackers.byte_tracker",
    "SortTracker": "trackers.sort",
    "OcSortTracker": "trackers.ocsort",
    "Tracker": "trackers.base",
    "TrackState": "trackers.track",
    "BoxKalmanFilter": "trackers.kalman",
    "read_mot": "trackers.mot_io",
    "write_mot": "trackers.mot_io",
    "MotSequence": "trackers.mot_io",
    "evaluate_mot": "trackers.metrics",
    "MotMetrics": "trackers.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trackers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
