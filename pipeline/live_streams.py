"""Streams added and removed while a Pipeline runs: the part of `Pipeline` that `trident serve` needs.

`add_source` and `remove_source` are called from other threads (an HTTP
handler). The slow, fallible work (making the source, opening its output
files, closing and flushing them) happens on the caller's thread; the runtime's
loop only attaches or detaches a prepared stream between two batches (a list
of `_StreamChange`s under one lock), so inference keeps one owner and never
waits on a file or a camera. A mixin rather than a second object: the changes
edit the Pipeline's own stream tables (sources, trackers, sinks), which the
loop reads without a lock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING, Any, Sequence

from pipeline.errors import TridentError
from pipeline.sources import Source, SourceConfig, make_source
from pipeline.sources.uri import safe_file_stem, stream_name

if TYPE_CHECKING:
    from pipeline.batcher import Batcher

log = logging.getLogger("trident.pipeline")

CHANGE_TIMEOUT_S = 30.0  # how long remove_source waits for the loop to let go of a stream (one batch, normally)
JOIN_REMOVED_S = 2.0  # a removed source still inside a camera's open timeout ends on its own, unjoined


def _unique_ids(configs: Sequence[SourceConfig]) -> list[str]:
    """One id per source, each a safe file name in --out and unique after sanitising.

    Ids name the output files (`<id>.mp4`, `<id>.jsonl`), so `../x` or `cam/1`
    would leave the folder or fail to open: an id is reduced to a safe file
    stem (a warning says what it became), an id with nothing usable left is
    refused. Uniqueness ignores case, so `Cam` and `cam` cannot share a file on
    a case-insensitive disk (macOS, Windows shares).
    """
    ids: list[str] = []
    for i, cfg in enumerate(configs):
        base = safe_file_stem(cfg.stream_id) if cfg.stream_id else stream_name(cfg.uri)
        if cfg.stream_id:
            if not base:
                raise TridentError(
                    f"sources[{i}].stream_id {cfg.stream_id!r} has no character usable in a file name; "
                    "use letters, digits, '.', '-' or '_' (e.g. stream_id: cam1), or leave it out to name the stream after its source"
                )
            if base != cfg.stream_id:
                log.warning("sources[%d].stream_id %r is not a safe file name; the stream is called %r", i, cfg.stream_id, base)
        sid, n = base, 1
        while sid.casefold() in {s.casefold() for s in ids}:
            n += 1
            sid = f"{base}-{n}"
        ids.append(sid)
    return ids


@dataclasses.dataclass(eq=False)
class _StreamChange:
    """One stream to attach (`source` set) or detach (`source` None), applied by the loop between batches."""

    stream_id: str
    source: Source | None = None
    runners: list = dataclasses.field(default_factory=list)
    tracker: object = None
    camera_motion: object = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    detached: tuple | None = None  # for a removal: (source, runners) the caller closes


class LiveStreams:
    """Mixed into `Pipeline` (pipeline/runtime.py), whose __init__ sets the tables used here."""

    def _stream_stop(self, sid: str) -> threading.Event:
        event = self._stops[sid] = threading.Event()
        if self.stop_event.is_set():
            event.set()
        return event

    # --- streams added and removed while the pipeline runs (thread-safe; see the module docstring) ---
    def add_source(self, cfg: SourceConfig, zones: Any = None) -> str:
        """Start one more stream without disturbing the others; returns its stream id (unique, file-safe).

        Its output files open here, on the caller's thread (a sink that cannot open raises here and
        nothing changes); the loop starts its source at the next batch. A camera that cannot be
        reached fails later on its own thread, alone, like any source. `zones` (a parsed `Zones`)
        replace the stream's own `cfg.zones` file and the run's zones; they need the analytics stage."""
        with self._streams_lock:
            if self._finished:
                raise TridentError("the pipeline has stopped; no stream can be added")
            taken = [*self.sources, *self._pending]
            sid = _unique_ids([*(SourceConfig(uri=t, stream_id=t) for t in taken), cfg])[-1]
            source = make_source(cfg, self._stream_stop(sid), stream_id=sid, wakeup=self._wakeup)
            self._pending[sid] = source
        try:
            change = _StreamChange(sid, source)
            if self.analytics is not None:  # before the sinks: the annotation draws the stream's zones
                self.analytics.attach(source, zones)
            elif zones:
                raise TridentError(f"{sid}: zones need the pipeline's analytics stage (Pipeline(..., analytics=AnalyticsStage(...)))")
            change.runners = self._make_runners(source)
            if self._tracker_cfg is not None:
                from trackers.factory import make_tracker

                change.tracker = make_tracker(self._tracker_cfg)
                if self._tracker_cfg.cmc != "none":
                    from pipeline.camera_motion import CameraMotion

                    change.camera_motion = CameraMotion(self._tracker_cfg.cmc)
        except BaseException:
            if self.analytics is not None:
                self.analytics.detach(sid)
            with self._streams_lock:
                self._pending.pop(sid, None)
                self._stops.pop(sid, None)
            raise
        with self._streams_lock:
            if not self._finished:
                self._changes.append(change)
                self._wakeup.set()
                return sid
            self._pending.pop(sid, None)
        for runner in change.runners:
            runner.close()
        raise TridentError("the pipeline has stopped; no stream can be added")

    def remove_source(self, stream_id: str) -> None:
        """Stop one stream and flush and close its outputs; the others go on. Returns once they are closed.

        Frames of it still queued are dropped; every result already handed to its sinks is written."""
        with self._streams_lock:
            if stream_id not in self.sources and stream_id not in self._pending:
                raise TridentError(f"no stream {stream_id!r}; the streams are: {', '.join(sorted([*self.sources, *self._pending])) or 'none'}")
            if self._finished:
                return  # shutdown closed it with the others
            if not self._started:
                raise TridentError("the pipeline has not started; leave the source out of its list instead")
            change = _StreamChange(stream_id)
            self._changes.append(change)
            self._wakeup.set()
        if not change.done.wait(CHANGE_TIMEOUT_S):
            raise TridentError(f"stream {stream_id!r}: the pipeline did not let go of it within {CHANGE_TIMEOUT_S:.0f} s; it is removed at the next batch")
        if change.detached is None:
            return  # shutdown (or an earlier removal) closed it
        source, runners = change.detached
        for runner in runners:
            runner.close()  # drains what was handed to it, then flushes and closes the files
        source.join(JOIN_REMOVED_S)

    def _apply_changes(self, batcher: Batcher) -> None:
        """On the loop's thread, between batches: attach added streams, detach removed ones."""
        with self._streams_lock:
            changes, self._changes = self._changes, []
            for change in changes:
                sid = change.stream_id
                if change.source is not None:
                    self.sources[sid] = self._pending.pop(sid)
                    self.sink_runners[sid] = change.runners
                    if change.tracker is not None:
                        self.trackers[sid] = change.tracker
                    if change.camera_motion is not None:
                        self.camera_motion[sid] = change.camera_motion
                elif sid in self.sources:
                    source = self.sources.pop(sid)
                    self._stops.pop(sid).set()
                    source.queue.close()  # a producer blocked on a full queue sees the close and exits
                    change.detached = (source, self.sink_runners.pop(sid, []))
                    for table in (self.trackers, self.camera_motion, self.errors, self._failed, self._carry):
                        table.pop(sid, None)
                    self._inferring.discard(sid)  # a stream added again under this name starts afresh
                    self.metrics.forget(sid)
                    if self.analytics is not None:
                        self.analytics.detach(sid)
        for change in changes:
            if change.source is not None:
                change.source.start()
                batcher.add(change.stream_id, change.source.queue)
            else:
                batcher.remove(change.stream_id)
            change.done.set()

    def _settle_changes(self) -> None:
        """At shutdown: refuse from now on, close what was added but never attached, release removers."""
        with self._streams_lock:
            self._finished = True
            changes, self._changes = self._changes, []
        for change in changes:
            if change.source is not None:  # its outputs were opened on the caller's thread: close them
                for runner in change.runners:
                    runner.close()
                self._pending.pop(change.stream_id, None)
            change.done.set()  # a removal: the shutdown closes that stream with the others
