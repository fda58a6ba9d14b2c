"""The streaming runtime: sources -> batcher -> preprocess -> engine -> post-process -> trackers -> sinks.

Threads only for I/O: one per source (decode) and one per sink (encode,
write), plus one annotation stage per stream that draws each frame once for
all of that stream's picture sinks (video, images, window). The compute path
has two owners and no locks: one `trd:infer` thread letterboxes and runs the
engine (pipeline/inference_stage.py), one batch ahead of the calling thread,
which runs the batcher, the post-process, the trackers and the analytics and
hands results to the sinks in frame order. Decoding, drawing, encoding and
the post-process all overlap with inference, which is where the throughput
comes from on a small CPU. Each frame's stage times are measured once, into
`FrameResult.timings`, and the metrics get that same dict.

Shutdown: `stop()` (also wired to SIGINT/SIGTERM by `run`) makes the sources
stop reading; what has been decoded is still processed, then every sink
flushes and closes, so outputs stay valid after an interrupted run.

One stream's trouble never stops another: an exception in a stream's
post-process or tracker ends that stream (its source stops, its sinks flush
and close, the error is recorded for it like a source error) and the others
go on. A frame that follows a clock restart of its file (`discontinuity`, see
sources/clock.py) ends the stream's tracks first, keeping the ID counter, so
no identity is carried across the restart and no ID names two objects.

Streams may also come and go while it runs (`add_source`, `remove_source`,
used by `trident serve` with `serve=True`, which keeps the loop alive with no
stream at all). Those calls come from other threads: they prepare the stream
(source, tracker, output files) on the caller's thread and hand it to the loop
through a list under a lock; the loop attaches or detaches streams between two
batches, so the compute path keeps its single owner.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from pathlib import Path
from concurrent.futures import Future
from typing import Callable, Iterator, Sequence

import numpy as np

from engines.base import Engine
from engines.postprocess import PostprocessConfig, RawOutputs, postprocess
from pipeline.batcher import BatchConfig, Batcher, auto_max_batch
from pipeline.camera_motion import update_with_camera_motion
from pipeline.inference_stage import InferenceStage, Inferred
from pipeline.live_streams import LiveStreams, _StreamChange, _unique_ids
from pipeline.interval import IntervalCarry
from pipeline.metrics import Metrics
from pipeline.sinks.base import Sink, SinkRunner, attach_metrics
from pipeline.sources import Source, SourceConfig, make_source
from pipeline.sources.base import DecodedFrame, EndOfStream
from pipeline.contracts import FrameResult
from pipeline.errors import TridentError
from trackers.config import TrackerConfig

log = logging.getLogger("trident.pipeline")

SinkFactory = Callable[[Source], Sequence[Sink]]


@dataclasses.dataclass(eq=False)
class _Batch:
    """Frames taken together by the batcher, between submitting their inference and finishing them."""

    frames: list[DecodedFrame]
    todo: list[DecodedFrame]  # those the network sees (all of them unless infer_every > 1)
    future: "Future[Inferred] | None"
    ended: list[EndOfStream]  # streams that ended with this batch: closed after its frames
    owners: dict[str, Source | None]  # each stream's source when submitted: a stream re-added meanwhile is another
    picked_up: float  # wall time it left the batcher

    @property
    def done(self) -> bool:
        """Its inference has ended (or it needs none): finishing it now waits for nothing."""
        return self.future is None or self.future.done()


class Pipeline(LiveStreams):
    """Iterate over it for FrameResults; or call `drain()` to run to the end for the sinks only."""

    def __init__(
        self,
        sources: Sequence[SourceConfig],
        engine: Engine,
        tracker: TrackerConfig | None = TrackerConfig(),
        postprocess_cfg: PostprocessConfig = PostprocessConfig(),
        batch: BatchConfig = BatchConfig(),
        sinks: SinkFactory | None = None,
        metrics: Metrics | None = None,
        preprocess_device: str = "auto",
        serve: bool = False,
        postprocess_threads: int = 1,  # torch and BLAS threads while a CPU post-process runs (0 = the libraries' defaults)
        infer_every: int = 1,  # the network sees every K-th frame of a stream; the tracker predicts between (interval.py)
        analytics: "AnalyticsStage | None" = None,  # zones -> counts and events (pipeline/analytics/stage.py)
    ):
        if not sources and not serve:
            raise TridentError("no sources given; pass at least one --source (a file, rtsp:// URL, webcam index or GStreamer pipeline)")
        self.engine, self.postprocess_cfg = engine, postprocess_cfg
        lo, _, hi = engine.spec.batch_range
        wanted = batch.max_batch or auto_max_batch(int(getattr(engine, "concurrent_calls", 1) or 1))
        self.batch_cfg = BatchConfig(max_batch=max(lo, min(wanted, hi)), max_wait_ms=batch.max_wait_ms)
        self.metrics = metrics or Metrics()
        self.stop_event = threading.Event()
        self._wakeup = threading.Event()
        self.serve = serve
        self.postprocess_threads = postprocess_threads
        if infer_every < 1:
            raise TridentError(f"infer_every must be >= 1 (1 = every frame), got {infer_every}")
        if infer_every > 1 and tracker is None:
            raise TridentError("infer_every > 1 needs a tracker to predict the frames between inferences; turn tracking on or set infer_every: 1")
        self.infer_every = infer_every
        self._carry = collections.defaultdict(IntervalCarry)  # per stream: what the last inferred frame measured
        self._inferring: set[str] = set()  # streams with a frame sent to the engine (its tracks may be in flight)
        self._inference: InferenceStage | None = None
        self.sources: dict[str, Source] = {}
        self._stops: dict[str, threading.Event] = {}  # one per stream, so one stream can be stopped alone
        for cfg, sid in zip(sources, _unique_ids(sources)):
            self.sources[sid] = make_source(cfg, self._stream_stop(sid), stream_id=sid, wakeup=self._wakeup)
        self._tracker_cfg = tracker
        self._streams_lock = threading.Lock()  # guards the stream tables against readers on other threads
        self._changes: list[_StreamChange] = []  # handed to the loop by add_source / remove_source
        self._pending: dict[str, Source] = {}  # added, not attached yet: their names are taken
        self._finished = False
        self.trackers = {}
        if tracker is not None:
            from trackers.factory import make_tracker

            self.trackers = {sid: make_tracker(tracker) for sid in self.sources}
        self.camera_motion = {}  # one estimator per stream when tracker.cmc asks for it (OpenCV only then)
        if tracker is not None and tracker.cmc != "none":
            from pipeline.camera_motion import CameraMotion

            self.camera_motion = {sid: CameraMotion(tracker.cmc) for sid in self.sources}
        self._sink_factory = sinks
        self.sink_runners: dict[str, list[SinkRunner]] = {}
        self.errors: dict[str, str] = {}
        self._failed: dict[str, int] = {}  # stream -> frame at which the runtime failed it (post-process, tracker)
        self._device = self._pick_device(preprocess_device)
        self.metrics.add_probe(self._probe)
        self.analytics = analytics
        if analytics is not None:
            analytics.bind(self)  # each stream's zones, source states -> events, counts -> metrics
        self._started = False

    def _pick_device(self, wanted: str) -> str:
        """Letterbox on the GPU when the engine runs there: only the uint8 frames cross the bus."""
        if wanted != "auto":
            return wanted
        return "cuda" if str(getattr(self.engine, "device", "cpu")).startswith("cuda") else "cpu"

    def _probe(self, metrics: Metrics) -> None:
        with self._streams_lock:  # streams come and go on the loop's thread; metrics are read on others
            items = list(self.sources.items())
        for sid, src in items:
            c = metrics.stream(sid)
            c.dropped, c.reconnects, c.stalls, c.state = src.queue.dropped, src.stats.reconnects, src.stats.stalls, src.state.value
            c.error = self.errors.get(sid) if sid in self._failed else src.error
            c.decoded, c.decode_errors, c.discontinuities = src.stats.frames, src.stats.decode_errors, src.stats.discontinuities
            c.declared, c.missing = src.stats.declared_frames, src.stats.missing_frames

    @property
    def total_frames(self) -> int | None:
        totals = [s.total_frames for s in self.sources.values()]
        if any(t is None for t in totals):
            return None
        return sum(min(t, s.cfg.max_frames) if s.cfg.max_frames else t for t, s in zip(totals, self.sources.values()))

    def stop(self) -> None:
        self.stop_event.set()
        for event in list(self._stops.values()):
            event.set()
        self._wakeup.set()

    def __iter__(self) -> Iterator[FrameResult]:
        if self._started:
            raise TridentError("a Pipeline runs once; make a new one to run again")
        self._started = True
        try:
            # every stream's sinks exist before any source starts, and inside the `try`: a sink that
            # cannot open (no display, unwritable file) ends the run with the others closed and joined
            for sid, src in self.sources.items():
                self.sink_runners[sid] = self._make_runners(src)
            self._warm_up()
            self._budget_start()
            self.metrics.started = time.monotonic()  # the run's clock: from the sources' start, set-up excluded
            for src in self.sources.values():
                src.start()
            batcher = Batcher({sid: s.queue for sid, s in self.sources.items()}, self.batch_cfg, self._wakeup, keep_open=self.serve)
            self._inference = InferenceStage(self.engine, self._device)
            inflight: collections.deque[_Batch] = collections.deque()  # submitted, not finished; oldest first
            while batcher.active:
                if self._changes:
                    self._apply_changes(batcher)
                # with batches in flight, take only frames already there: their results are not held back
                frames, ended = batcher.next_batch(self.stop_event, block=not inflight)
                if frames or ended:
                    inflight.append(self._submit(frames, ended))
                # finish the oldest (while the engine runs the newer ones) once the engine is full, or
                # when no frame came (a live camera between frames), or as soon as it is done while a
                # newer one keeps the engine busy
                while inflight and (len(inflight) > self._ahead() or not (frames or ended) or (inflight[0].done and len(inflight) > 1)):
                    yield from self._finish(inflight.popleft())
                if not frames and not ended and not inflight and self.stop_event.is_set() and all(not s.is_alive() for s in self.sources.values()):
                    break
            while inflight:
                yield from self._finish(inflight.popleft())
        finally:
            self._shutdown()

    def _ahead(self) -> int:
        """Batches submitted before the oldest is finished: one per engine worker, and for files only
        one more, queued, so a worker that finishes while the caller post-processes finds its next
        batch waiting instead of idling (vtest.avi on the 2-core Zen 5: 1.90-1.92 -> 1.94-1.95 cores
        busy, 6 runs A/B). Not for cameras: a queued batch is a batch more of latency."""
        return self._inference.workers + (0 if any(s.live for s in self.sources.values()) else 1)

    def _make_runners(self, src: Source) -> list[SinkRunner]:
        """The stream's sinks, each on its thread, their writes timed into the metrics."""
        runners = [SinkRunner(s) for s in (self._sink_factory(src) if self._sink_factory else [])]
        for runner in runners:
            attach_metrics(runner, self.metrics)
        return runners

    def _warm_up(self) -> None:
        """Import PyAV, and import and touch the GPU post-process's libraries, before any source starts.

        torch and torchvision.ops take 2-4 s to import on the 2-core EPYC; lazily, at the first
        frame, that stall was counted in a short file's FPS and, on a camera, left its first
        frames queued (or dropped) for seconds before the first result. Outputs on the host (every
        CPU engine) are post-processed with numpy and OpenCV: nothing to import for them. PyAV
        (FFmpeg's libraries; files, network cameras and the MP4 output) took 40-110 ms on the
        first source's thread, after the run's clock had started: a third of a 1-frame run."""
        import av  # noqa: F401

        if self._pick_device("auto") != "cuda" or not (self.engine.spec.output_names and "boxes" in self.engine.spec.output_names):
            return
        import torch
        from torchvision.ops import batched_nms, roi_align

        with torch.inference_mode():
            boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [1.0, 1.0, 9.0, 9.0]])
            batched_nms(boxes, torch.tensor([0.9, 0.8]), torch.zeros(2, dtype=torch.int64), 0.5)
            roi_align(torch.zeros(1, 1, 8, 8), torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]]), (2, 2), 1.0, 1, True)

    def _budget_start(self) -> None:
        """Thread CPU sampling for the budget table, and one BLAS thread (and torch thread, where a torch
        engine loaded it) for the CPU post-process.

        The libraries' default of one thread per core made the post-process fight the engine's
        and the decoder's threads for the same two cores: its p50 swung from 6 to 185 ms under
        load, against a steady 6-7 ms on one thread (its ops are small; they do not scale)."""
        from pipeline.cpu_budget import ThreadSampler, limit_postprocess_threads

        self._sampler = ThreadSampler().start()
        self.metrics.thread_cpu, self.metrics.sample_threads = self._sampler.groups, self._sampler.sample
        for src in self.sources.values():
            src.before_exit = self._sampler.sample  # a short file's decoder may end between two samples
        self._restore_threads = None
        if self._device == "cpu" and self.postprocess_threads:
            self._restore_threads = limit_postprocess_threads(self.postprocess_threads)

    def _budget_stop(self) -> None:
        sampler = getattr(self, "_sampler", None)
        if sampler is not None:
            sampler.close()  # a last sample: the threads that end now still count
        if getattr(self, "_restore_threads", None):
            self._restore_threads()
            self._restore_threads = None

    def _submit(self, frames: list[DecodedFrame], ended: list[EndOfStream]) -> "_Batch":
        """Pick the frames the network must see (infer_every) and start their inference."""
        frames = [f for f in frames if f.stream_id not in self._failed]  # a failed stream's queued frames go
        todo, starting = [], set()
        for f in frames:
            if self._needs_inference(f, starting):
                todo.append(f)
                starting.add(f.stream_id)  # its later frames in this batch are predicted from this one
        self._inferring.update(starting)
        owners = {f.stream_id: self.sources.get(f.stream_id) for f in frames}
        future = self._inference.submit([f.image for f in todo]) if todo else None
        return _Batch(frames, todo, future, ended, owners, time.time())

    def _finish(self, batch: "_Batch") -> Iterator[FrameResult]:
        """Post-process, track, analyse and hand to the sinks one batch, in frame order; then its ends."""
        yield from self._process(batch)
        # after the batch: a stream's last frames may share a batch with its end marker
        for eos in batch.ended:
            if eos.stream_id not in self._failed:  # a failed stream was closed, with its error, already
                self._ended(eos)

    def _process(self, batch: "_Batch") -> Iterator[FrameResult]:
        # a stream removed (or failed) while its frames were in the engine: they go
        alive = lambda f: f.stream_id not in self._failed and self.sources.get(f.stream_id) is batch.owners[f.stream_id]  # noqa: E731
        frames, todo = [f for f in batch.frames if alive(f)], batch.todo
        inferred: dict[int, tuple | None] = {}
        batch_stages: dict[str, float] = {}
        if batch.future is not None:
            done = batch.future.result()  # an engine error ends the run here, as it always did
            t2, c2 = time.perf_counter(), time.thread_time()
            outputs = self._postprocess(done.raw, todo, done.letterboxes)
            t3, c3 = time.perf_counter(), time.thread_time()
            n = len(todo)
            inferred = {id(f): out for f, out in zip(todo, outputs)}
            batch_stages = {**done.stages, "postprocess": (t3 - t2) / n}
            # CPU of the two threads: the engine's and torch's worker threads are in the thread budget
            for name, cpu in (*done.cpu.items(), ("postprocess", c3 - c2)):
                self.metrics.cpu(name, cpu, n)
        for frame in frames:  # capture -> picked for a batch: the source queue and the batcher's wait
            self.metrics.stage("queue", max(0.0, batch.picked_up - frame.wall_time))
            self.metrics.cpu("decode", frame.decode_cpu_s)
        for frame in frames:
            was_inferred = id(frame) in inferred
            output = inferred.get(id(frame))
            if (was_inferred and output is None) or frame.index >= self._failed.get(frame.stream_id, frame.index + 1):
                continue  # failed at this frame or before it
            ts, cs = time.perf_counter(), time.thread_time()
            try:
                if was_inferred:
                    dets, sem = output
                    tracks = self._track(frame, dets)
                    if self.infer_every > 1:
                        self._carry[frame.stream_id].remember(dets, tracks, sem)
                else:
                    dets, tracks, sem = self._predict(frame)
            except Exception as exc:
                self._fail(frame, "tracking", exc)
                continue
            te = time.perf_counter()
            self.metrics.cpu("track", time.thread_time() - cs)
            events, counts, analysed = (), None, {}
            if self.analytics is not None:  # the one analytics hook: pure, per stream, like the tracker
                try:
                    events, counts = self.analytics.process(frame, tracks)
                except Exception as exc:
                    self._fail(frame, "analytics", exc)
                    continue
                analysed = {"analytics": time.perf_counter() - te}
            ta = time.perf_counter()
            # one dict feeds both the result and the metrics, so the two cannot disagree
            timings = {"decode": frame.decode_s, **(batch_stages if was_inferred else {}), "track": te - ts, **analysed}
            for name, seconds in timings.items():
                self.metrics.stage(name, seconds)
            result = FrameResult(frame, dets, sem, tracks, timings, events, counts, inferred=was_inferred)
            for runner in self.sink_runners.get(frame.stream_id, []):
                runner.submit(result)
            self.metrics.stage("sink", time.perf_counter() - ta)
            self.metrics.frame_done(frame.stream_id, frame.wall_time)
            yield result
        self._close_failed()

    def _postprocess(self, raw: RawOutputs, frames: list[DecodedFrame], letterboxes: list) -> list:
        """The batch's (Detections, SemanticMap) per frame; if the batch fails, each frame alone, so a
        failure ends only the stream it belongs to (None in its place)."""
        try:
            return postprocess(raw, self.engine.spec, letterboxes, self.postprocess_cfg)
        except Exception as batch_exc:
            if len(frames) == 1:
                self._fail(frames[0], "post-processing", batch_exc)
                return [None]
        outputs: list = []
        for i, (frame, lb) in enumerate(zip(frames, letterboxes)):
            if frame.stream_id in self._failed:  # failed earlier in this batch: its later frames go
                outputs.append(None)
                continue
            one = dataclasses.replace(raw, **{f.name: getattr(raw, f.name)[i : i + 1] for f in dataclasses.fields(raw) if getattr(raw, f.name) is not None})
            try:
                outputs.extend(postprocess(one, self.engine.spec, [lb], self.postprocess_cfg))
            except Exception as exc:
                self._fail(frame, "post-processing", exc)
                outputs.append(None)
        return outputs

    def _needs_inference(self, frame: DecodedFrame, inferring: set[str]) -> bool:
        """Every K-th frame of a stream, and whatever the tracker cannot predict: a stream's first
        frame (unless an earlier one of this batch is inferred), the first after a clock restart."""
        if self.infer_every == 1:
            return True
        ready = self._carry[frame.stream_id].ready or frame.stream_id in inferring or frame.stream_id in self._inferring
        return frame.index % self.infer_every == 0 or getattr(frame, "discontinuity", False) or not ready

    def _predict(self, frame: DecodedFrame):
        """A frame the network skips: the tracker predicts, the last inferred frame's measurements follow."""
        tracker, motion = self.trackers[frame.stream_id], self.camera_motion.get(frame.stream_id)
        H = motion.step(frame.image, np.zeros((0, 4), np.float32)) if motion is not None else None
        tracks = tracker.predict(frame.pts, camera_motion=H)
        return self._carry[frame.stream_id].carry(tracks, (frame.height, frame.width))

    def _track(self, frame: DecodedFrame, dets):
        tracker = self.trackers.get(frame.stream_id)
        if tracker is None:
            return None
        if getattr(frame, "discontinuity", False):
            tracker.reset(keep_ids=True)  # the file's clock restarted: its tracks end, IDs go on
        return update_with_camera_motion(tracker, dets, frame, self.camera_motion.get(frame.stream_id))

    def _fail(self, frame: DecodedFrame, stage: str, exc: Exception) -> None:
        """End one stream after a failure in the runtime, keep the others going."""
        sid = frame.stream_id
        if sid in self._failed:
            return
        detail = str(exc) if isinstance(exc, TridentError) else f"{type(exc).__name__}: {exc}"
        first_line = detail.strip().splitlines()[0] if detail.strip() else type(exc).__name__
        kept = f"its results for frames 0-{frame.index - 1} are kept" if frame.index else "it had no results yet"
        message = f"{stage} failed at frame {frame.index} ({first_line}); this stream stopped there, the others went on; {kept}"
        if isinstance(exc, TridentError):
            log.error("%s: %s", sid, message)
        else:  # a bug: its traceback belongs in the log, but it ends this stream only
            log.exception("%s: %s", sid, message)
        self._failed[sid] = frame.index
        self.errors[sid] = message
        self.sources[sid].queue.close()  # its source stops at its next frame; frames already queued are dropped

    def _close_failed(self) -> None:
        """Flush and close the outputs of streams failed in the batch just done (its earlier frames are in)."""
        for sid in self._failed:
            for runner in self.sink_runners.get(sid, []):
                if not runner.queue.closed:
                    runner.close()

    def _ended(self, eos: EndOfStream) -> None:
        if eos.error:  # the source logged it when it happened: once on stderr, kept here for the summary
            self.errors[eos.stream_id] = eos.error
        for runner in self.sink_runners.get(eos.stream_id, []):
            runner.close()

    def _shutdown(self) -> None:
        self.stop()
        if self._inference is not None:
            self._inference.close()
        self._settle_changes()
        for src in self.sources.values():
            src.queue.close()  # a producer blocked on a full queue sees the close and exits
        for src in self.sources.values():
            src.join(timeout=15)
            if src.is_alive():
                log.error("%s: source thread did not stop within 15 s", src.stream_id)
        for runners in self.sink_runners.values():
            for runner in runners:
                runner.close()
        for sid, runners in self.sink_runners.items():
            for runner in runners:
                for name, error in runner.errors().items():
                    self.errors.setdefault(f"{sid}:{name}", error)
        if self.analytics is not None:
            self.analytics.close()  # after the sinks (clips are complete): event sinks deliver what is queued
        self._budget_stop()

    def drain(self, on_result: Callable[[FrameResult], None] | None = None) -> int:
        """Run to the end; returns the number of frames processed."""
        n = 0
        for result in self:
            n += 1
            if on_result:
                on_result(result)
        return n


def stream(
    source: str | SourceConfig | Sequence[str | SourceConfig],
    engine: Engine | str | Path,
    tracker: TrackerConfig | None = TrackerConfig(),
    zones=None,
    events: Sequence = (),
    **kwargs,
) -> Pipeline:
    """`for result in stream("video.mp4", "model.onnx"): ...` - the iterator form of the pipeline.

    `zones`: a zones file, a `Zones`, or {stream_id: either}; `events`: `--events` URIs or EventSinks.
    Each result then carries its frame's `events` and the stream's `counts`."""
    from engines.loader import load_engine

    items = [source] if isinstance(source, (str, SourceConfig)) else list(source)
    configs = [s if isinstance(s, SourceConfig) else SourceConfig(uri=str(s)) for s in items]
    if not isinstance(engine, Engine):
        engine = load_engine(engine)
    if zones is not None or events:
        from pipeline.analytics.stage import AnalyticsStage

        kwargs["analytics"] = AnalyticsStage.build(zones, events, engine.spec.class_names)
    return Pipeline(configs, engine, tracker, **kwargs)
