"""Trident streaming runtime.

Kept light on purpose: importing `pipeline` (or `pipeline.types`) pulls in
numpy only, so `engines` and `trackers` can use the data contracts without
the runtime, torch or OpenCV.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("trident-vision")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
