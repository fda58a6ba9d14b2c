"""A source is one thread that decodes one stream into a bounded queue.

It is a small state machine, CONNECTING -> STREAMING -> RECONNECTING -> CLOSED,
that tells retryable errors (a camera that dropped, a read that timed out)
from fatal ones (a file that does not exist, a retry budget spent). It never
invents frames during an outage: the gap shows up as a jump in `Frame.pts`,
which the tracker uses to predict over the real elapsed time.

Whatever happens, the thread puts an `EndOfStream` in its queue in `finally`,
so a consumer never waits forever on a source that died.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pipeline.cpu_budget import name_thread
from pipeline.queues import BoundedQueue
from pipeline.sources.uri import redact
from pipeline.contracts import Frame
from pipeline.errors import TridentError

log = logging.getLogger("trident.source")


def short_error(exc: BaseException) -> str:
    """The first line of an exception's text (FFmpeg's can be long), for one-line messages."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


class SourceState(enum.Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class RetryableError(TridentError):
    """The stream may come back: reconnect after a backoff."""


class FatalError(TridentError):
    """Retrying cannot help (bad path, not a video, retry budget spent)."""


@dataclass(frozen=True, eq=False)
class DecodedFrame(Frame):
    """A Frame plus the seconds its decode took on the source's thread (the `decode` stage).

    The runtime reads `decode_s` into `FrameResult.timings` and the metrics; it
    is a subclass only until `Frame` itself carries the field."""

    decode_s: float = 0.0
    discontinuity: bool = False  # the source re-based its clock before this frame (see sources/clock.py)
    decode_cpu_s: float = 0.0  # the source thread's CPU since its previous frame (its decoder's own threads: cpu_budget)


@dataclass(frozen=True)
class EndOfStream:
    """Last item a source puts in its queue. `error` is None when the stream ended normally."""

    stream_id: str
    error: str | None = None
    frames: int = 0


@dataclass(frozen=True)
class SourceConfig:
    uri: str
    stream_id: str = ""  # default: derived from the uri, password-free
    kind: str = "auto"  # auto | file | rtsp | webcam | gstreamer
    queue_size: int = 0  # 0: 16 for files, 2 for live sources
    queue_policy: str = ""  # "": block for files (lose nothing), drop_oldest for live (bounded latency)
    rtsp_transport: str = "tcp"  # tcp survives packet loss; udp has lower latency on clean networks
    open_timeout_s: float = 10.0  # connecting to a camera that does not answer gives up after this
    read_timeout_s: float = 5.0  # no frame for this long while streaming = stalled: reconnect
    # FFmpeg's stream analysis when a network stream (re)connects: what it reads in that time comes out
    # at once, stale, after it. Its defaults (up to 5 s, and 20 frames to estimate the rate) held a
    # 10 fps camera's first frame back 2.9 s and delivered 28 old frames in one burst; with this and no
    # rate probe (sources/rtsp.py): 0.7 s and 6 frames. Raise it for a stream FFmpeg cannot size in time.
    probe_s: float = 0.5
    reconnect_initial_s: float = 0.5  # first backoff; doubles each failed attempt
    reconnect_max_s: float = 10.0  # backoff cap: how soon a camera that comes back is picked up again
    max_reconnects: int = -1  # consecutive failed attempts before giving up; -1 = never give up
    max_frames: int = 0  # stop after this many frames (0 = until the end)
    decoder: str = "pyav"  # pyav | opencv (files and network streams)
    # a file whose timestamps go back, or forward by more than this beyond the next frame's time, has
    # restarted its clock: the source re-bases it, reports it, and the stream's tracks start afresh.
    # Larger: a long real gap in a recording is predicted over instead; smaller: it ends the tracks.
    clock_jump_s: float = 2.0
    zones: str = ""  # a zones file (lines, polygons) for this stream only; "" = the run's --zones, if any

    def __post_init__(self) -> None:
        if self.kind not in ("auto", "file", "rtsp", "webcam", "gstreamer"):
            raise TridentError(f"source kind must be auto, file, rtsp, webcam or gstreamer, got {self.kind!r}")
        if self.rtsp_transport not in ("tcp", "udp"):
            raise TridentError(f"rtsp_transport must be tcp or udp, got {self.rtsp_transport!r}")
        if not 0.0 < self.probe_s <= 30.0:
            raise TridentError(f"probe_s must be in (0, 30] seconds (FFmpeg's stream analysis on connect), got {self.probe_s}")
        if self.open_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise TridentError("open_timeout_s and read_timeout_s must be > 0")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise TridentError("reconnect backoff must satisfy 0 < reconnect_initial_s <= reconnect_max_s")
        if self.decoder not in ("pyav", "opencv"):
            raise TridentError(f"decoder must be pyav or opencv, got {self.decoder!r}")
        if not self.clock_jump_s > 0:
            raise TridentError(f"clock_jump_s must be > 0, got {self.clock_jump_s!r}")


@dataclass
class SourceStats:
    frames: int = 0
    reconnects: int = 0
    stalls: int = 0
    stall_log: list[tuple[float, float]] = field(default_factory=list)  # (flagged at, last frame at), monotonic
    gaps: list[float] = field(default_factory=list)  # seconds without frames, per outage
    state_changes: list[tuple[float, str]] = field(default_factory=list)
    decode_errors: int = 0  # packets rejected + packets and frames flagged corrupt (files: see integrity.py)
    discontinuities: int = 0  # clock restarts re-based (files: see clock.py)
    declared_frames: int | None = None  # what the container declares (or its duration implies)
    missing_frames: int | None = None  # declared minus decoded, when a file ended with fewer; None: unknown


class Source:
    """Base class: subclasses implement `_produce()`, calling `self._emit(image, pts, decode_s)` per frame."""

    live = False

    def __init__(self, cfg: SourceConfig, stream_id: str, queue: BoundedQueue, stop: threading.Event):
        self.cfg, self.stream_id, self.queue, self.stop_event = cfg, stream_id, queue, stop
        self.state = SourceState.CONNECTING
        self.stats = SourceStats()
        self.error: str | None = None
        self.total_frames: int | None = None  # known for files, for progress bars
        self.fps: float | None = None  # the stream's nominal rate, when it declares one
        self._index = 0
        # called (source, old state, new state) on the source's thread at each change: stream_down/up events
        self.state_listeners: list = []
        self._cpu_mark = 0.0  # thread_time at the previous frame, on the source's thread
        self.before_exit: Callable[[], None] | None = None  # called on the source's thread as it ends
        self._thread = threading.Thread(target=self._run, name=f"source-{stream_id}", daemon=True)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Source":
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:  # a source that never started has nothing to wait for
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _set_state(self, state: SourceState) -> None:
        if state != self.state:
            old, self.state = self.state, state
            self.stats.state_changes.append((time.monotonic(), state.value))
            log.info("%s: %s", self.stream_id, state.value)
            for listener in list(self.state_listeners):
                try:
                    listener(self, old, state)
                except Exception:  # a listener's bug must not end the stream
                    log.exception("%s: state listener failed", self.stream_id)

    def _run(self) -> None:
        name_thread("decode")  # the decoder's worker threads inherit the name: the budget counts them as decode
        self._cpu_mark = time.thread_time()
        try:
            self._produce()
        except TridentError as exc:
            self.error = redact(str(exc))
            log.error("%s: %s", self.stream_id, self.error)
        except Exception as exc:  # a decoder bug must still end the stream cleanly, with its reason
            self.error = redact(f"{type(exc).__name__}: {exc}")
            log.exception("%s: source failed", self.stream_id)
        finally:
            if self.before_exit is not None:
                self.before_exit()  # the CPU budget samples this thread (and its decoder's) before it ends
            self._set_state(SourceState.CLOSED)
            # The sentinel must arrive even behind a slow consumer (a closed queue ignores it);
            # the timeout only guards against a consumer that died without closing the queue.
            try:
                self.queue.put(EndOfStream(self.stream_id, self.error, self.stats.frames), timeout=60.0)
            except TimeoutError:
                log.error("%s: nobody is reading the queue; end of stream not delivered", self.stream_id)

    # --- helpers for subclasses ----------------------------------------------------------------
    def _emit(self, image: np.ndarray, pts: float, decode_s: float, discontinuity: bool = False) -> bool:
        """Queue one frame; `decode_s` is what decoding it cost this thread (perf_counter seconds,
        waiting for the stream excluded). Returns False when the source should stop."""
        if self.stop_event.is_set():
            return False
        cpu_now = time.thread_time()
        cpu, self._cpu_mark = cpu_now - self._cpu_mark, cpu_now
        # wall_time is when decoding of this frame began (its packet was in hand): capture as far as
        # this process can see it, so end-to-end latency includes the decode
        frame = DecodedFrame(self.stream_id, self._index, float(pts), image, time.time() - decode_s, decode_s, discontinuity, cpu)
        if not self.queue.put(frame, stop=self.stop_event):
            return False
        self._index += 1
        self.stats.frames += 1
        return not (self.cfg.max_frames and self.stats.frames >= self.cfg.max_frames)

    def _sleep(self, seconds: float) -> bool:
        """Back off, waking early on stop. Returns False when stopped."""
        return not self.stop_event.wait(seconds)


class Reconnector:
    """Capped exponential backoff and the retry budget every live source shares.

    Per connection: `attempt()` before opening, `frame(now)` for each frame,
    `lost(reason, last_frame_at)` when the connection ends. A connection that
    delivered frames resets the budget; `max_reconnects` consecutive attempts
    without a frame make the error fatal.
    """

    def __init__(self, source: Source):
        self.source = source
        self.failures = 0
        self.backoff = source.cfg.reconnect_initial_s
        self.outage_since: float | None = None
        self.got_frame = False

    def attempt(self) -> None:
        first = self.source.stats.frames == 0 and self.failures == 0 and self.source.stats.reconnects == 0
        self.source._set_state(SourceState.CONNECTING if first else SourceState.RECONNECTING)
        self.got_frame = False

    def frame(self, now: float) -> None:
        if self.got_frame:
            return
        self.got_frame, self.failures, self.backoff = True, 0, self.source.cfg.reconnect_initial_s
        if self.outage_since is not None:
            self.source.stats.gaps.append(now - self.outage_since)
            self.outage_since = None

    def lost(self, reason: str, last_frame_at: float | None, fatal: str) -> bool:
        """Count the loss, raise FatalError(`fatal` + attempts) when the budget is spent, back off.

        Returns False when the source was stopped during the backoff."""
        src, cfg = self.source, self.source.cfg
        if self.outage_since is None:
            self.outage_since = last_frame_at if (src.stats.frames and last_frame_at is not None) else time.monotonic()
        if not self.got_frame:
            self.failures += 1
            if 0 <= cfg.max_reconnects < self.failures:
                raise FatalError(fatal.format(attempts=self.failures, reason=reason))
        src.stats.reconnects += 1
        src._set_state(SourceState.RECONNECTING)
        log.warning("%s: %s; reconnecting in %.1f s", src.stream_id, reason, self.backoff)
        if not src._sleep(self.backoff):
            return False
        self.backoff = min(self.backoff * 2, cfg.reconnect_max_s)
        return True
