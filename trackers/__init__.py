"""Trident multi-object trackers: Kalman filter, SORT, ByteTrack, MOT I/O and metrics.

Note: this import name shadows Roboflow's `trackers` package on PyPI; install
that one in a separate environment if you need both.
"""
