"""The pipeline as a long-running service: one Pipeline on its own thread, cameras added and removed by name.

`CameraService` owns the engine, the `Pipeline` (started with `serve=True`,
so it runs with no camera at all and takes cameras while it runs), and per
camera the live `PreviewSink` the HTTP API reads. Everything here is called
from uvicorn's threads; the pipeline's own loop is reached only through
`Pipeline.add_source` / `remove_source`, which hand their work to it.

Outputs: without `out` a camera writes no files (a service runs for weeks:
an MP4 per camera would fill the disk), only the preview and its events.
With `out` each camera writes what the run config's `output` section says,
into a new folder `out/<name>/<UTC time it was added>/` each time it is
added, so a restart or a camera re-added under the same name never
overwrites an earlier recording.

HTTP status of a refusal: each error class carries it (the API maps them),
the message is the same one line the CLI would print.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.config import RunConfig
from pipeline.errors import TridentError
from pipeline.metrics import Metrics
from pipeline.serve.preview import PreviewSink
from pipeline.sources import SourceConfig, classify, redact
from pipeline.sources.uri import safe_file_stem

log = logging.getLogger("trident.serve")

MAX_NAME = 64
PIPELINE_JOIN_S = 60.0  # shutdown: every stream's sinks flush and close inside this


class ServiceError(TridentError):
    status = 422  # the request is understood but cannot be done as asked


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Unavailable(ServiceError):
    status = 503


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    out: str = ""  # "" = no files per camera (preview and events only)
    preview_fps: float = 5.0  # preview pictures drawn and encoded per camera per second, at most
    preview_quality: int = 80  # JPEG quality of the preview and the snapshots
    events_kept: int = 500  # recent events GET /events returns


class CameraService:
    def __init__(self, cfg: RunConfig, engine: Any, opts: ServeOptions = ServeOptions()):
        from pipeline.runtime import Pipeline

        PreviewSink("check", opts.preview_fps, opts.preview_quality)  # bad options refuse the start, not the first camera
        self.cfg, self.engine, self.opts = cfg, engine, opts
        self.metrics = Metrics()
        self.previews: dict[str, PreviewSink] = {}
        self.outputs: dict[str, list[str]] = {}
        self._uris: dict[str, str] = {}  # name -> its address, redacted (what the API shows)
        self._changing = threading.Lock()  # one add or remove at a time: names are checked and taken atomically
        self.closing = threading.Event()  # set first at shutdown: live HTTP responses (MJPEG, SSE) end
        self.failure: str | None = None
        self.analytics = _analytics(cfg, engine.spec.class_names)  # zones, event sinks, clips; stream down/up events
        self.events = _recent_events(opts.events_kept)  # GET /events reads these: one more sink on the bus
        self.analytics.bus.add(self.events)
        self.pipe = Pipeline(
            [],
            engine,
            cfg.tracker if cfg.tracking else None,
            cfg.postprocess,
            cfg.batch,
            sinks=self._sinks,
            metrics=self.metrics,
            preprocess_device=cfg.preprocess_device,
            serve=True,
            analytics=self.analytics,
        )
        self._thread = threading.Thread(target=self._loop, name="pipeline", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "CameraService":
        """Start the loop, then the run config's own sources (a source that cannot start refuses the start)."""
        self._warm_up()
        self._thread.start()
        try:
            for source in self.cfg.sources:
                self.add(source, trusted=True)
        except BaseException:
            self.close()
            raise
        return self

    def _warm_up(self) -> None:
        """One blank frame through the engine and the post-process before the first camera: their first
        call (session allocations, the post-process's lazy imports) takes seconds, which would
        otherwise be the first camera's first frame, stalled behind a camera that is already streaming."""
        import numpy as np

        from engines.postprocess import postprocess
        from engines.preprocess import letterbox_batch

        spec = self.engine.spec
        batch, letterboxes = letterbox_batch([np.zeros((*spec.input_hw, 3), np.uint8)], spec.input_hw, "cpu")
        postprocess(self.engine.infer(batch), spec, letterboxes, self.cfg.postprocess)

    def _loop(self) -> None:
        try:
            for _ in self.pipe:
                pass
        except Exception as exc:  # the engine or the runtime broke: the API says so instead of hanging
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("the pipeline stopped")

    def begin_close(self) -> None:
        """First step of shutdown, safe from a signal handler: live responses end, sources stop reading."""
        self.closing.set()
        self.pipe.stop()

    def close(self) -> None:
        """Stop every camera, flush and close every output, release the engine."""
        self.begin_close()
        if self._thread.ident is not None:
            self._thread.join(PIPELINE_JOIN_S)
            if self._thread.is_alive():
                log.error("the pipeline did not stop within %.0f s", PIPELINE_JOIN_S)
        self.analytics.close(1.0)  # the pipeline's shutdown closed it already, unless it never ran
        self.engine.close()

    # --- cameras -----------------------------------------------------------------------------------
    def add(self, source: SourceConfig, zones: Any = None, trusted: bool = False) -> dict[str, Any]:
        """Add one camera; returns its entry as GET /streams shows it. `zones`: a mapping like a zones
        file, for this camera (else its config's `zones:` file, else the config's `zones`).

        `trusted` (the run config): any source kind, zones files. From the API (not trusted) a
        GStreamer pipeline string is refused (it can read and write any file the service may), and
        so is a zones path (its error messages would tell the caller about files on the server)."""
        self._check_running()
        try:
            kind = classify(source.uri) if source.kind == "auto" else source.kind
        except TridentError as exc:
            raise ServiceError(str(exc)) from None
        if kind == "gstreamer" and not trusted:
            raise ServiceError(
                "a GStreamer pipeline can read and write files on the server, so the API does not take one; "
                "put it in the --config of trident serve, or give an rtsp:// (or http://, file) address"
            )
        if not trusted and source.zones:
            raise ServiceError("the API takes a camera's zones inline, as JSON: \"zones\": {\"lines\": [...], \"polygons\": [...]}")
        parsed = self._zones(zones, source.stream_id or redact(source.uri)) if zones is not None else None
        with self._changing:
            if source.stream_id or not trusted:
                self._check_name(source.stream_id)
            try:
                sid = self.pipe.add_source(source, zones=parsed)
            except TridentError as exc:
                raise ServiceError(str(exc)) from None
            self._uris[sid] = redact(source.uri)
        log.info("%s: added (%s)", sid, self._uris[sid])
        return self.stream(sid)

    def remove(self, name: str) -> dict[str, Any]:
        with self._changing:
            if name not in self._uris:
                raise NotFound(f"no camera {name!r}; GET /streams lists them")
            entry = self.stream(name)
            self.pipe.remove_source(name)  # returns once its outputs are flushed and closed
            self._uris.pop(name)
            self.previews.pop(name, None)
            entry["outputs"] = self.outputs.pop(name, [])
        entry["state"] = "removed"
        log.info("%s: removed", name)
        return entry

    def preview(self, name: str) -> PreviewSink:
        preview = self.previews.get(name)
        if preview is None or name not in self._uris:
            raise NotFound(f"no camera {name!r}; GET /streams lists them")
        return preview

    def names(self) -> list[str]:
        return list(self._uris)

    def streams(self) -> list[dict[str, Any]]:
        summary = self.metrics.summary()["streams"]
        return [self._entry(sid, uri, summary.get(sid, {})) for sid, uri in list(self._uris.items())]

    def stream(self, name: str) -> dict[str, Any]:
        if name not in self._uris:
            raise NotFound(f"no camera {name!r}; GET /streams lists them")
        return self._entry(name, self._uris[name], self.metrics.summary()["streams"].get(name, {}))

    def _entry(self, sid: str, uri: str, st: dict[str, Any]) -> dict[str, Any]:
        preview = self.previews.get(sid)
        latency = (st.get("latency") or {}).get("p50_ms")
        error = st.get("error")
        return {
            "name": sid,
            "uri": uri,
            "state": st.get("state") or "connecting",  # not attached by the loop yet
            "fps": st.get("fps", 0.0),
            "frames": st.get("frames", 0),
            "dropped": st.get("dropped", 0),
            "reconnects": st.get("reconnects", 0),
            "stalls": st.get("stalls", 0),
            "decode_errors": st.get("decode_errors", 0),
            "latency_p50_ms": None if latency is None or latency != latency else round(latency, 1),
            "error": redact(error) if error else None,
            "counts": st.get("counts") or self.analytics.counts(sid) or {},  # before its first frame: the zeros
            "outputs": list(self.outputs.get(sid, [])),
            "preview": {"viewers": preview.viewers if preview else 0, "jpegs": preview.encoded if preview else 0},
        }

    def prometheus_text(self) -> str:
        lines = [self.metrics.prometheus_text().rstrip("\n"), "# TYPE trident_preview_viewers gauge"]
        previews = list(self.previews.items())
        lines += [f'trident_preview_viewers{{stream="{sid}"}} {p.viewers}' for sid, p in previews]
        lines.append("# TYPE trident_preview_jpegs_total counter")
        lines += [f'trident_preview_jpegs_total{{stream="{sid}"}} {p.encoded}' for sid, p in previews]
        return "\n".join(lines) + "\n"

    # --- checks and the per-camera sinks -----------------------------------------------------------
    def _check_running(self) -> None:
        if self.failure:
            raise Unavailable(f"the pipeline stopped ({self.failure}); restart trident serve")
        if self.closing.is_set():
            raise Unavailable("trident serve is shutting down")

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ServiceError("a camera needs a name: {\"name\": \"cam1\", \"uri\": \"rtsp://...\"}")
        if len(name) > MAX_NAME or safe_file_stem(name) != name:
            raise ServiceError(
                f"camera name {name[:MAX_NAME + 8]!r} is not usable: it names the camera's URLs and files; "
                f"use up to {MAX_NAME} letters, digits, '.', '-' or '_' (e.g. cam1, door-2)"
            )
        taken = next((n for n in self._uris if n.casefold() == name.casefold()), None)
        if taken is not None:
            raise Conflict(f"a camera named {taken!r} exists already; DELETE /streams/{taken} first or choose another name")

    def _zones(self, zones: Any, where: str) -> Any:
        """Zones of a new camera (a mapping like a zones file), checked before it starts."""
        from pipeline.analytics.zones import zones_from_data

        if not isinstance(zones, dict):
            raise ServiceError(f"zones of {where} must be a JSON object with \"lines\" and/or \"polygons\", got {type(zones).__name__}")
        if not self.cfg.tracking:
            raise ServiceError(f"zones of {where} count tracks, but this service runs with --tracker none; restart it with a tracker")
        try:
            parsed = zones_from_data(zones)
            parsed.check_classes(tuple(self.engine.spec.class_names))
        except TridentError as exc:
            raise ServiceError(f"camera {where}: {exc}") from None
        return parsed

    def _sinks(self, source: Any) -> list:
        """The camera's sinks (called by the pipeline on the thread that adds it): the run config's
        outputs when `out` is set, and always the live preview, drawn by the same annotation stage."""
        from pipeline.app import _sink_factory

        sid = source.stream_id
        preview = PreviewSink(sid, self.opts.preview_fps, self.opts.preview_quality)
        cfg, out = self.cfg, Path(self.opts.out) if self.opts.out else Path(".")
        if self.opts.out:
            out = _new_folder(out / sid)
        else:
            cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, video=False, mot=False, jsonl=False, images_every=0))
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, show=False))  # a service has no screen
        spec = self.engine.spec
        make = _sink_factory(cfg, out, spec.class_names, spec.sem_class_names, self.outputs, extra=lambda src: ([], [preview]), analytics=self.analytics)
        sinks = make(source)
        self.previews[sid] = preview
        return sinks


def _new_folder(parent: Path) -> Path:
    """parent/<UTC time>, with -2, -3... when a camera is re-added within the same second."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder, n = parent / stamp, 1
    while folder.exists():
        n += 1
        folder = parent / f"{stamp}-{n}"
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise ServiceError(f"cannot create the output folder {folder}: {exc.strerror or exc}; check --out") from None
    return folder


def _analytics(cfg: RunConfig, class_names: tuple[str, ...]) -> Any:
    """The run config's analytics (zones, --events sinks, clips), always present: cameras added later may
    bring zones, and every live camera's down/up events reach GET /events."""
    from pipeline.analytics.stage import AnalyticsStage

    if cfg.clips.dir and not (cfg.zones or any(s.zones for s in cfg.sources)):
        log.info("clips are recorded for cameras with zones only")
    return AnalyticsStage.build(cfg.zones or None, cfg.events, class_names, cfg.clips, cfg.event_delivery)


def _recent_events(keep: int) -> Any:
    from pipeline.events.base import RecentEvents

    return RecentEvents(keep=keep, name="api")
