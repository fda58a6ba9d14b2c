"""`pipeline.run(config)`: sources -> engine -> trackers -> output files, with metrics and clean shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import RunConfig
from pipeline.metrics import Metrics, PrometheusServer
from pipeline.errors import TridentError

log = logging.getLogger("trident.run")

LIVE_VIDEO_FPS = 15.0


@dataclass
class RunSummary:
    frames: int
    out: Path
    outputs: dict[str, list[str]]
    errors: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


def _check_out_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise TridentError(f"cannot write to --out {path}: {exc.strerror or exc}; choose a writable directory") from None


def _check_metrics_json(path: str) -> None:
    """--metrics-json is written at the end: find out now, not after the whole run, that it cannot be."""
    target = Path(path)
    if target.is_dir():
        raise TridentError(f"--metrics-json {target} is a directory; pass a file name such as {target / 'metrics.json'}")
    if not target.parent.is_dir():
        raise TridentError(f"--metrics-json {target}: the folder {target.parent} does not exist; create it or choose another path")
    try:
        existed = target.exists()
        open(target, "a", encoding="utf-8").close()
        if not existed:
            target.unlink()
    except OSError as exc:
        raise TridentError(f"--metrics-json {target} cannot be written: {exc.strerror or exc}; choose a writable path") from None


def _check_outputs_free(cfg: RunConfig, out: Path, stream_ids: list[str]) -> None:
    """An output file whose name is taken by a directory would fail mid-run; refuse it before anything starts."""
    o = cfg.output
    suffixes = [s for s, on in ((".mp4", o.video), (".mot.txt", o.mot and cfg.tracking), (".jsonl", o.jsonl)) if on]
    for sid in stream_ids:
        for suffix in suffixes:
            path = out / f"{sid}{suffix}"
            if path.is_dir():
                raise TridentError(f"output {path} is an existing directory; remove it or choose another --out")


def _sink_factory(cfg: RunConfig, out: Path, class_names: tuple[str, ...], sem_names: tuple[str, ...], outputs: dict[str, list[str]], extra=None, analytics=None):
    """`extra(source) -> (sinks, picture_sinks)`: more sinks per stream (`trident serve`'s live preview
    is a picture sink, drawn by the same annotation stage as the MP4). `analytics`: the run's
    AnalyticsStage, whose zones are drawn on the pictures and whose events start clips."""
    from pipeline.draw import Annotator
    from pipeline.sinks import AnnotationStage, ImageSink, JsonlSink, MotSink, VideoSink, WindowSink

    def make(source) -> list:
        sinks: list = []
        pictures: list = []  # drawn once per frame by one AnnotationStage, shared by these
        try:
            return _make(source, sinks, pictures)
        except BaseException:
            for sink in sinks + pictures:  # a later sink failed to open: release the files already open
                sink.close()
            raise

    def _make(source, sinks: list, pictures: list) -> list:
        sid, o = source.stream_id, cfg.output
        paths: list[str] = []
        if o.video:
            fps = o.video_fps or (lambda: source.fps or LIVE_VIDEO_FPS)
            pictures.append(VideoSink(out / f"{sid}.mp4", fps=fps, crf=o.video_crf, preset=o.video_preset))
            paths.append(str(pictures[-1].path))
        if o.mot and cfg.tracking:
            sinks.append(MotSink(out / f"{sid}.mot.txt"))
            paths.append(str(sinks[-1].path))
        if o.jsonl:
            sinks.append(JsonlSink(out / f"{sid}.jsonl", class_names, masks=o.jsonl_masks))
            paths.append(str(sinks[-1].path))
        if o.images_every:
            pictures.append(ImageSink(out / f"{sid}_frames", every=o.images_every))
            paths.append(str(pictures[-1].folder))
        if o.show:
            pictures.append(WindowSink(sid))
            paths.append(sid)
        if extra is not None:
            more_sinks, more_pictures = extra(source)
            sinks.extend(more_sinks)
            pictures.extend(more_pictures)
        zones = analytics.streams[sid].zones if analytics is not None and sid in analytics.streams else None
        if cfg.clips.dir and zones:
            from pipeline.sinks.clips import ClipRecorder

            recorder = ClipRecorder(sid, cfg.clips, fallback_fps=source.fps or LIVE_VIDEO_FPS)
            (pictures if cfg.clips.annotated else sinks).append(recorder)  # annotated: fed the drawn pictures
            paths.append(f"{cfg.clips.dir}/{sid}-*.mp4 (clips)")
        if pictures:
            annotator = Annotator(class_names, sem_names, cfg.draw)
            if zones:
                from pipeline.analytics.overlay import zone_annotator

                annotator = zone_annotator(annotator, zones)  # lines, polygons and their counts on the picture
            sinks.append(AnnotationStage(annotator, pictures, name=f"annotate:{sid}"))
        outputs[sid] = paths
        return sinks

    return make


def _prepare(cfg: RunConfig, engine: Any):
    """Everything that can refuse the run, before any source or sink starts."""
    out = Path(cfg.output.dir)
    _check_out_dir(out)
    if cfg.metrics_json:
        _check_metrics_json(cfg.metrics_json)
    metrics = Metrics()
    outputs: dict[str, list[str]] = {}
    analytics = make_analytics(cfg, engine.spec.class_names)
    try:
        return _prepare_pipeline(cfg, engine, out, metrics, outputs, analytics)
    except BaseException:
        if analytics is not None:
            analytics.close(1.0)  # refused before the first frame: its event sinks stop
        raise


def make_analytics(cfg: RunConfig, class_names: tuple[str, ...]):
    """Zones, event sinks and clips (an AnalyticsStage), or None when the run has none; refusals before the run."""
    has_zones = bool(cfg.zones) or any(s.zones for s in cfg.sources)
    if not (has_zones or cfg.events or cfg.clips.dir):
        return None
    if has_zones and not cfg.tracking:
        raise TridentError("--zones counts tracks, but --tracker none turns tracking off; choose a tracker (e.g. --tracker bytetrack)")
    if cfg.clips.dir:
        if not has_zones:
            raise TridentError("--record-clips records around zone events; give --zones zones.yaml (or a source's zones: file)")
        try:
            Path(cfg.clips.dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TridentError(f"--record-clips {cfg.clips.dir}: {exc.strerror or exc}; choose a writable directory") from None
    from pipeline.analytics.stage import AnalyticsStage

    return AnalyticsStage.build(cfg.zones or None, cfg.events, class_names, cfg.clips, cfg.event_delivery)


def _prepare_pipeline(cfg: RunConfig, engine: Any, out: Path, metrics: Metrics, outputs: dict[str, list[str]], analytics: Any):
    from pipeline.runtime import Pipeline

    spec = engine.spec
    pipe = Pipeline(
        cfg.sources,
        engine,
        cfg.tracker if cfg.tracking else None,
        cfg.postprocess,
        cfg.batch,
        sinks=_sink_factory(cfg, out, spec.class_names, spec.sem_class_names, outputs, analytics=analytics),
        metrics=metrics,
        preprocess_device="cpu" if cfg.preprocess_device == "cpu" else cfg.preprocess_device,
        infer_every=cfg.infer_every,
        analytics=analytics,
    )
    _check_outputs_free(cfg, out, list(pipe.sources))
    prom = None
    if cfg.prometheus_port:
        try:
            prom = PrometheusServer(metrics, cfg.prometheus_port)
        except OSError as exc:
            raise TridentError(
                f"--prometheus-port {cfg.prometheus_port} cannot be served on 127.0.0.1 ({exc.strerror or exc}); "
                "another process holds it - pick another port, or 0 to turn it off"
            ) from None
    return out, metrics, outputs, pipe, prom


def run(cfg: RunConfig, engine: Any = None, progress: bool | None = None) -> RunSummary:
    """Run the configured sources to the end (files) or until SIGINT/SIGTERM (live)."""
    from tqdm import tqdm

    if not cfg.sources:
        raise TridentError("no sources given; pass --source (a video file, rtsp:// URL, webcam index or GStreamer pipeline)")
    if engine is None:
        if not cfg.engine.model:
            raise TridentError("no model given; pass --model model.onnx (see `trident export`) or run `trident demo`")
        from pipeline.engine_choice import load_run_engine

        engine = load_run_engine(cfg.engine.model, cfg.engine.device, cfg.engine.threads, cfg.engine.concurrent)  # threads: see engine_choice
    try:
        out, metrics, outputs, pipe, prom = _prepare(cfg, engine)
    except BaseException:
        engine.close()  # refused before the first frame: nothing else was started
        raise
    interrupted = threading.Event()
    previous = {}

    def on_signal(signum, _frame):
        interrupted.set()
        log.warning("signal %d: stopping after the frames in flight; outputs will be flushed", signum)
        pipe.stop()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    show_bar = cfg.progress if progress is None else progress
    bar = tqdm(total=None, unit="frame", desc="trident", disable=not show_bar)
    frames = 0
    try:
        for _ in pipe:
            frames += 1
            if bar.total is None and pipe.total_frames:
                bar.total = pipe.total_frames
                bar.refresh()
            bar.update()
    finally:
        bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if prom is not None:
            prom.close()
        engine.close()
    summary = metrics.summary()
    if cfg.metrics_json:
        metrics.write_json(cfg.metrics_json)
    print(metrics.format_table())  # the latency table is the run's result, with or without a progress bar
    return RunSummary(frames, out, outputs, dict(pipe.errors), summary, interrupted.is_set())
