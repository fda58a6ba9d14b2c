"""Network cameras (RTSP and other FFmpeg network inputs) with reconnect and a stall watchdog.

Opening and reading go through PyAV with FFmpeg's interrupt timeouts
(`timeout=(open, read)`), so no call can block for longer than its timeout.
A watchdog thread watches the time since the last frame and marks the source
stalled as soon as it passes `read_timeout_s`, for the state machine and the
metrics; FFmpeg's read timeout then ends the blocked read and the source
reopens the stream with capped exponential backoff.

Timestamps of live frames are seconds since the source started (monotonic
clock), so an outage appears as a real gap in `Frame.pts`; the camera's own
timestamps restart on every reconnect and cannot be trusted across one.
"""

from __future__ import annotations

import logging
import threading
import time

from pipeline.sources.base import FatalError, Reconnector, Source, SourceState
from pipeline.sources.decode import timed_frames
from pipeline.sources.integrity import DecodeHealth
from pipeline.sources.uri import ffmpeg_url, redact

log = logging.getLogger("trident.source")

STALL_GRACE_S = 0.5


class RtspSource(Source):
    live = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_frame = time.monotonic()
        self.stall_detected_at: float | None = None  # monotonic time the watchdog flagged the last stall
        self._stall_lock = threading.Lock()
        self._watchdog = threading.Thread(target=self._watch, name=f"watchdog-{self.stream_id}", daemon=True)

    def start(self) -> "RtspSource":
        super().start()
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        period = min(0.25, self.cfg.read_timeout_s / 4)
        while not self.stop_event.wait(period) and self.state != SourceState.CLOSED:
            silent = time.monotonic() - self._last_frame
            if self.state == SourceState.STREAMING and silent > self.cfg.read_timeout_s:
                self._flag_stall()

    @property
    def last_frame_at(self) -> float:
        """Monotonic time the last frame arrived."""
        return self._last_frame

    def _flag_stall(self) -> None:
        """Called by the watchdog and by a read that timed out; whichever comes first counts the stall."""
        with self._stall_lock:
            silent = time.monotonic() - self._last_frame
            if self.stall_detected_at is None and silent >= self.cfg.read_timeout_s:
                self.stall_detected_at = time.monotonic()
                self.stats.stalls += 1
                self.stats.stall_log.append((self.stall_detected_at, self._last_frame))
                log.warning("%s: stalled, no frame for %.1f s", self.stream_id, silent)

    def _open(self):
        import av

        options = {"rtsp_transport": self.cfg.rtsp_transport} if self.cfg.uri.lower().startswith("rtsp") else {}
        # a short analysis on connect: the stream's size comes from its SDP and first keyframe, and
        # Trident needs no probed frame rate from a camera (its frames carry their arrival times)
        options.update(analyzeduration=str(int(self.cfg.probe_s * 1e6)), fpsprobesize="0")
        # FFmpeg's read timeout trails the watchdog by a little, so a stall is flagged before the read is cut
        read_timeout = self.cfg.read_timeout_s + STALL_GRACE_S
        # credentials percent-encoded: a '/', '#' or '?' in a password would otherwise end FFmpeg's host part
        return av.open(ffmpeg_url(self.cfg.uri), mode="r", options=options, timeout=(self.cfg.open_timeout_s, read_timeout))

    def _reason(self, exc: BaseException) -> str:
        """FFmpeg's own words ("Connection refused"), without PyAV's errno and quoted URL (the message
        names the camera already); redacted before it is cut to one line, since a cut first could split
        a userinfo and leave its tail unredacted."""
        text = redact(str(getattr(exc, "strerror", None) or exc).strip(), self.cfg.uri).splitlines()
        return (text[0] if text else type(exc).__name__)[:200]

    def _produce(self) -> None:
        import av

        started = time.monotonic()
        retry = Reconnector(self)
        safe_uri = redact(self.cfg.uri, self.cfg.uri)
        fatal = (
            f"camera {_literal(safe_uri)} unreachable after {{attempts}} attempt(s) ({{reason}}); "
            "check the address, port, credentials and network, or raise max_reconnects"
        )
        while not self.stop_event.is_set():
            retry.attempt()
            try:
                container = self._open()
            except (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError) as exc:
                # retrying a refused password cannot help, and many cameras lock an account that keeps trying
                raise FatalError(
                    f"camera {safe_uri} refused the credentials ({self._reason(exc)}); check the user name and password in the URL"
                ) from None
            except (av.error.FFmpegError, OSError, ValueError, UnicodeError) as exc:
                reason = self._reason(exc)
            else:
                with container:
                    if not container.streams.video:
                        raise FatalError(f"{safe_uri} has no video stream")
                    stream = container.streams.video[0]
                    # slice threads only: frame threads hold each frame back by one per thread (at
                    # 10 fps and 3 threads, 200 ms of latency before the pipeline sees it)
                    stream.thread_type = "SLICE"
                    self._set_state(SourceState.STREAMING)
                    self._last_frame = time.monotonic()
                    # a packet the decoder rejects (lost over UDP, a glitching camera) is skipped and counted,
                    # not a reason to tear the connection down and lose the frames after it
                    health, counted = DecodeHealth(), self.stats.decode_errors
                    try:
                        for image, _, decode_s in timed_frames(container, stream, health):
                            self.stats.decode_errors = counted + health.errors
                            now = time.monotonic()
                            retry.frame(now)
                            self._last_frame = now
                            self.stall_detected_at = None
                            if not self._emit(image, now - started, decode_s):
                                return
                        reason = "the stream ended"
                    except (av.error.FFmpegError, OSError) as exc:
                        reason = self._reason(exc)
                        self._flag_stall()
                    finally:
                        self.stats.decode_errors = counted + health.errors
            if self.stop_event.is_set():
                return
            if not retry.lost(reason, self._last_frame if self.stats.frames else None, fatal):
                return


def _literal(text: str) -> str:
    """`text` safe inside a str.format template (an address may hold braces)."""
    return text.replace("{", "{{").replace("}", "}}")
