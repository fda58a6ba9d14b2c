"""Triton engine: the Engine protocol over a model served by Triton Inference Server, `triton://HOST:PORT/NAME`.

The model spec and the wire encoding come from the served model's config
`parameters` (written by `trident triton-repo` / `serve-model`), so nothing
is configured twice. Each frame of a batch is its own request and all of them
are in flight at once: the server's dynamic batcher merges them with the
frames of every other process and node into its own batches. On the same
host, the frames and the results travel through system shared memory instead
of the socket.

A server that goes away mid-run (restart, network) is waited for: `infer`
retries with capped exponential backoff, re-registering shared memory after a
restart, for up to `retry_s` seconds, then raises one TridentError. While it
waits, the pipeline's source queues fill: a file source blocks (loses
nothing), a live source drops its oldest frames and counts them. A server that
is unreachable when the engine is opened, or that does not serve the model,
is one clear error at once.

URI options: `triton://host:8001/trident?protocol=auto|grpc|http&shm=auto|on|off&retry_s=60`.
`protocol=auto` tries gRPC on the port, then HTTP on the same port.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from engines.base import as_numpy, check_images, require_module
from engines.postprocess import RawOutputs
from engines.spec import INPUT_NAME, SPEC_METADATA_KEY, ModelSpec
from engines.triton_wire import RAW_WIRE, WIRE_PARAMETER, WirePlan, decode
from pipeline.errors import TridentError

log = logging.getLogger("trident.engines.triton")

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_NP_TYPES = {"TYPE_UINT8": np.uint8, "TYPE_FP16": np.float16, "TYPE_FP32": np.float32, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64}
# Errors that mean "the server is (re)starting or unreachable": wait and retry. Anything else is final.
_RETRYABLE = ("unavailable", "connection refused", "failed to connect", "socket closed", "connection reset", "broken pipe",
              "unknown model", "is not ready", "shared memory region", "deadline", "timed out", "eof")
# A server being stopped fails the requests its model is executing with INTERNAL "model execute
# error" (its Python backend is torn down under them), for as long as its shutdown takes. When the
# server then says it is not ready (exiting) or the model is not loaded, that is an outage like any
# other (retried for retry_s); from a server and model that say they are ready it is retried for
# _STOPPING_WINDOW_S of such errors in a row, then reported with the server's message (a model that
# really fails). Three retries, 0.7 s, were too few on a loaded CI machine.
_STOPPING = "model execute error"
_STOPPING_WINDOW_S = 10.0


@dataclass(frozen=True)
class TritonAddress:
    host: str
    port: int
    model: str
    protocol: str = "auto"  # auto | grpc | http
    shm: str = "auto"  # auto (on for a loopback host) | on | off
    retry_s: float = 60.0  # how long infer waits for a server that went away before it gives up

    @classmethod
    def parse(cls, uri: str) -> "TritonAddress":
        parts = urlsplit(uri)
        model = parts.path.strip("/")
        try:
            port = parts.port or 8001
        except ValueError:
            port = -1
        if parts.scheme.lower() != "triton" or not parts.hostname or not model or "/" in model or port < 1:
            raise TridentError(f"{uri!r} is not a Triton model address; write triton://HOST:PORT/MODEL (gRPC port, e.g. triton://127.0.0.1:8001/trident)")
        options = dict(parse_qsl(parts.query))
        unknown = sorted(set(options) - {"protocol", "shm", "retry_s"})
        if unknown:
            raise TridentError(f"{uri}: unknown option(s) {unknown}; the options are protocol, shm and retry_s")
        addr = cls(parts.hostname, port, model, options.get("protocol", "auto"), options.get("shm", "auto"), float(options.get("retry_s", 60)))
        if addr.protocol not in ("auto", "grpc", "http") or addr.shm not in ("auto", "on", "off") or addr.retry_s < 0:
            raise TridentError(f"{uri}: protocol must be auto|grpc|http, shm auto|on|off, retry_s >= 0")
        return addr

    @property
    def where(self) -> str:
        return f"Triton at {self.host}:{self.port}"


@dataclass
class WireStats:
    requests: int = 0
    frames: int = 0
    bytes_sent: int = 0  # tensor bytes through the socket (0 per frame with shared memory)
    bytes_received: int = 0
    retries: int = 0
    outages: int = 0
    outage_s: float = 0.0
    latencies_ms: list = field(default_factory=list)  # per infer call, wall time


HTTP_OPTIONS = {"concurrency": 16, "connection_timeout": 5.0, "network_timeout": 60.0}


class TritonEngine:
    device = "cpu"  # results arrive in host memory; the server decides where the model runs

    def __init__(self, address: TritonAddress):
        self.address = address
        self.stats = WireStats()
        self._lock = threading.Lock()
        self._local = threading.local()  # the HTTP client of each thread that calls (see _client)
        self._clients: list = []
        self._closed = False
        client, self._mod, self.protocol = self._connect()
        self._keep(client)
        self.spec, self.wire, self._outputs = self._read_model()
        self._frame_in = int(np.prod((3, *self.spec.input_hw)))
        self._shm: list[dict] = []
        use_shm = address.shm == "on" or (address.shm == "auto" and address.host in LOOPBACK)
        if use_shm:
            self._setup_shm(self.spec.batch_range[2], required=address.shm == "on")
        blank = np.zeros((1, 3, *self.spec.input_hw), np.uint8)
        try:
            self.infer(blank)  # one request now: shapes, shared memory and the model answer before the first frame
        except BaseException:
            self.close()  # the shared-memory regions and the channel go with the refusal
            raise
        self.stats = WireStats()

    # -- connection --------------------------------------------------------------------------------
    @property
    def _client(self):
        """The client for the calling thread: gRPC's is thread-safe and shared; tritonclient.http's
        runs on gevent, whose hub belongs to the thread that made it ("Cannot switch to a different
        thread"), so the pipeline's inference thread gets its own, made on first use."""
        if self._closed:
            return None
        if self.protocol == "grpc":
            return self._clients[0]
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._keep(self._mod.InferenceServerClient(f"{self.address.host}:{self.address.port}", **HTTP_OPTIONS))
        return client

    def _keep(self, client: Any) -> Any:
        self._local.client = client
        self._clients.append(client)
        return client

    def _connect(self):
        addr, errors = self.address, []
        for protocol in ("grpc", "http") if addr.protocol == "auto" else (addr.protocol,):
            module = __import__(f"tritonclient.{protocol}", fromlist=["InferenceServerClient"])
            try:
                if protocol == "grpc":
                    client = module.InferenceServerClient(f"{addr.host}:{addr.port}")
                    live = client.is_server_live(client_timeout=5.0)
                else:
                    client = module.InferenceServerClient(f"{addr.host}:{addr.port}", **HTTP_OPTIONS)
                    live = client.is_server_live()
            except Exception as exc:  # each protocol fails in its own exception type
                errors.append(f"{protocol}: {_first_line(exc)}")
                continue
            if live:
                return client, module, protocol
            errors.append(f"{protocol}: server not live")
        raise TridentError(
            f"{addr.where} is unreachable ({'; '.join(errors)}); start it with `trident serve-model --model FILE.onnx --port {addr.port}` "
            "or check the host and the gRPC port"
        )

    def _read_model(self) -> tuple[ModelSpec, WirePlan, list[tuple[str, Any, tuple[int, ...]]]]:
        addr, client = self.address, self._client
        try:
            ready = client.is_model_ready(addr.model)
        except Exception:  # tritonclient raises for an unknown name on some servers instead of answering False
            ready = False
        if not ready:
            raise TridentError(f"{addr.where} does not serve a ready model named '{addr.model}'{self._served_names()}; check the name in triton://HOST:PORT/NAME")
        config = client.get_model_config(addr.model)
        config = config.get("config", config) if isinstance(config, dict) else _message_to_dict(config).get("config", {})
        params = {k: v.get("string_value", v.get("stringValue", "")) for k, v in config.get("parameters", {}).items()}
        if SPEC_METADATA_KEY not in params:
            raise TridentError(
                f"'{addr.model}' on {addr.where} carries no Trident model spec (config parameter '{SPEC_METADATA_KEY}'); "
                "serve a repository written by `trident triton-repo` or `trident serve-model`"
            )
        spec = ModelSpec.from_json(params[SPEC_METADATA_KEY], where=f"{addr.model} on {addr.where}")
        wire = WirePlan.from_json(params[WIRE_PARAMETER], addr.model) if WIRE_PARAMETER in params else RAW_WIRE
        outputs = [(o["name"], _NP_TYPES[o.get("data_type", "TYPE_FP32")], tuple(int(d) for d in o["dims"])) for o in config.get("output", [])]
        return spec, wire, outputs

    def _served_names(self) -> str:
        try:  # PyTriton locks the repository index; the official server answers it
            index = self._client.get_model_repository_index()
            names = sorted(m["name"] if isinstance(m, dict) else m.name for m in (index.get("models", index) if isinstance(index, dict) else index.models))
            return f" (it serves: {', '.join(names)})" if names else ""
        except Exception:
            return ""

    # -- shared memory -----------------------------------------------------------------------------
    def _setup_shm(self, slots: int, required: bool) -> None:
        import tritonclient.utils.shared_memory as shm

        out_bytes = sum(int(np.prod(s)) * np.dtype(t).itemsize for _, t, s in self._outputs)
        tag = f"trident_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        try:
            for i in range(slots):
                slot = {"in": f"{tag}_in{i}", "out": f"{tag}_out{i}", "out_bytes": out_bytes}
                slot["in_handle"] = shm.create_shared_memory_region(slot["in"], "/" + slot["in"], self._frame_in)
                slot["out_handle"] = shm.create_shared_memory_region(slot["out"], "/" + slot["out"], out_bytes)
                self._shm.append(slot)
            self._register_shm()
        except Exception as exc:
            self._drop_shm()
            if required:
                raise TridentError(f"{self.address.where}: system shared memory failed ({_first_line(exc)}); the server must run on this host - use shm=off") from None
            log.warning("%s: shared memory unavailable (%s); frames go through the socket", self.address.where, _first_line(exc))

    def _register_shm(self) -> None:
        for slot in self._shm:
            for part, size in (("in", self._frame_in), ("out", slot["out_bytes"])):
                try:
                    self._client.unregister_system_shared_memory(slot[part])
                except Exception:
                    pass  # not registered (first time, or the server restarted)
                self._client.register_system_shared_memory(slot[part], "/" + slot[part], size)

    def _drop_shm(self) -> None:
        import tritonclient.utils.shared_memory as shm

        for slot in self._shm:
            for part in ("in", "out"):
                try:
                    self._client.unregister_system_shared_memory(slot[part])
                except Exception:
                    pass  # the server may be gone; its registrations went with it
                if f"{part}_handle" in slot:
                    shm.destroy_shared_memory_region(slot[f"{part}_handle"])
        self._shm = []

    # -- inference ---------------------------------------------------------------------------------
    def _request(self, image: np.ndarray, slot: int) -> tuple[list, list]:
        mod = self._mod
        inp = mod.InferInput(INPUT_NAME, [1, *image.shape], "UINT8")
        outs = [mod.InferRequestedOutput(name) for name, _, _ in self._outputs]
        if self._shm:
            import tritonclient.utils.shared_memory as shm

            s = self._shm[slot]
            shm.set_shared_memory_region(s["in_handle"], [image[None]])
            inp.set_shared_memory(s["in"], self._frame_in)
            offset = 0
            for out, (_, dtype, shape) in zip(outs, self._outputs):
                size = int(np.prod(shape)) * np.dtype(dtype).itemsize
                out.set_shared_memory(s["out"], size, offset=offset)
                offset += size
        else:
            inp.set_data_from_numpy(image[None])
        return [inp], outs

    def _read(self, result: Any, slot: int) -> dict[str, np.ndarray]:
        if not self._shm:
            arrays = {name: result.as_numpy(name) for name, _, _ in self._outputs}
            self.stats.bytes_sent += self._frame_in
            self.stats.bytes_received += sum(a.nbytes for a in arrays.values())
            return arrays
        import tritonclient.utils.shared_memory as shm

        arrays, offset = {}, 0
        for name, dtype, shape in self._outputs:
            arrays[name] = np.array(shm.get_contents_as_numpy(self._shm[slot]["out_handle"], dtype, [1, *shape], offset=offset))
            offset += arrays[name].nbytes
        return arrays

    def _send_all(self, images: np.ndarray, pending: list[int]) -> dict[int, Any]:
        """Every pending frame as its own request, all in flight together; frame index -> result or exception."""
        done: dict[int, Any] = {}
        finished = threading.Event()
        lock = threading.Lock()

        def callback(i: int, result: Any, error: Any) -> None:
            with lock:
                done[i] = error if error is not None else result
                if len(done) == len(pending):
                    finished.set()

        handles = {}
        for i in pending:
            inputs, outputs = self._request(images[i], i)
            try:
                if self.protocol == "grpc":
                    # tritonclient calls back with keywords result= and error=
                    self._client.async_infer(self.address.model, inputs, functools.partial(callback, i), outputs=outputs, client_timeout=60.0)
                else:
                    handles[i] = self._client.async_infer(self.address.model, inputs, outputs=outputs)
            except Exception as exc:  # refused before it left (connection down)
                callback(i, None, exc)
        for i, handle in handles.items():
            try:
                callback(i, handle.get_result(), None)
            except Exception as exc:
                callback(i, None, exc)
        if not finished.wait(90.0):
            raise TridentError(f"{self.address.where}: no answer to {len(pending) - len(done)} request(s) within 90 s; check the server's log")
        return done

    def infer(self, images: Any) -> RawOutputs:
        check_images(images, self.spec, f"triton model '{self.address.model}'")
        images = np.ascontiguousarray(as_numpy(images))
        if self._shm and len(images) > len(self._shm):
            raise TridentError(f"batch of {len(images)} frames exceeds the {len(self._shm)} shared-memory slots of this engine")
        t0 = time.perf_counter()
        results: dict[int, dict[str, np.ndarray]] = {}
        pending = list(range(len(images)))
        outage_start, backoff, last = None, 0.1, ""
        stopping_since: float | None = None  # first of the "model execute error"s in a row (no other error between)
        with self._lock:  # one batch at a time owns the shared-memory slots
            while pending:
                done = self._send_all(images, pending)
                failed = []
                for i in pending:
                    outcome = done[i]
                    if isinstance(outcome, Exception):
                        failed.append(i)
                        last = _first_line(outcome)
                        low = last.lower()
                        retryable = any(word in low for word in _RETRYABLE)
                        if _STOPPING in low and not self._model_ready():
                            retryable = True  # the server says it is shutting down or its model is not loaded: an outage
                            stopping_since = None  # and it ends a run of errors from a ready server (CI stop 21 failed without this)
                        elif _STOPPING in low:
                            stopping_since = stopping_since if stopping_since is not None else time.monotonic()
                        elif retryable:
                            stopping_since = None  # the server went away meanwhile: a restarted one gets its own window
                        stopping_ok = _STOPPING in low and stopping_since is not None and time.monotonic() - stopping_since < _STOPPING_WINDOW_S
                        if not (retryable or stopping_ok):
                            raise TridentError(f"{self.address.where} refused the request for '{self.address.model}': {last}")
                    else:
                        results[i] = self._read(outcome, i)
                self.stats.requests += len(pending)
                pending = failed
                if not pending:
                    break
                now = time.monotonic()
                if outage_start is None:
                    outage_start = now
                    self.stats.outages += 1
                    log.warning("%s: %s; retrying with backoff for up to %.0f s (file sources wait, live sources drop)", self.address.where, last, self.address.retry_s)
                if now - outage_start > self.address.retry_s:
                    raise TridentError(
                        f"{self.address.where} did not answer for {self.address.retry_s:.0f} s (last error: {last}); "
                        "restart the server (`trident serve-model`) or raise retry_s in the model URI"
                    )
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                self.stats.retries += 1
                self._try_reregister()
            if outage_start is not None:
                gap = time.monotonic() - outage_start
                self.stats.outage_s += gap
                log.warning("%s: back after %.1f s", self.address.where, gap)
        self.stats.frames += len(images)
        self.stats.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        batch = {name: np.concatenate([results[i][name] for i in range(len(images))]) for name, _, _ in self._outputs}
        return decode(batch, self.spec)

    def _model_ready(self) -> bool:
        """Whether the server says it is ready and our model is loaded; False when it cannot say (down,
        exiting). A "model execute error" from a ready server and model is the model's own failure."""
        timeout = {"client_timeout": 5.0} if self.protocol == "grpc" else {}  # a hung server is "not ready", not a hang
        try:
            return bool(self._client.is_server_ready(**timeout) and self._client.is_model_ready(self.address.model, **timeout))
        except Exception:
            return False

    def _try_reregister(self) -> None:
        """A restarted server forgot our shared-memory regions; register them again once it answers."""
        if not self._shm:
            return
        try:
            self._register_shm()
        except Exception:
            pass  # still down; the next round retries

    def close(self) -> None:
        if self._closed:
            return
        self._drop_shm()
        self._closed = True
        for client in self._clients:
            try:
                client.close()
            except Exception:
                pass  # another thread's gevent client may refuse to close from here; the process exit ends it
        self._clients.clear()

    def __enter__(self) -> "TritonEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    """The error's first line; when the server sent a Python traceback (its Python backend failed), the
    first line ("... Traceback (most recent call last):") says nothing, so the exception's own line (the
    last "SomeError: ..." line, e.g. PyTriton's "BrokenPipeError: [Errno 32] Broken pipe" while it
    stops) is added: the retry rules and the user both need it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    if "traceback (most recent call last)" in text.lower():
        raised = [line for line in lines[1:] if _EXCEPTION_LINE.match(line)]
        if raised:
            text = f"{text} ... {raised[-1]}"
    return text[:400]


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b:?")


def _message_to_dict(message: Any) -> dict:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=True)


def load(uri: str, device: str = "auto", **options: Any) -> TritonEngine:
    """Loader registered for the triton:// scheme (entry point group trident.engines)."""
    require_module("tritonclient", "pip install 'trident-vision[triton]'", "a triton:// model")
    if options:
        raise TridentError(f"a triton:// model takes its options in the URI (?protocol=&shm=&retry_s=), not {sorted(options)}")
    if device not in ("auto", "cpu"):
        log.warning("--device %s has no effect on a triton:// model: the server decides where the model runs", device)
    return TritonEngine(TritonAddress.parse(str(uri)))
