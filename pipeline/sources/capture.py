"""OpenCV capture sources: webcams (V4L2) and raw GStreamer pipeline strings (Jetson hardware decode).

Both are live: a read failure closes the capture and reopens it with the same
capped backoff as RTSP, and no frame is invented meanwhile.
"""

from __future__ import annotations

import time

from pipeline.sources.base import FatalError, Reconnector, Source, SourceState
from pipeline.sources.uri import redact


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
        retry = Reconnector(self)
        last_frame_at: float | None = None
        while not self.stop_event.is_set():
            retry.attempt()
            cap = self._capture()
            try:
                if cap.isOpened():
                    self._set_state(SourceState.STREAMING)
                    while not self.stop_event.is_set():
                        # grab() waits for the camera, retrieve() decodes/converts: only the latter is decode cost
                        if not cap.grab():
                            break
                        decode_started = time.perf_counter()
                        ok, image = cap.retrieve()
                        if not ok:
                            break
                        decode_s = time.perf_counter() - decode_started
                        last_frame_at = time.monotonic()
                        retry.frame(last_frame_at)
                        if not self._emit(image, last_frame_at - started, decode_s):
                            return
            finally:
                cap.release()
            if self.stop_event.is_set():
                return
            what = f"{self._describe()}".replace("{", "{{").replace("}", "}}")  # the message is a template for the attempt count
            fatal = f"{what} gave no frames after {{attempts}} attempt(s); {self._hint()}"
            if not retry.lost("capture lost", last_frame_at, fatal):
                return

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
