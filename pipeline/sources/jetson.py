"""GStreamer pipeline strings for NVIDIA Jetson hardware decode (nvv4l2decoder / nvvidconv).

Each builder returns a string for `cv2.VideoCapture(s, cv2.CAP_GSTREAMER)`
(or `trident run --source "<string>"`). Decoding happens on the NVDEC engine;
nvvidconv converts NV12 to BGRx in hardware, and only the final BGRx->BGR
step runs on the CPU. `appsink drop=true max-buffers=1` keeps latency
bounded when inference is slower than the camera.
"""

from __future__ import annotations

from pipeline.errors import TridentError

_DEPAY = {"h264": "rtph264depay ! h264parse", "h265": "rtph265depay ! h265parse"}
_PARSE = {"h264": "h264parse", "h265": "h265parse"}


def _codec(codec: str) -> str:
    codec = codec.lower()
    if codec not in _DEPAY:
        raise TridentError(f"codec must be h264 or h265, got {codec!r}")
    return codec


def _tail(width: int | None, height: int | None, drop: bool) -> str:
    size = f",width={width},height={height}" if width and height else ""
    sink = "appsink drop=true max-buffers=1 sync=false" if drop else "appsink sync=false"
    return f"nvvidconv ! video/x-raw,format=BGRx{size} ! videoconvert ! video/x-raw,format=BGR ! {sink}"


def jetson_rtsp_pipeline(uri: str, codec: str = "h264", latency_ms: int = 200, width: int | None = None, height: int | None = None, tcp: bool = True) -> str:
    """RTSP camera -> NVDEC -> BGR frames."""
    if not uri.startswith(("rtsp://", "rtsps://")):
        raise TridentError(f"jetson_rtsp_pipeline needs an rtsp:// URI, got {uri!r}")
    if latency_ms < 0:
        raise TridentError("latency_ms must be >= 0")
    protocols = " protocols=tcp" if tcp else ""
    return f"rtspsrc location={uri} latency={latency_ms}{protocols} ! {_DEPAY[_codec(codec)]} ! nvv4l2decoder ! " + _tail(width, height, drop=True)


def jetson_file_pipeline(path: str, codec: str = "h264", width: int | None = None, height: int | None = None) -> str:
    """MP4 file -> NVDEC -> BGR frames; no frame dropping (files lose nothing)."""
    return f"filesrc location={path} ! qtdemux ! {_PARSE[_codec(codec)]} ! nvv4l2decoder ! " + _tail(width, height, drop=False)


def jetson_csi_pipeline(sensor_id: int = 0, width: int = 1920, height: int = 1080, fps: int = 30) -> str:
    """MIPI CSI camera (nvarguscamerasrc) -> BGR frames."""
    if sensor_id < 0 or width <= 0 or height <= 0 or fps <= 0:
        raise TridentError("sensor_id must be >= 0 and width, height, fps > 0")
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM),width={width},height={height},framerate={fps}/1 ! "
        + _tail(None, None, drop=True)
    )
