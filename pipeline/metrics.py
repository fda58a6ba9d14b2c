"""Pipeline metrics: per-stage latency, end-to-end latency, FPS per stream, drops, reconnects.

Latencies keep a bounded window of recent samples (percentiles of the last
`window` values) plus running count and sum (Prometheus summary semantics),
so memory stays flat on a stream that runs for weeks.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

# Per processed frame: `decode` is timed on the source thread (decoder + BGR conversion) and recorded
# with the frame's other stages when it reaches the engine, so a frame dropped by `drop_oldest` counts
# in no stage; batch stages (preprocess, infer, postprocess) are a batch's time over its frames.
# `queue` is capture -> picked for a batch (source queue + batcher wait). The sink stages (draw, encode,
# jsonl, mot, images, window) are timed on their own threads, per frame written. Next to wall time each
# stage keeps the CPU time of the thread it runs on (`cpu`); worker pools are in the thread budget.
STAGES = (
    "decode", "queue", "preprocess", "infer", "postprocess", "track", "analytics", "sink",
    "draw", "encode", "jsonl", "mot", "images", "window", "end_to_end",
)


class LatencyWindow:
    def __init__(self, window: int = 4096):
        self._values: collections.deque[float] = collections.deque(maxlen=window)
        self.count = 0
        self.total = 0.0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)
            self.count += 1
            self.total += seconds

    def percentiles(self, qs: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
        return self.snapshot(qs)[2]

    def snapshot(self, qs: tuple[float, ...] = (50, 90, 99)) -> tuple[int, float, dict[str, float]]:
        """(count, total seconds, percentiles in ms) read under one lock, so a reader on another
        thread (Prometheus) never pairs a count with the total of a different sample."""
        with self._lock:
            count, total = self.count, self.total
            values = np.fromiter(self._values, float, len(self._values))
        if values.size == 0:
            return count, total, {f"p{int(q)}_ms": float("nan") for q in qs}
        return count, total, {f"p{int(q)}_ms": float(np.percentile(values, q) * 1e3) for q in qs}


@dataclass
class StreamCounters:
    frames: int = 0
    first_wall: float = 0.0
    last_wall: float = 0.0
    dropped: int = 0
    reconnects: int = 0
    stalls: int = 0
    state: str = ""
    error: str | None = None
    # what the source saw (refreshed by the runtime's probe): frames decoded (>= frames processed
    # when a live queue drops), decode errors (packets rejected, packets/frames flagged corrupt),
    # clock restarts re-based, frames the container declares and how many of them never decoded
    decoded: int = 0
    decode_errors: int = 0
    discontinuities: int = 0
    declared: int | None = None
    missing: int | None = None
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    counts: dict | None = None  # zone name -> its counts (pipeline/analytics), for a stream with zones

    @property
    def fps(self) -> float:
        span = self.last_wall - self.first_wall
        return (self.frames - 1) / span if self.frames > 1 and span > 0 else 0.0


class Metrics:
    """Thread-safe where it is shared: `stage()` may be called from any thread (each window locks);
    `frame_done()` and the stream counters are written by the runtime's thread only."""

    def __init__(self) -> None:
        self.stages = {s: LatencyWindow() for s in STAGES}
        self.cpu_s: dict[str, list[float]] = {}  # stage -> [CPU seconds, frames] on the stage's own thread
        self.delivered = {s: LatencyWindow() for s in STAGES}  # capture -> written, per output stage
        self.thread_cpu: Callable[[], dict[str, float]] | None = None  # role -> CPU s (pipeline/cpu_budget.py)
        self.sample_threads: Callable[[], None] | None = None  # a thread about to end calls it, so its CPU counts
        self.streams: dict[str, StreamCounters] = {}
        self.started = time.monotonic()  # the runtime resets it when its sources start: elapsed_s is the run, not its set-up
        self._lock = threading.Lock()
        self._probes: list[Callable[["Metrics"], None]] = []  # refresh gauges (queue drops, source states) on read
        self.events: dict[str, dict[str, int]] = {}  # event sink -> sent, dropped, failed, queued (pipeline/events)

    def add_probe(self, probe: Callable[["Metrics"], None]) -> None:
        self._probes.append(probe)

    def stream(self, stream_id: str) -> StreamCounters:
        with self._lock:
            if stream_id not in self.streams:
                self.streams[stream_id] = StreamCounters()
            return self.streams[stream_id]

    def forget(self, stream_id: str) -> None:
        """A stream removed from a running pipeline (`trident serve`) leaves the summary and /metrics."""
        with self._lock:
            self.streams.pop(stream_id, None)

    def stage(self, name: str, seconds: float) -> None:
        self.stages[name].add(seconds)  # the dict never changes after __init__; the window locks

    def cpu(self, name: str, seconds: float, frames: int = 1) -> None:
        """CPU seconds a stage spent on its thread for `frames` frames (a batch's share is split)."""
        with self._lock:
            entry = self.cpu_s.setdefault(name, [0.0, 0])
            entry[0] += seconds
            entry[1] += frames

    def output_written(self, name: str, seconds_since_capture: float) -> None:
        """A frame's output left stage `name` (encoded, a JSON line written) this long after capture."""
        self.delivered[name].add(seconds_since_capture)

    def frame_done(self, stream_id: str, wall_time_decoded: float) -> None:
        now = time.time()
        counters = self.stream(stream_id)
        counters.frames += 1
        counters.first_wall = counters.first_wall or now
        counters.last_wall = now
        e2e = max(0.0, now - wall_time_decoded)
        counters.latency.add(e2e)
        self.stages["end_to_end"].add(e2e)

    def summary(self) -> dict[str, Any]:
        for probe in self._probes:
            probe(self)
        with self._lock:
            cpu = {k: (v[0], v[1]) for k, v in self.cpu_s.items()}
        stages = {}
        for name, w in self.stages.items():
            stages[name] = _stage_summary(*w.snapshot())
            if name in cpu and cpu[name][1]:
                stages[name]["cpu_ms_mean"] = cpu[name][0] / cpu[name][1] * 1e3
        return {
            "elapsed_s": round(time.monotonic() - self.started, 3),
            "stages": stages,
            "delivered": {name: _stage_summary(*w.snapshot()) for name, w in self.delivered.items() if w.count},
            "threads": self._thread_budget(),
            "events": dict(self.events),
            "streams": {
                sid: {
                    "frames": c.frames,
                    "fps": round(c.fps, 2),
                    "dropped": c.dropped,
                    "reconnects": c.reconnects,
                    "stalls": c.stalls,
                    "frames_decoded": c.decoded,
                    "frames_declared": c.declared,
                    "frames_missing": c.missing,
                    "decode_errors": c.decode_errors,
                    "discontinuities": c.discontinuities,
                    "state": c.state,
                    "error": c.error,
                    "latency": c.latency.percentiles(),
                    **({"counts": c.counts} if c.counts is not None else {}),
                }
                for sid, c in sorted(self.streams.items())
            },
        }

    def _thread_budget(self) -> dict[str, dict[str, float]]:
        """Role -> CPU seconds, ms per processed frame and cores busy on average (empty off Linux)."""
        groups = self.thread_cpu() if self.thread_cpu is not None else {}
        frames = sum(c.frames for c in list(self.streams.values())) or 1
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            role: {"cpu_s": cpu, "ms_per_frame": round(cpu / frames * 1e3, 2), "cores": round(cpu / elapsed, 3)}
            for role, cpu in groups.items()
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(_dumps(self.summary()))

    def format_table(self) -> str:
        s = self.summary()
        lines = [f"{'stage':<12} {'count':>7} {'mean ms':>9} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'cpu ms':>8}"]
        for name, st in s["stages"].items():
            if st["count"]:
                cpu = f"{st['cpu_ms_mean']:>8.2f}" if "cpu_ms_mean" in st else f"{'':>8}"
                lines.append(f"{name:<12} {st['count']:>7} {st['mean_ms']:>9.2f} {st['p50_ms']:>9.2f} {st['p90_ms']:>9.2f} {st['p99_ms']:>9.2f} {cpu}")
        for name, st in s["delivered"].items():
            lines.append(f"{'capture->' + name:<20} p50 {st['p50_ms']:>8.1f} ms  p99 {st['p99_ms']:>8.1f} ms")
        if s["threads"]:
            lines.append("")
            lines.append(f"{'threads (CPU)':<16} {'cpu s':>8} {'ms/frame':>9} {'cores':>6}")
            for role, t in s["threads"].items():
                lines.append(f"{role:<16} {t['cpu_s']:>8.2f} {t['ms_per_frame']:>9.2f} {t['cores']:>6.2f}")
        lines.append("")
        lines.append(f"{'stream':<28} {'frames':>7} {'fps':>7} {'dropped':>8} {'reconn':>7} {'dec.err':>7} {'clock':>5} {'e2e p50 ms':>11}  state")
        for sid, st in s["streams"].items():
            lines.append(
                f"{sid[:28]:<28} {st['frames']:>7} {st['fps']:>7.1f} {st['dropped']:>8} {st['reconnects']:>7} "
                f"{st['decode_errors']:>7} {st['discontinuities']:>5} "
                f"{st['latency']['p50_ms']:>11.1f}  {st['state']}{' - ' + st['error'] if st['error'] else ''}"
            )
        return "\n".join(lines + _zone_lines(s))

    def prometheus_text(self) -> str:
        s = self.summary()
        out = [
            "# HELP trident_stage_latency_seconds Latency of each pipeline stage.",
            "# TYPE trident_stage_latency_seconds summary",
        ]
        for name, w in self.stages.items():
            count, total, percentiles = w.snapshot()
            for q, v in percentiles.items():
                if v == v:  # not NaN
                    out.append(f'trident_stage_latency_seconds{{stage="{name}",quantile="0.{q[1:3]}"}} {v / 1e3:.6f}')
            out.append(f'trident_stage_latency_seconds_count{{stage="{name}"}} {count}')
            out.append(f'trident_stage_latency_seconds_sum{{stage="{name}"}} {total:.6f}')
        for metric, key, kind in (
            ("frames_total", "frames", "counter"),
            ("fps", "fps", "gauge"),
            ("dropped_frames_total", "dropped", "counter"),
            ("reconnects_total", "reconnects", "counter"),
            ("decode_errors_total", "decode_errors", "counter"),
            ("discontinuities_total", "discontinuities", "counter"),
            ("missing_frames", "frames_missing", "gauge"),  # only for streams whose container declares a length
        ):
            out.append(f"# TYPE trident_stream_{metric} {kind}")
            for sid, st in s["streams"].items():
                if st[key] is not None:
                    out.append(f'trident_stream_{metric}{{stream="{sid}"}} {st[key]}')
        return "\n".join(out + _zone_prometheus(s)) + "\n"


def _stage_summary(count: int, total: float, percentiles: dict[str, float]) -> dict[str, Any]:
    return {"count": count, "mean_ms": (total / count * 1e3) if count else float("nan"), **percentiles}


def _dumps(data: Any) -> str:
    """JSON with NaN (no samples yet) written as null, which every JSON reader accepts."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and x != x:
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(data), indent=2)


class PrometheusServer:
    """`GET /metrics` on 127.0.0.1:port in a daemon thread; stopped by `close()`."""

    def __init__(self, metrics: Metrics, port: int, host: str = "127.0.0.1"):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/") != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.prometheus_text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="prometheus", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def _zone_lines(s: dict[str, Any]) -> list[str]:
    """The summary table's zone counts per stream and its event sinks' deliveries (none without zones/events)."""
    lines: list[str] = []
    for sid, st in s["streams"].items():
        for zone, c in (st.get("counts") or {}).items():
            if c.get("type") == "line":
                what = f"in {c['in']:>5}  out {c['out']:>5}"
            else:
                what = f"occupancy {c['occupancy']:>3}  entered {c['entered']:>5}  exited {c['exited']:>5}  dwell {c['dwell']:>4}"
            by_class = ", ".join(f"{k} " + "/".join(str(v) for kk, v in row.items() if kk != "occupancy") for k, row in c.get("by_class", {}).items())
            lines.append(f"  {sid[:20]:<20} {zone[:16]:<16} {what}" + (f"  ({by_class})" if by_class else ""))
    if lines:
        lines.insert(0, "")
        lines.insert(1, f"  {'zones: stream':<20} {'zone':<16} counts (by class)")
    if s.get("events"):
        lines += ["", f"{'event sink':<44} {'sent':>7} {'dropped':>8} {'failed':>7} {'queued':>7}"]
        for name, e in s["events"].items():
            lines.append(f"{name[:44]:<44} {e.get('sent', 0):>7} {e.get('dropped', 0):>8} {e.get('failed', 0):>7} {e.get('queued', 0):>7}")
    return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _zone_prometheus(s: dict[str, Any]) -> list[str]:
    """Zone counts and event sink deliveries in Prometheus text (labels escaped: zone names are free text)."""
    families: dict[str, tuple[str, list[str]]] = {}

    def sample(name: str, kind: str, labels: str, value: Any) -> None:
        families.setdefault(name, (kind, []))[1].append(f"{name}{{{labels}}} {value}")

    for sid, st in s["streams"].items():
        for zone, c in (st.get("counts") or {}).items():
            where = f'stream="{_label(sid)}",zone="{_label(zone)}"'
            for cls, row in c.get("by_class", {}).items():
                labels = f'{where},class="{_label(cls)}"'
                if c.get("type") == "line":
                    for d in ("in", "out"):
                        sample("trident_zone_crossings_total", "counter", f'{labels},direction="{d}"', row[d])
                else:
                    for k in ("entered", "exited", "dwell"):
                        sample(f"trident_zone_{k}_total", "counter", labels, row[k])
            if c.get("type") == "polygon":
                sample("trident_zone_occupancy", "gauge", where, c["occupancy"])
    for name, e in (s.get("events") or {}).items():
        for k in ("sent", "dropped", "failed"):
            sample(f"trident_events_{k}_total", "counter", f'sink="{_label(name)}"', e.get(k, 0))
    out: list[str] = []
    for name, (kind, rows) in families.items():  # one TYPE line, then the family's samples together
        out += [f"# TYPE {name} {kind}", *rows]
    return out
