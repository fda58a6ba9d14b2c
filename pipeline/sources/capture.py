"""OpenCV capture sources: webcams (V4L2) and raw GStreamer pipeline strings (Jetson hardware decode).

Both are live: a read failure closes the capture and reopens it with the same
capped backoff as RTSP, and no frame is invented meanwhile.
"""

from __future__ import annotations

import logging
import time

from pipeline.sources.base import FatalError, Source, SourceState
from pipeline.sources.uri import redact

log = logging.getLogger("trident.source")


def opencv_has_gstreamer() -> bool:
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


class _CaptureSource(Source):
    live = True

    def _capture(self):
        raise NotImplementedError

    def _produce(self) -> None:
        started = time.monotonic()
        failures, backoff = 0, self.cfg.reconnect_initial_s
        outage_since: float | None = None
        while not self.stop_event.is_set():
            self._set_state(SourceState.CONNECTING if self.stats.frames == 0 and failures == 0 else SourceState.RECONNECTING)
            cap = self._capture()
            got_frame = False
            try:
                if cap.isOpened():
                    self._set_state(SourceState.STREAMING)
                    while not self.stop_event.is_set():
                        ok, image = cap.read()
                        if not ok:
                            break
                        now = time.monotonic()
                        if not got_frame:
                            got_frame, failures, backoff = True, 0, self.cfg.reconnect_initial_s
                            if outage_since is not None:
                                self.stats.gaps.append(now - outage_since)
                                outage_since = None
                        if not self._emit(image, now - started):
                            return
            finally:
                cap.release()
            if self.stop_event.is_set():
                return
            outage_since = outage_since or time.monotonic()
            if not got_frame:
                failures += 1
                if 0 <= self.cfg.max_reconnects < failures:
                    raise FatalError(f"{self._describe()} gave no frames after {failures} attempt(s); {self._hint()}")
            self.stats.reconnects += 1
            self._set_state(SourceState.RECONNECTING)
            log.warning("%s: capture lost; reopening in %.1f s", self.stream_id, backoff)
            if not self._sleep(backoff):
                return
            backoff = min(backoff * 2, self.cfg.reconnect_max_s)

    def _describe(self) -> str:
        return redact(self.cfg.uri)

    def _hint(self) -> str:
        return "check the device"


class WebcamSource(_CaptureSource):
    def _capture(self):
        import cv2

        device = int(self.cfg.uri) if self.cfg.uri.isdigit() else self.cfg.uri
        return cv2.VideoCapture(device, cv2.CAP_V4L2)

    def _describe(self) -> str:
        return f"webcam {self.cfg.uri}"

    def _hint(self) -> str:
        return "check that the device exists (ls /dev/video*) and that no other program holds it"


class GStreamerSource(_CaptureSource):
    def _capture(self):
        import cv2

        if not opencv_has_gstreamer():
            raise FatalError(
                "this OpenCV build has no GStreamer support (PyPI wheels don't); on Jetson use JetPack's "
                "system OpenCV (python3-opencv) in a venv made with --system-site-packages"
            )
        return cv2.VideoCapture(self.cfg.uri, cv2.CAP_GSTREAMER)

    def _describe(self) -> str:
        return f"GStreamer pipeline '{redact(self.cfg.uri)}'"

    def _hint(self) -> str:
        return "test the pipeline with gst-launch-1.0 and make sure it ends in 'appsink'"
