"""`trident triton-repo` (a Triton model repository for a Trident ONNX) and `trident serve-model` (serve it)."""

from __future__ import annotations

import argparse
import re
import signal
import tempfile
import time
from pathlib import Path

from pipeline.config_files import positive_int
from pipeline.errors import TridentError


def _model_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).stem).lstrip("._-") or "trident"


def _add_serving_options(p: argparse.ArgumentParser, model_required: bool = True) -> None:
    p.add_argument("--model", required=model_required, default=None, help="Trident .onnx file (`trident export`, `trident import`)")
    p.add_argument("--name", default=None, help="served model name (default: the file's stem)")
    p.add_argument("--max-batch", type=int, default=0, help="Triton max_batch_size (default: the model's largest batch)")
    p.add_argument("--preferred-batch", type=positive_int, nargs="+", default=None, help="preferred batch sizes (default: max/2 and max)")
    p.add_argument("--max-queue-delay-us", type=int, default=4000, help="how long a request waits for others to batch with")
    p.add_argument("--instances", type=positive_int, default=1, help="model instances (one already uses every CPU core)")
    p.add_argument("--dense", default="uint8", choices=("uint8", "fp16", "fp32"), help="prototypes/semantic logits on the wire")
    p.add_argument("--topk", type=int, default=1000, help="candidate boxes per frame on the wire (0 = all anchors)")


def _serving_config(args: argparse.Namespace, kind: str = "KIND_CPU", platform: str = "onnxruntime_onnx"):
    from engines.triton_repo import ServingConfig
    from engines.triton_wire import WirePlan

    return ServingConfig(
        name=args.name or _model_name(args.model), platform=platform, max_batch_size=args.max_batch,
        preferred_batch_sizes=tuple(args.preferred_batch or ()), max_queue_delay_us=args.max_queue_delay_us,
        instances=args.instances, kind=kind, wire=WirePlan(topk=args.topk, dense=args.dense),
    )


def register_triton_repo(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "triton-repo",
        help="write a Triton model repository (config.pbtxt + model) for a Trident ONNX model",
        description="Writes DIR/NAME/config.pbtxt and DIR/NAME/1/model.onnx, ready for the official Triton container "
        "(tritonserver --model-repository DIR) or `trident serve-model`. `trident export --triton-repo` does the same after exporting.",
    )
    _add_serving_options(p)
    p.add_argument("--repo", required=True, help="repository folder (created)")
    p.add_argument("--platform", default="onnxruntime_onnx", choices=("onnxruntime_onnx", "tensorrt_plan"))
    p.add_argument("--plan", default=None, help="tensorrt_plan: a TensorRT engine built from DIR/NAME/1/model.onnx")
    p.add_argument("--kind", default="cpu", choices=("cpu", "gpu"), help="instance kind")
    p.set_defaults(handler=_triton_repo)


def _written(folder: Path, repo: str, name: str) -> str:
    return f"wrote {folder}/config.pbtxt and {folder}/1/; serve it: tritonserver --model-repository {repo}  (client: --model triton://HOST:8001/{name})"


def _triton_repo(args: argparse.Namespace) -> int:
    from engines.triton_repo import write_repository

    cfg = _serving_config(args, kind=f"KIND_{args.kind.upper()}", platform=args.platform)
    folder = write_repository(args.model, args.repo, cfg, plan_file=args.plan)
    print(_written(folder, args.repo, cfg.name))
    return 0


def write_default_repository(onnx_path: Path, repo: str) -> str:
    """`trident export --triton-repo DIR`: the repository with the default serving settings; returns what was written."""
    from engines.triton_repo import ServingConfig, write_repository

    cfg = ServingConfig(name=_model_name(str(onnx_path)))
    return _written(write_repository(onnx_path, repo, cfg), repo, cfg.name)


def register_serve_model(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve-model",
        help="serve a model through a real Triton Inference Server (PyTriton, ONNX Runtime inside)",
        description="Starts tritonserver (from the nvidia-pytriton package) with dynamic batching for one Trident model, "
        "for CPU machines and laptops; clients use --model triton://HOST:PORT/NAME. The server runs in its own venv "
        "(nvidia-pytriton, onnxruntime, numpy): make it once with --make-venv.",
    )
    p.add_argument("--make-venv", nargs="?", const="", default=None, metavar="DIR", help="create the server venv (default ~/.cache/trident/triton-server) and exit")
    p.add_argument("--base-python", default=None, help="interpreter the venv is made from (default /usr/bin/python3)")
    p.add_argument("--port", type=int, default=8001, help="gRPC port (clients: triton://HOST:PORT/NAME)")
    p.add_argument("--http-port", type=int, default=0, help="HTTP port (default: a free one)")
    p.add_argument("--metrics-port", type=int, default=0, help="Prometheus metrics port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for other machines)")
    p.add_argument("--python", default=None, help="interpreter of the server venv (default: the --make-venv one)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = every usable core)")
    p.add_argument("--repo", default=None, help="keep the generated repository here (default: a temporary folder)")
    _add_serving_options(p, model_required=False)  # not needed with --make-venv
    p.set_defaults(handler=_serve_model)


def _serve_model(args: argparse.Namespace) -> int:
    from engines.triton_repo import write_repository
    from engines.triton_serve import BASE_PYTHON, ServerProcess, find_server_python, make_server_venv

    if args.make_venv is not None:
        python = make_server_venv(args.make_venv or None, args.base_python or BASE_PYTHON)
        print(f"server venv ready: {python}")
        return 0
    if not args.model:
        raise TridentError("--model FILE.onnx is required (or --make-venv to prepare the server venv)")
    if not 0 < args.port < 65536:
        raise TridentError(f"--port {args.port} is not a TCP port (1..65535)")
    python = find_server_python(args.python)
    cfg = _serving_config(args)
    scratch = None if args.repo else tempfile.TemporaryDirectory(prefix="trident-triton-")
    repo = Path(args.repo or scratch.name)
    try:
        write_repository(args.model, repo, cfg)
        server = ServerProcess(repo, cfg.name, python, args.port, args.http_port, args.metrics_port, host=args.host, threads=args.threads)
        print(f"starting Triton for {cfg.name} (log: {server.log_path}) ...", flush=True)
        with server.start():
            print(f"serving triton://{args.host}:{args.port}/{cfg.name}  (HTTP {server.http_port}, metrics http://{args.host}:{server.metrics_port}/metrics); Ctrl-C stops", flush=True)
            stop = {"now": False}

            def on_signal(signum, _frame):
                stop["now"] = True

            previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                while server.alive() and not stop["now"]:
                    time.sleep(0.5)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            if not stop["now"]:
                raise TridentError(f"the Triton server stopped by itself (code {server.process.returncode}); see {server.log_path}")
        print("server stopped")
        return 0
    finally:
        if scratch is not None:
            scratch.cleanup()
