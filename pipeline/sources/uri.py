"""Source addresses: what kind of source a URI is, and how to print it without its password."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]*)@")


def redact(text: str) -> str:
    """Replace the password of every `scheme://user:password@` in `text` with ***.

    Used on URIs and on any error text that may quote one (FFmpeg puts the URL
    in its messages), so no log line or exception ever shows a camera password.
    """
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:***@", text)


def classify(uri: str) -> str:
    """'rtsp' (any network stream), 'webcam' (a number or /dev/video*), 'gstreamer' (a pipeline string) or 'file'."""
    if uri.isdigit() or uri.startswith("/dev/video"):
        return "webcam"
    if " ! " in uri:  # gst-launch syntax
        return "gstreamer"
    scheme = urlsplit(uri).scheme.lower()
    if scheme in LIVE_SCHEMES:
        return "rtsp"
    return "file"


def stream_name(uri: str) -> str:
    """A short, password-free id for logs and output file names."""
    kind = classify(uri)
    if kind == "webcam":
        return "webcam" + re.sub(r"\D", "", uri)
    if kind == "gstreamer":
        return "gstreamer"
    if kind == "file":
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        return name.rsplit(".", 1)[0] or "file"
    parts = urlsplit(uri)
    path = re.sub(r"[^A-Za-z0-9_-]+", "_", parts.path).strip("_")
    host = (parts.hostname or "stream").replace(".", "-")
    port = f"-{parts.port}" if parts.port else ""
    return f"{host}{port}" + (f"_{path}" if path else "")


