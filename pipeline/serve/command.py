"""`trident serve`: the camera service from the command line (uvicorn in the main thread, the pipeline in another).

Binding: 127.0.0.1 by default. Any other address exposes every camera's
picture and lets anyone add cameras, so it is refused without a token.
The port is bound here, before the model loads, so a taken port is one clear
line at once; `--port 0` takes a free one (the line printed at start says
which).

Stopping: SIGINT/SIGTERM first end the live responses and stop the cameras
(uvicorn would otherwise wait for MJPEG and event streams that never end),
then every camera's outputs are flushed and closed, then the process exits 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import signal
import socket
from pathlib import Path

from pipeline.errors import TridentError

log = logging.getLogger("trident.serve")

GRACEFUL_S = 5  # uvicorn's wait for open responses after a stop signal (ours end at once)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="the pipeline as a service: HTTP API to add/remove cameras, snapshots, live MJPEG preview, events, Prometheus",
        description="Runs the pipeline as a long-running service with an HTTP API (needs the `serve` extra: "
        "pip install 'trident-vision[serve]'). Cameras come from --config/--source at start and from "
        "POST /streams while it runs. Binds 127.0.0.1 unless told otherwise; any other address needs --token.",
    )
    p.add_argument("--model", default=None, help=".onnx (ONNX Runtime), .engine/.plan (TensorRT), .pt or triton://")
    p.add_argument("--config", default=None, help="YAML/TOML RunConfig: its sources start with the service; CLI flags override it")
    p.add_argument("--source", action="append", default=[], metavar="URI", help="a camera to start with (repeat for more)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    p.add_argument("--token", default=None, help="bearer token every request must carry (visible in `ps`; prefer --token-file)")
    p.add_argument("--token-file", default=None, help="read the bearer token from this file (first line)")
    p.add_argument("--out", default=None, help="write each camera's outputs (per the config's output section) under DIR/<name>/<time>/")
    p.add_argument("--preview-fps", type=float, default=5.0, help="live preview pictures per camera per second, at most (default 5)")
    p.add_argument("--device", default=None, help="engine device: auto | cpu | cuda | tensorrt")
    p.add_argument("--tracker", default=None, choices=("bytetrack", "ocsort", "sort", "none"), help="tracker per camera (default bytetrack)")
    p.add_argument("--batch", type=int, default=None, help="frames per engine call across cameras")
    p.add_argument("--score-threshold", type=float, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config field, e.g. tracker.high_score=0.5")
    p.set_defaults(handler=_serve)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def read_token(args: argparse.Namespace) -> str:
    if args.token is not None and args.token_file is not None:
        raise TridentError("give --token or --token-file, not both")
    if args.token_file is not None:
        try:
            lines = Path(args.token_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise TridentError(f"--token-file {args.token_file}: {exc.strerror or exc}; give a readable file holding the token") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise TridentError(f"--token-file {args.token_file} is empty; write the token on its first line")
        return token
    token = args.token or ""
    if args.token is not None and not token.strip():
        raise TridentError("--token is empty; give a long random string (e.g. from `openssl rand -hex 16`)")
    return token.strip()


def check_binding(host: str, token: str) -> None:
    if not is_loopback(host) and not token:
        raise TridentError(
            f"--host {host} would let anyone who can reach this machine watch every camera and add or remove cameras; "
            "pass --token (or --token-file) to require a bearer token, or keep the default --host 127.0.0.1"
        )


def bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise TridentError(f"--port must be 0..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise TridentError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port (0 = any free one) or --host") from None
    return sock


def _config(args: argparse.Namespace):
    from pipeline.commands import apply_tracker_and_sets
    from pipeline.config import apply_override, build_run_config, expand_patterns, load_config_file, source_list

    data = dict(load_config_file(args.config)) if args.config else {}
    data["sources"] = expand_patterns(source_list(data.get("sources", [])) + [{"uri": s} for s in args.source])
    for assignment, value in (
        ("engine.model", args.model),
        ("engine.device", args.device),
        ("batch.max_batch", args.batch),
        ("postprocess.score_threshold", args.score_threshold),
    ):
        if value is not None:
            apply_override(data, f"{assignment}={json.dumps(value)}")
    apply_tracker_and_sets(data, args)
    cfg = build_run_config(data)
    if not cfg.engine.model:
        raise TridentError("no model given; pass --model model.onnx (the bundled one: trident demo prints where it is)")
    return cfg


def _serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise TridentError(f"trident serve needs FastAPI and uvicorn ({exc.name} is missing): pip install 'trident-vision[serve]'") from None
    from pipeline.engine_choice import load_run_engine
    from pipeline.serve.app import LOOPBACK_HOSTS, create_app
    from pipeline.serve.service import CameraService, ServeOptions

    token = read_token(args)
    check_binding(args.host, token)
    cfg = _config(args)
    opts = ServeOptions(out=args.out or "", preview_fps=args.preview_fps)
    if opts.out:
        from pipeline.app import _check_out_dir

        _check_out_dir(Path(opts.out))
    sock = bind(args.host, args.port)
    try:
        engine = load_run_engine(cfg.engine.model, cfg.engine.device, cfg.engine.threads, cfg.engine.concurrent)  # as `trident run` loads it
        service = CameraService(cfg, engine, opts)
    except BaseException:
        sock.close()
        raise
    # without a token only loopback names may reach it (a rebound DNS name is refused); with one, any
    allowed = None if token else sorted({*LOOPBACK_HOSTS, args.host})
    app = create_app(service, token, allowed)
    # before uvicorn's own handlers: it restores these after the shutdown and re-raises the signal into them
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: service.begin_close())

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:  # noqa: ANN001 - uvicorn's signature
            log.warning("signal %d: stopping; every camera's outputs will be flushed and closed", sig)
            service.begin_close()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=GRACEFUL_S)
    server = Server(config)
    try:
        service.start()
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        names = service.names()
        print(f"trident serve: http://{shown}:{port}/  ({len(names)} camera(s){': ' + ', '.join(names) if names else ''}; Ctrl-C to stop)", flush=True)
        server.run(sockets=[sock])
    finally:
        service.close()
        sock.close()
    print("stopped: every camera's outputs were flushed and closed", flush=True)
    if service.failure:
        print(f"error: the pipeline stopped: {service.failure}", flush=True)
        return 1
    return 0
