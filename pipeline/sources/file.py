"""Video files: PyAV (FFmpeg) by default, OpenCV as the fallback decoder.

Files lose nothing: the queue policy is `block`, so decoding runs at the pace
of the slowest stage. A file that is missing or not a video is a fatal error
that names the file. A damaged file is decoded as far as it goes: a packet the
decoder rejects is skipped, and at the end the frames decoded are compared
with what the container declares (sources/integrity.py). Frames missing - a
file cut short, a damaged stretch - make the stream's error, naming the file,
the count and where the damage starts; every decoded frame has gone down the
pipeline by then and its results are kept. Decode errors that lost nothing
are a warning and a count in the metrics.

A file's own clock may restart part way (MPEG-TS files joined with `cat`):
`SourceClock` re-bases it so `Frame.pts` keeps increasing, each restart is a
warning, and the frame after it carries `discontinuity=True`, on which the
runtime starts the stream's tracks afresh.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline.sources.base import FatalError, Source, SourceState, short_error
from pipeline.sources.clock import Discontinuity, SourceClock
from pipeline.sources.decode import timed_frames
from pipeline.sources.integrity import DecodeHealth, declared_frames, ends_inside_packet, loss_report

log = logging.getLogger("trident.source")

LOGGED_DISCONTINUITIES = 5  # one warning each for the first few, then one line with the total at the end


class FileSource(Source):
    live = False
    _first_pts: float | None = None  # the first frame's pts, so damage is placed in seconds from the start

    def _check_path(self) -> Path:
        path = Path(self.cfg.uri)
        if not path.exists():
            raise FatalError(f"video file {path} does not exist; check the path")
        if path.is_dir():
            raise FatalError(f"{path} is a directory; pass a video file")
        if path.stat().st_size == 0:
            raise FatalError(f"video file {path} is empty (0 bytes)")
        return path

    def _produce(self) -> None:
        path = self._check_path()
        if self.cfg.decoder == "opencv":
            self._produce_opencv(path)
        else:
            self._produce_pyav(path)

    def _produce_pyav(self, path: Path) -> None:
        import av

        try:
            container = av.open(str(path), mode="r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise FatalError(f"{path} is not a video FFmpeg can open ({short_error(exc)}); the file may be truncated, corrupt or not a video") from None
        health = DecodeHealth()
        with container:
            if not container.streams.video:
                raise FatalError(f"{path} has no video stream (audio only, or damaged where the streams are described)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame + slice threads: decoding is the cheap stage only when threaded
            declared, how = declared_frames(container, stream)
            self.total_frames = self.stats.declared_frames = declared
            fps = float(stream.average_rate) if stream.average_rate else 30.0
            self.fps = fps
            clock = SourceClock(1.0 / fps, self.cfg.clock_jump_s)
            self._set_state(SourceState.STREAMING)
            try:
                for image, frame_time, decode_s in timed_frames(container, stream, health):
                    if not self._release(path, clock.push(frame_time, (image, decode_s)), health):
                        return
                    self.stats.decode_errors = health.errors
            except av.error.FFmpegError as exc:
                # reading cannot go on (the demuxer gave up, or nothing decodes any more); what was
                # decoded is kept and the loss is reported below like any other damage
                health.read_error = f"reading stopped: {short_error(exc)}"
                health.trouble()
            if not self._release(path, clock.flush(), health):
                return
            if clock.first_gap_pts is not None and self._first_pts is not None:
                health.first_gap_s = clock.first_gap_pts - self._first_pts
            self.stats.decode_errors = health.errors
            cut_short = ends_inside_packet(container.format.name, path.stat().st_size)
        if self.stats.discontinuities > LOGGED_DISCONTINUITIES:
            log.warning("%s: %d clock restarts in all, each re-based", path, self.stats.discontinuities)
        if self.stats.frames == 0:
            detail = f" ({health.read_error or health.describe_errors()})" if (health.read_error or health.errors) else ""
            raise FatalError(f"{path} contains no decodable video frames{detail}; the file may be truncated or corrupt")
        self._finish(path, declared, how, health, cut_short)

    def _release(self, path: Path, placed: list, health: DecodeHealth) -> bool:
        """Emit the frames the clock has placed; False when the source should stop."""
        for (image, decode_s), pts, jump in placed:
            if jump is not None:
                self._discontinuity(path, jump)
            if self._first_pts is None:
                self._first_pts = pts
            if not self._emit(image, pts, decode_s, discontinuity=jump is not None):
                return False
            health.position_s = pts - self._first_pts
        return True

    def _discontinuity(self, path: Path, jump: Discontinuity) -> None:
        self.stats.discontinuities += 1
        if self.stats.discontinuities <= LOGGED_DISCONTINUITIES:
            why = (
                "its timestamps restart, e.g. files joined with cat" if jump.backwards
                else f"{jump.after_s - jump.before_s:.1f} s without frames: a gap in the recording, or frames lost"
            )
            log.warning(
                "%s: the clock jumps %s from %.2f s to %.2f s at frame %d (%s); the stream goes on with its clock "
                "re-based and its tracks started afresh",
                path, "back" if jump.backwards else "forward", jump.before_s, jump.after_s, self._index, why,
            )

    def _finish(self, path: Path, declared: int | None, how: str, health: DecodeHealth, cut_short: str | None = None) -> None:
        """Compare what was decoded with what the file declares: the stream's error if frames were lost."""
        decoded = self.stats.frames
        if how != "count" and self.stats.discontinuities:
            # a duration is measured on the file's clock, which restarted: it no longer says how long the file is
            declared = self.stats.declared_frames = None
        if declared is not None:
            self.stats.missing_frames = max(0, declared - health.discarded_packets - decoded)
        if health.undecoded(decoded):
            self.stats.missing_frames = max(self.stats.missing_frames or 0, health.undecoded(decoded))
        report = loss_report(str(path), decoded, declared, how, health, cut_short)
        if report is not None:
            raise FatalError(report)
        if health.errors:
            checked = (
                "the file declares no length to check for missing frames" if declared is None
                else f"all {decoded} frames the container declares were decoded" if how == "count"
                else f"{decoded} frames decoded, about as many as the container's duration implies"
            )
            log.warning("%s: %d decode error(s) (%s), the first after %.1f s; %s", path, health.errors,
                        health.describe_errors(), health.first_trouble_s or 0.0, checked)

    def _produce_opencv(self, path: Path) -> None:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise FatalError(f"{path} is not a video OpenCV can open; the file may be corrupt or not a video")
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.total_frames = self.stats.declared_frames = count if count > 0 else None
            fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            self.fps = fps
            self._set_state(SourceState.STREAMING)
            health = DecodeHealth()
            n = 0
            while True:
                started = time.perf_counter()
                ok, image = cap.read()
                if not ok:
                    break
                if not self._emit(image, n / fps, time.perf_counter() - started):
                    return
                health.position_s = n / fps
                n += 1
        finally:
            cap.release()
        if self.stats.frames == 0:
            raise FatalError(f"{path} contains no decodable video frames; the file may be truncated or corrupt")
        # OpenCV's count is the container's, or duration x rate for some formats: taken as an estimate
        self._finish(path, self.total_frames, "duration", health)
