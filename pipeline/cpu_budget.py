"""Who spends the CPU: per-thread CPU time grouped by role, for the run's budget table.

A stage timed with `time.thread_time` in its own thread misses the CPU of
the worker threads its library starts: ONNX Runtime's intra-op pool, torch's
pool, FFmpeg's decoder threads, x264's encoder threads. Linux gives every
thread a name (`comm`, 15 bytes) that the threads it creates inherit, so each
thread of ours names itself after its role (`trd:decode`, `trd:encode`,
`trd:draw`, ...) when it starts, and the workers its libraries start carry that
name too - except FFmpeg 7's frame threads, which name themselves `av:CODEC:dfN`
and count as decode (the encoder runs on one thread: no workers). A sampler
reads `/proc/self/task/*/stat` twice a second (and when a sink ends) and keeps
each thread's last CPU time, so threads that have ended (a finished stream's
decoder) still count, less at most their last half second. What no role names
is grouped as the main thread (batching, letterbox, the engine call, post-process,
trackers), the main thread's pools (ONNX Runtime, torch: threads that carry the
process name and are not Python threads) and other Python threads.

Off Linux, where there is no /proc, the table is empty and the per-stage
CPU columns (thread_time) remain.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from pathlib import Path

PREFIX = "trd:"
FFMPEG_PREFIX = "av:"  # FFmpeg 7's own names for a codec's frame threads: av:h264:df0, ...
_PR_SET_NAME = 15
_TASKS = Path("/proc/self/task")
_libc = None


def name_thread(role: str) -> None:
    """Name the calling OS thread `trd:<role>` (Linux; a no-op elsewhere), so /proc says who it is."""
    global _libc
    if not _TASKS.is_dir():
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.prctl(_PR_SET_NAME, (PREFIX + role)[:15].encode(), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the budget loses its role names, nothing else
        pass


def read_threads() -> dict[int, tuple[str, float]]:
    """tid -> (thread name, user + system CPU seconds) of every live thread of this process."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir(_TASKS)
    except OSError:
        return out
    for tid in tids:
        try:
            stat = (_TASKS / tid / "stat").read_text()
        except OSError:  # the thread ended between listdir and read
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return out


class ThreadSampler:
    """Samples every thread's CPU time every `period` seconds until `close()`; `groups()` sums them by role."""

    def __init__(self, period: float = 0.5):
        self.period = period
        self._seen: dict[int, tuple[str, float, bool]] = {}  # tid -> (name, cpu s, is a Python thread)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._main = threading.main_thread().native_id
        self._start = self._snapshot()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def _snapshot(self) -> dict[int, tuple[str, float, bool]]:
        python = {t.native_id for t in threading.enumerate()}
        return {tid: (name, cpu, tid in python) for tid, (name, cpu) in read_threads().items()}

    def start(self) -> "ThreadSampler":
        self._thread.start()
        return self

    def sample(self) -> None:
        snap = self._snapshot()
        with self._lock:
            for tid, (name, cpu, py) in snap.items():
                seen = self._seen.get(tid)
                # a role name set after the first sample wins; a Python thread stays one
                self._seen[tid] = (name, cpu, py or (seen[2] if seen else False))

    def _loop(self) -> None:
        name_thread("sampler")
        while not self._stop.wait(self.period):
            self.sample()

    def close(self) -> None:
        self.sample()
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def groups(self) -> dict[str, float]:
        """Role -> CPU seconds since the sampler was made (threads that existed before count their growth only)."""
        with self._lock:
            seen = dict(self._seen)
        main_name = seen.get(self._main, (self._start.get(self._main, ("python",))[0],))[0]
        out: dict[str, float] = {}
        for tid, (name, cpu, py) in seen.items():
            before = self._start.get(tid)
            used = cpu - (before[1] if before else 0.0)
            if name.startswith(PREFIX):
                role = name[len(PREFIX) :]
            elif name.startswith(FFMPEG_PREFIX):
                role = "decode"  # FFmpeg 7 names its codec workers itself; the encoder runs on one thread
            elif tid == self._main:
                role = "main"
            elif not py and name == main_name:
                role = "engine pools"  # started by the main thread: ONNX Runtime / torch / OpenMP workers
            else:
                role = "other"
            if role == "sampler":
                role = "other"
            out[role] = out.get(role, 0.0) + used
        return {k: round(v, 3) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def limit_postprocess_threads(threads: int):
    """torch's intra-op threads and every loaded BLAS library's (numpy's OpenBLAS, OpenCV's) set to
    `threads` while a CPU pipeline runs; returns a callable that restores them.

    The post-process's ops are small and do not scale, and both pools fight the engine's and the
    decoder's threads for the same cores. OpenBLAS is the costly one: a matrix-vector product over
    ~10k elements (a mask's prototype band) already runs on its worker thread, which then
    spin-waits for the next call - on vtest.avi at 2 cores that worker burned 12 ms of CPU a frame
    ("engine pools" in the budget) and the run fell from 42-48 to 34 FPS. torch only where it is
    loaded already (a torch engine): the CPU post-process itself never imports it."""
    import sys

    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    blas = threadpool_limits(limits=threads, user_api="blas")

    def restore() -> None:
        blas.restore_original_limits()
        if torch is not None:
            torch.set_num_threads(before)

    return restore
