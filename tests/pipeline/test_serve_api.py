"""`trident serve`'s HTTP API against a real RTSP camera (GStreamer on 127.0.0.1): add a camera while the
service runs, read it, take a snapshot and MJPEG parts of its annotated preview, remove it with its
outputs closed; an unreachable camera disturbs nobody; bad requests and missing tokens are refused."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="trident serve needs the `serve` extra (FastAPI, uvicorn)")
pytest.importorskip("uvicorn", reason="trident serve needs the `serve` extra (FastAPI, uvicorn)")

from pipeline.commands import asset  # noqa: E402
from tests.pipeline.fakes import FakeEngine  # noqa: E402
from tests.support.rtsp import RtspServer, free_port, rtsp_available  # noqa: E402
from tests.support.serve import Served, mjpeg_parts  # noqa: E402

needs_rtsp = pytest.mark.skipif(not rtsp_available(), reason="GStreamer RTSP server not installed (see .ci/run for the Debian packages)")


def _decode(jpeg: bytes) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    return image


@pytest.fixture
def served(request):
    made: list[Served] = []

    def start(**kw):
        made.append(Served(kw.pop("engine", None) or FakeEngine(), **kw))
        return made[-1]

    yield start
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def camera():
    if not rtsp_available():
        pytest.skip("GStreamer RTSP server not installed (see .ci/run for the Debian packages)")
    with RtspServer(clip=asset("demo_clip.mp4")) as server:  # 640x384 H.264, looped
        yield server


@pytest.mark.rtsp
@needs_rtsp
def test_a_camera_added_while_serving_gives_snapshots_and_a_capped_mjpeg_preview_and_is_removed_cleanly(served, camera, tmp_path):
    s = served(out=str(tmp_path), preview_fps=5.0)
    assert s.json("GET", "/streams") == (200, {"streams": []})  # a service with no camera runs
    status, entry = s.json("POST", "/streams", {"name": "cam1", "uri": camera.url.replace("rtsp://", "rtsp://admin:s3cret@")})
    assert status == 201 and entry["name"] == "cam1"
    assert "s3cret" not in json.dumps(entry)  # the password never leaves in the API
    entry = s.wait_for("cam1", lambda e: e["state"] == "streaming" and e["frames"] >= 5)
    assert entry["state"] == "streaming" and entry["frames"] >= 5, entry
    assert entry["preview"]["jpegs"] == 0  # nobody watched: nothing was drawn or encoded for the preview

    status, headers, jpeg = s.request("GET", "/streams/cam1/snapshot.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert _decode(jpeg).shape == (384, 640, 3)  # the camera's own size

    ctype, parts, seconds = mjpeg_parts(s.port, "/streams/cam1/preview.mjpg", 8)
    assert ctype.startswith("multipart/x-mixed-replace")
    assert len(parts) == 8
    assert all(_decode(jpeg).shape == (384, 640, 3) for _, jpeg in parts)
    indexes = [int(h["x-frame-index"]) for h, _ in parts]
    assert indexes == sorted(indexes) and len(set(indexes)) == 8  # new pictures, in order
    # the cap: 5 pictures a second at most while a 30 fps camera streams (the first part is the
    # snapshot's picture, then one per 0.2 s)
    assert seconds >= (8 - 2) / 5.0, f"8 parts in {seconds:.2f} s: the preview rate is not capped"

    status, removed = s.json("DELETE", "/streams/cam1")
    assert status == 200 and removed["state"] == "removed"
    assert s.json("GET", "/streams") == (200, {"streams": []})
    assert s.request("GET", "/streams/cam1/snapshot.jpg")[0] == 404
    # its outputs were closed before DELETE answered: the MP4 holds every frame the JSONL does
    import av

    video = next(p for p in removed["outputs"] if p.endswith(".mp4"))
    lines = sum(1 for _ in open(next(p for p in removed["outputs"] if p.endswith(".jsonl"))))
    with av.open(video) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert lines >= entry["frames"] and decoded == lines


@pytest.mark.rtsp
@needs_rtsp
def test_an_unreachable_camera_is_accepted_at_once_and_disturbs_no_other_camera(served):
    s = served()
    with RtspServer() as camera:  # a generated live pattern that never ends (a looped clip restarts each loop)
        assert s.json("POST", "/streams", {"name": "live", "uri": camera.url})[0] == 201
        before = s.wait_for("live", lambda e: e["frames"] >= 5)["frames"]
        started = time.monotonic()
        status, dead = s.json("POST", "/streams", {"name": "dead", "uri": f"rtsp://127.0.0.1:{free_port()}/nothing"})
        assert status == 201 and time.monotonic() - started < 3.0  # connecting happens on its own thread
        live = s.wait_for("live", lambda e: e["frames"] >= before + 10, timeout=20)  # while the other one tries
        assert live["state"] == "streaming" and live["frames"] >= before + 10, live
        dead = s.wait_for("dead", lambda e: e["state"] in ("reconnecting", "closed"), timeout=20)
        assert dead["state"] in ("connecting", "reconnecting", "closed") and dead["frames"] == 0
        # a viewer of a camera with no picture gets a labelled placeholder, not a hung response
        _, parts, _ = mjpeg_parts(s.port, "/streams/dead/preview.mjpg", 1, timeout=10)
        assert int(parts[0][0]["x-frame-index"]) == -1 and _decode(parts[0][1]).shape == (180, 320, 3)
        assert s.request("GET", "/streams/dead/snapshot.jpg")[0] == 503
        started = time.monotonic()
        assert s.json("DELETE", "/streams/dead")[0] == 200
        assert time.monotonic() - started < 5.0
        assert s.json("GET", "/streams/live")[1]["state"] == "streaming"


@pytest.mark.rtsp
@needs_rtsp
def test_a_viewer_watching_ends_when_its_camera_is_removed(served, camera):
    s = served()
    s.json("POST", "/streams", {"name": "cam", "uri": camera.url})
    s.wait_for("cam", lambda e: e["frames"] >= 3)
    result: dict = {}
    reader = threading.Thread(target=lambda: result.update(parts=mjpeg_parts(s.port, "/streams/cam/preview.mjpg", 10_000, timeout=20)[1]))
    reader.start()
    assert s.wait_for("cam", lambda e: e["preview"]["viewers"] == 1, timeout=10)["preview"]["viewers"] == 1
    time.sleep(0.5)
    s.json("DELETE", "/streams/cam")
    reader.join(10)
    assert not reader.is_alive(), "the MJPEG response did not end with its camera"
    assert len(result["parts"]) >= 1


@pytest.mark.rtsp
@needs_rtsp
def test_a_cameras_zones_give_counts_and_its_stream_events_reach_the_event_feed(served, camera):
    s = served()
    zones = {"lines": [{"name": "door", "points": [[320, 0], [320, 384]]}], "polygons": [{"name": "lobby", "points": [[0, 0], [200, 0], [200, 200], [0, 200]]}]}
    status, entry = s.json("POST", "/streams", {"name": "cam", "uri": camera.url, "zones": zones})
    assert status == 201 and set(entry["counts"]) == {"door", "lobby"}
    s.wait_for("cam", lambda e: e["frames"] >= 3)
    deadline = time.monotonic() + 10
    while not (events := s.json("GET", "/events?stream=cam")[1]["events"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [e["kind"] for e in events][:1] == ["stream_up"]  # from the source's thread, through the event bus


def test_bad_requests_get_a_4xx_with_one_message(served, clips):
    s = served()
    cases = [
        ("POST", "/streams", None, b"{not json", 422, "json"),
        ("POST", "/streams", {"name": "x"}, None, 422, "body.uri: Field required"),
        ("POST", "/streams", {"name": "x", "uri": "a.mp4", "colour": 1}, None, 422, "body.colour: Extra inputs"),
        ("POST", "/streams", {"name": "a b/../c", "uri": str(clips[0])}, None, 422, "camera name 'a b/../c' is not usable"),
        ("POST", "/streams", {"name": "x", "uri": "rstp://127.0.0.1/x"}, None, 422, "unknown scheme 'rstp://'"),
        ("POST", "/streams", {"name": "x", "uri": "videotestsrc ! appsink"}, None, 422, "GStreamer pipeline"),
        ("POST", "/streams", {"name": "x", "uri": str(clips[0]), "zones": {"lines": [{"name": "d", "points": [[1, 2]]}]}}, None, 422, "needs at least 2 points"),
        ("POST", "/streams", {"name": "x", "uri": str(clips[0]), "zones": {"lines": [{"name": "d", "points": [[0, 0], [9, 9]], "classes": ["cat"]}]}}, None, 422, "'cat' is not a class of the model"),
        ("POST", "/streams", {"name": "x", "uri": str(clips[0]), "zones": "/etc/zones.yaml"}, None, 422, "body.zones"),
        ("DELETE", "/streams/nope", None, None, 404, "no camera 'nope'"),
        ("GET", "/streams/nope/snapshot.jpg", None, None, 404, "no camera 'nope'"),
        ("GET", "/streams/nope/preview.mjpg", None, None, 404, "no camera 'nope'"),
        ("GET", "/events?stream=nope", None, None, 404, "no camera 'nope'"),
        ("GET", "/events?limit=0", None, None, 422, "limit must be"),
    ]
    for method, path, body, raw, status, message in cases:
        got, headers, data = s.request(method, path, body, raw=raw)
        assert got == status, (method, path, got, data)
        detail = json.loads(data)["detail"]
        assert isinstance(detail, str) and message.lower() in detail.lower() and "\n" not in detail, (path, detail)
    assert s.json("POST", "/streams", {"name": "cam", "uri": str(clips[0])})[0] == 201
    status, err = s.json("POST", "/streams", {"name": "CAM", "uri": str(clips[0])})
    assert status == 409 and "'cam' exists already" in err["detail"]
    assert [e["name"] for e in s.json("GET", "/streams")[1]["streams"]] == ["cam"]  # the refusals changed nothing


def test_with_a_token_every_route_refuses_a_request_without_it(served):
    s = served(token="t0k3n-for-tests")
    for path in ("/streams", "/events", "/metrics", "/", "/streams/x/snapshot.jpg"):
        status, headers, _ = s.request("GET", path, auth=False)
        assert status == 401 and headers["www-authenticate"] == "Bearer", path
        assert s.request("GET", path, auth=False, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert s.request("POST", "/streams", {"name": "a", "uri": "a.mp4"}, auth=False)[0] == 401
    assert s.request("GET", "/streams")[0] == 200 and s.request("GET", "/metrics")[0] == 200
    # the page: ?token= becomes an HttpOnly cookie, good for GETs only
    status, headers, _ = s.request("GET", "/?token=t0k3n-for-tests", auth=False)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"].split(";")[0]
    assert "httponly" in headers["set-cookie"].lower() and "samesite=strict" in headers["set-cookie"].lower()
    assert s.request("GET", "/", auth=False, headers={"Cookie": cookie})[0] == 200
    assert s.request("GET", "/streams", auth=False, headers={"Cookie": cookie})[0] == 200
    assert s.request("POST", "/streams", {"name": "a", "uri": "a.mp4"}, auth=False, headers={"Cookie": cookie})[0] == 401
    assert s.request("GET", "/?token=wrong", auth=False)[0] == 401


def test_without_a_token_only_loopback_host_names_are_served(served):
    s = served()
    assert s.request("GET", "/streams")[0] == 200
    assert s.request("GET", "/streams", headers={"Host": f"localhost:{s.port}"})[0] == 200
    # a page on another site whose name was rebound to 127.0.0.1 sends its own Host: refused
    assert s.request("GET", "/streams", headers={"Host": "attacker.example"})[0] == 400


def test_recent_events_and_live_server_sent_events(served):
    from pipeline.contracts import Event

    s = served()
    feed = s.service.events
    feed.submit(Event("cam", 7, 0.25, time.time(), "line_cross", zone="door", track_id=3, class_id=0, box=(1, 2, 3, 4), extra={"direction": "in"}))
    status, body = s.json("GET", "/events")
    assert status == 200 and [(e["kind"], e["zone"], e["direction"], e["frame"]) for e in body["events"]] == [("line_cross", "door", "in", 7)]

    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("GET", "/events", headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    assert resp.readline().startswith(b":")  # the stream is open: now an event happens
    feed.submit(Event("cam", 9, 0.5, time.time(), "zone_enter", zone="lobby", track_id=4, class_id=0, box=(1, 2, 3, 4)))
    lines = [resp.readline() for _ in range(3)]
    conn.close()
    data = json.loads(next(line for line in lines if line.startswith(b"data: "))[6:])
    assert (data["kind"], data["zone"], data["frame"], data["schema"]) == ("zone_enter", "lobby", 9, "trident.event/1")


def test_metrics_are_prometheus_text_with_the_preview_gauges(served, clips):
    s = served()
    s.json("POST", "/streams", {"name": "clip", "uri": str(clips[0])})
    s.wait_for("clip", lambda e: e["state"] == "closed" and e["frames"] == 24)  # decoded, then processed
    status, headers, body = s.request("GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'trident_stream_frames_total{stream="clip"} 24' in text
    assert 'trident_preview_viewers{stream="clip"} 0' in text
