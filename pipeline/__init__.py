"""Trident streaming runtime.

Kept light on purpose: importing `pipeline` (or its contract modules: `pipeline.contracts`, `pipeline.errors`, `pipeline.letterbox`, `pipeline.boxes`, `pipeline.config_files`) pulls in
numpy only, so `engines` and `trackers` can use the data contracts without
the runtime, torch or OpenCV.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("trident-vision")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "run", "stream"]


def run(config, **kwargs):
    """Run a RunConfig to the end: `pipeline.run(build_run_config({...}))`. See pipeline.app.run."""
    from pipeline.app import run as _run

    return _run(config, **kwargs)


def stream(source, engine, *args, **kwargs):
    """Iterate FrameResults: `for r in pipeline.stream("clip.mp4", "model.onnx"): ...`. See pipeline.runtime.stream."""
    from pipeline.runtime import stream as _stream

    return _stream(source, engine, *args, **kwargs)
