"""The HTTP API of `trident serve` (FastAPI): cameras, snapshots, MJPEG preview, events, Prometheus, a page.

Routes (README, "Cameras as a service"):

    GET    /                               page: every camera's live preview and counts
    GET    /streams                        every camera: state, fps, drops, reconnects, counts
    POST   /streams                        {"name", "uri", "zones"?}: add a camera while running
    GET    /streams/{name}                 one camera
    DELETE /streams/{name}                 remove it; its outputs are flushed and closed first
    GET    /streams/{name}/snapshot.jpg    the newest annotated frame
    GET    /streams/{name}/preview.mjpg    annotated live preview, multipart MJPEG at a capped rate
    GET    /events                         recent events (JSON); live ones as server-sent events
                                           when the request accepts text/event-stream
    GET    /metrics                        Prometheus text

With a token every route needs `Authorization: Bearer <token>`. A browser
cannot send that header for an <img>, so GET /?token=<token> sets it as an
HttpOnly, SameSite=Strict cookie and redirects to / (the token leaves the
address bar); the cookie is accepted for GET only, so nothing on another site
can add or remove a camera with it. Without a token the service binds
loopback only, and requests whose Host is not a loopback name are refused
(DNS rebinding: a web page the user opens could otherwise reach the API).

Every refusal is one JSON `{"detail": "<one line>"}` with a 4xx status.
"""

import asyncio
import hmac
import html
import json
from importlib import resources
from typing import Any

# no `from __future__ import annotations` here: FastAPI reads the route annotations as types
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from pipeline.errors import TridentError
from pipeline.serve.service import CameraService, ServiceError

COOKIE = "trident_token"
BOUNDARY = "trident-frame"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
PLACEHOLDER_AFTER_S = 1.0  # an MJPEG viewer of a camera with no picture yet gets a labelled placeholder
KEEPALIVE_S = 15.0  # a comment line on an idle event stream, so proxies do not cut it


class NewStream(BaseModel):
    """POST /streams: a camera to add."""

    model_config = ConfigDict(extra="forbid")
    name: str
    uri: str
    zones: dict[str, Any] | None = None  # like a zones file: {"lines": [...], "polygons": [...]}


def create_app(service: CameraService, token: str = "", allowed_hosts: list[str] | None = None) -> FastAPI:
    """The FastAPI application over `service`. `allowed_hosts`: Host header names accepted (None: any)."""
    from pipeline import __version__

    app = FastAPI(title="Trident camera service", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    def authorised(request: Request) -> None:
        if not token:
            return
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
            return
        if request.method == "GET" and hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), token.encode()):
            return
        raise HTTPException(
            401,
            "missing or wrong token: send 'Authorization: Bearer <token>' (the --token trident serve was started with)",
            headers={"WWW-Authenticate": "Bearer"},
        )

    auth = [Depends(authorised)]

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(TridentError)
    async def _trident_error(_request: Request, exc: TridentError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc.errors())}, status_code=422)

    @app.get("/streams", dependencies=auth)
    def list_streams() -> dict[str, Any]:
        return {"streams": service.streams()}

    @app.post("/streams", dependencies=auth, status_code=201)
    def add_stream(body: NewStream) -> dict[str, Any]:
        from pipeline.sources import SourceConfig

        service._check_name(body.name)  # before SourceConfig: its messages speak of config keys
        return service.add(SourceConfig(uri=body.uri, stream_id=body.name), zones=body.zones)

    @app.get("/streams/{name}", dependencies=auth)
    def one_stream(name: str) -> dict[str, Any]:
        return service.stream(name)

    @app.delete("/streams/{name}", dependencies=auth)
    def remove_stream(name: str) -> dict[str, Any]:
        return service.remove(name)

    @app.get("/streams/{name}/snapshot.jpg", dependencies=auth)
    def snapshot(name: str) -> Response:
        jpeg = service.preview(name).snapshot()
        if jpeg is None:
            state = service.stream(name)["state"]
            raise HTTPException(503, f"camera {name!r} has given no picture yet (state: {state}); try again once it is streaming")
        headers = {"Cache-Control": "no-store", "X-Frame-Index": str(jpeg.frame_index)}
        return Response(jpeg.data, media_type="image/jpeg", headers=headers)

    @app.get("/streams/{name}/preview.mjpg", dependencies=auth)
    async def preview(name: str) -> StreamingResponse:
        sink = service.preview(name)
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(_mjpeg(service, sink, name), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers=headers)

    @app.get("/events", dependencies=auth, response_model=None)
    async def events(request: Request, stream: str | None = None, limit: int = 100) -> Any:
        if stream is not None and stream not in service.names():
            raise HTTPException(404, f"no camera {stream!r}; GET /streams lists them")
        if not 1 <= limit <= service.opts.events_kept:
            raise HTTPException(422, f"limit must be 1..{service.opts.events_kept}, got {limit}")
        if "text/event-stream" in request.headers.get("accept", ""):
            headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
            return StreamingResponse(_sse(service, stream), media_type="text/event-stream", headers=headers)
        return {"events": [e.to_dict() for e in service.events.recent(limit, stream)]}

    @app.get("/metrics", dependencies=auth)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.prometheus_text(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_model=None)
    def page(request: Request) -> Any:
        offered = request.query_params.get("token")
        if token and offered is not None:
            if not hmac.compare_digest(offered.encode(), token.encode()):
                raise HTTPException(401, "wrong token in ?token=; use the --token trident serve was started with")
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            return response
        authorised(request)
        return HTMLResponse(render_page(service.streams()), headers={"Cache-Control": "no-store"})

    return app


async def _mjpeg(service: CameraService, sink: Any, name: str):
    """One viewer's parts: each new JPEG once; when the viewer is slower, the newest only."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def notify() -> None:  # on the sink's thread
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:
            pass  # the server's loop has closed

    sink.watch(notify)
    sent, waited = 0, 0.0
    try:
        yield f"--{BOUNDARY}\r\n".encode()  # each part then ends with the next boundary (_part)
        while not service.closing.is_set():
            wake.clear()
            jpeg = sink.latest
            if jpeg is not None and jpeg.seq != sent:
                sent = jpeg.seq
                yield _part(jpeg.data, jpeg.frame_index)
                continue
            if sink.closed:
                return
            if jpeg is None and sent == 0 and waited >= PLACEHOLDER_AFTER_S:
                sent = -1
                try:
                    state = service.stream(name)["state"]
                except ServiceError:  # removed meanwhile: its sink closes, the loop ends next turn
                    state = "removed"
                yield _part(placeholder_jpeg(f"{name}: {state}"), -1)
            try:
                await asyncio.wait_for(wake.wait(), 0.5)
            except asyncio.TimeoutError:
                waited += 0.5
    finally:
        sink.unwatch(notify)


def _part(data: bytes, frame_index: int) -> bytes:
    """One picture and the boundary after it: a browser shows a part only once the next boundary
    arrives, so a part that waited for the next picture's boundary would be shown one picture late
    (200 ms at 5 fps) - and never, in Chromium, when its camera went down right after it."""
    head = f"Content-Type: image/jpeg\r\nContent-Length: {len(data)}\r\nX-Frame-Index: {frame_index}\r\n\r\n"
    return head.encode() + data + f"\r\n--{BOUNDARY}\r\n".encode()


async def _sse(service: CameraService, stream: str | None):
    from pipeline.queues import Closed

    feed = service.events.subscribe()
    idle = 0.0
    try:
        yield ": trident events\n\n"
        while not service.closing.is_set():
            try:
                event = feed.get(timeout=0)
            except TimeoutError:
                await asyncio.sleep(0.05)  # the feed is a thread queue: a short poll, not a thread per client
                idle += 0.05
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                continue
            except Closed:
                return
            idle = 0.0
            if stream is None or event.stream_id == stream:
                yield f"id: {event.id}\ndata: {event.to_json()}\n\n"
    finally:
        service.events.unsubscribe(feed)


def _one_line(errors: list[dict[str, Any]]) -> str:
    """pydantic's error list as one readable line: `body.uri: Field required; body.nam: Extra inputs...`."""
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    hint = ' (expected JSON like {"name": "cam1", "uri": "rtsp://host/stream"})'
    return "; ".join(parts) + hint


_PLACEHOLDERS: dict[str, bytes] = {}


def placeholder_jpeg(text: str) -> bytes:
    """A grey 320x180 picture saying why there is no camera picture (never mistaken for one)."""
    if text not in _PLACEHOLDERS:
        import cv2
        import numpy as np

        image = np.full((180, 320, 3), 48, np.uint8)
        cv2.putText(image, text[:40], (10, 95), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 200, 200), 1, cv2.LINE_AA)
        if len(_PLACEHOLDERS) > 64:
            _PLACEHOLDERS.clear()
        _PLACEHOLDERS[text] = cv2.imencode(".jpg", image)[1].tobytes()
    return _PLACEHOLDERS[text]


def render_page(streams: list[dict[str, Any]]) -> str:
    """page.html with one card per camera already in it: the previews load with the page (no script
    needed to see them); the page's script then keeps the counts current and adds new cameras."""
    template = resources.files("pipeline.serve").joinpath("page.html").read_text(encoding="utf-8")
    cards = "\n".join(card_html(s["name"]) for s in streams)
    return template.replace("<!--CARDS-->", cards).replace("/*INITIAL*/null", json.dumps(streams).replace("</", "<\\/"))


def card_html(name: str) -> str:
    n = html.escape(name, quote=True)
    return (
        f'<section class="card" data-name="{n}"><h2>{n} <span class="state"></span></h2>'
        f'<img alt="{n} live preview" src="/streams/{n}/preview.mjpg"><table class="counts"></table></section>'
    )
