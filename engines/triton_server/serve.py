"""Serve one model of a Triton repository written by `trident triton-repo` through PyTriton.

Run by path, in an interpreter of its own (`trident serve-model` starts it):

    python engines/triton_server/serve.py --repo DIR --name NAME --grpc-port 8001 --http-port 8000 --metrics-port 8002

It imports nothing of Trident, only numpy, onnxruntime, pytriton and the
tritonclient that pytriton brings, so its venv stays small (no torch). PyTriton
(`nvidia-pytriton`) ships a real `tritonserver` with the Python backend but
not the ONNX Runtime backend; the model therefore runs in ONNX Runtime in this
process and Triton does what it is for: gRPC/HTTP, shared memory, dynamic
batching across every client, statistics and metrics. The model's
config.pbtxt is the one the official container would read, so both serve the
same batching and parameters.

The Python backend's stub embeds its own interpreter: with some Python builds
it fails at model load (`'_thread.RLock' object has no attribute
'_recursion_count'`). Debian's /usr/bin/python3 works; see the README.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import numpy as np

_DTYPES = {"TYPE_UINT8": np.uint8, "TYPE_FP16": np.float16, "TYPE_FP32": np.float32, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64}


def read_config(path: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _with_parameters(parameters: dict[str, str]) -> None:
    """Put the repository's parameters (model spec, wire plan) into the config PyTriton generates.

    PyTriton 0.7 writes its own config.pbtxt and exposes no `parameters`; its
    generator reads `backend_parameters` from this one method, so it is wrapped
    (pinned: nvidia-pytriton==0.7.0; a test reads the served parameters back).
    """
    from pytriton.models.model import Model

    original = Model._get_triton_model_config

    def patched(self):
        cfg = original(self)
        cfg.backend_parameters.update(parameters)
        return cfg

    Model._get_triton_model_config = patched


def _session(model_file: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle cores go to the clients
    return ort.InferenceSession(str(model_file), sess_options=opts, providers=["CPUExecutionProvider"])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _exit_with_parent(parent: int) -> None:
    """Stop when the process that started us is gone (a killed test run, a crashed `serve-model`).

    The server runs in its own session so that stopping it takes tritonserver along; the price is that
    a parent killed with SIGKILL signals nothing, so the orphan notices by itself.
    """
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except PermissionError:
                pass  # alive, owned by another user

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--grpc-port", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--metrics-port", type=int, required=True)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = every usable core)")
    p.add_argument("--parent-pid", type=int, default=0, help="stop when this process is gone (0 = never)")
    args = p.parse_args(argv)
    if args.parent_pid:
        _exit_with_parent(args.parent_pid)

    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    folder = Path(args.repo) / args.name
    cfg = read_config(folder / "config.pbtxt")
    session = _session(folder / "1" / "model.onnx", args.threads or len(os.sched_getaffinity(0)))
    names = [o.name for o in cfg.output]
    from google.protobuf.json_format import MessageToDict

    def dtype(field) -> type:
        from tritonclient.grpc import model_config_pb2

        return _DTYPES[model_config_pb2.DataType.Name(field.data_type)]

    @batch
    def infer(**inputs):
        outputs = session.run(names, {k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return dict(zip(names, outputs))

    batcher = DynamicBatcher(
        max_queue_delay_microseconds=cfg.dynamic_batching.max_queue_delay_microseconds,
        preferred_batch_size=list(cfg.dynamic_batching.preferred_batch_size) or None,
    )
    count = sum(g.count or 1 for g in cfg.instance_group) or 1
    _with_parameters({k: MessageToDict(v).get("stringValue", "") for k, v in cfg.parameters.items()})
    config = TritonConfig(
        grpc_address=args.host,
        grpc_port=args.grpc_port,
        http_address=args.host,
        http_port=args.http_port,
        metrics_address=args.host,
        metrics_port=args.metrics_port,
        log_verbose=0,
        exit_on_error=True,
    )
    # SIGTERM ends serve() the way Ctrl-C does, so the tritonserver child and the workspace are cleaned up
    signal.signal(signal.SIGTERM, _interrupt)
    # PyTriton locks statistics and shared memory behind a token by default. Statistics are read-only
    # and are how batching is observed; shared memory is how same-host clients skip the socket, and
    # only a process on this host can map it, so it is opened on loopback only. Repository control,
    # tracing and logging stay locked.
    locked = ["model-repository", "trace", "logging"] + ([] if args.host in ("127.0.0.1", "localhost", "::1") else ["shared-memory"])
    with Triton(config=config, security_config=TritonSecurityConfig(restricted_endpoints=locked)) as triton:
        triton.bind(
            model_name=args.name,
            infer_func=[infer] * count,
            inputs=[Tensor(name=i.name, dtype=dtype(i), shape=tuple(i.dims)) for i in cfg.input],
            outputs=[Tensor(name=o.name, dtype=dtype(o), shape=tuple(o.dims)) for o in cfg.output],
            config=ModelConfig(max_batch_size=cfg.max_batch_size, batcher=batcher),
            strict=False,
        )
        print(f"serving {args.name} on grpc {args.host}:{args.grpc_port} http {args.host}:{args.http_port}", flush=True)
        triton.serve()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
