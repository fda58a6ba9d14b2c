"""Video files: PyAV (FFmpeg) by default, OpenCV as the fallback decoder.

Files lose nothing: the queue policy is `block`, so decoding runs at the pace
of the slowest stage. A file that is missing, not a video, or corrupt part way
is a fatal error that names the file; the frames decoded before a mid-file
error have already gone down the pipeline and their results are kept.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.sources.base import FatalError, Source, SourceState, short_error
from pipeline.sources.decode import timed_frames


class FileSource(Source):
    live = False

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
        with container:
            if not container.streams.video:
                raise FatalError(f"{path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame + slice threads: decoding is the cheap stage only when threaded
            self.total_frames = int(stream.frames) or (
                int(round(float(stream.duration * stream.time_base) * float(stream.average_rate)))
                if stream.duration and stream.average_rate
                else None
            )
            fps = float(stream.average_rate) if stream.average_rate else 30.0
            self.fps = fps
            self._set_state(SourceState.STREAMING)
            try:
                for n, (image, frame_time, decode_s) in enumerate(timed_frames(container, stream)):
                    pts = float(frame_time) if frame_time is not None else n / fps
                    if not self._emit(image, pts, decode_s):
                        return
            except av.error.FFmpegError as exc:
                raise FatalError(
                    f"{path}: decoding failed after {self.stats.frames} frames ({short_error(exc)}); "
                    "the file is truncated or corrupt - results for the decoded frames are kept"
                ) from None
        if self.stats.frames == 0:
            raise FatalError(f"{path} contains no decodable video frames; the file may be truncated or corrupt")

    def _produce_opencv(self, path: Path) -> None:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise FatalError(f"{path} is not a video OpenCV can open; the file may be corrupt or not a video")
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.total_frames = count if count > 0 else None
            fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            self.fps = fps
            self._set_state(SourceState.STREAMING)
            n = 0
            while True:
                started = time.perf_counter()
                ok, image = cap.read()
                if not ok:
                    break
                if not self._emit(image, n / fps, time.perf_counter() - started):
                    return
                n += 1
        finally:
            cap.release()
        if self.stats.frames == 0:
            raise FatalError(f"{path} contains no decodable video frames; the file may be truncated or corrupt")

