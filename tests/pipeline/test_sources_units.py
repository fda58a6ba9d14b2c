"""Source addresses, Jetson GStreamer strings and metrics text: pure functions, checked as strings and numbers."""

from __future__ import annotations

import urllib.request

import pytest

from pipeline.metrics import Metrics, PrometheusServer
from pipeline.sources import SourceConfig, classify, redact, stream_name
from pipeline.sources.jetson import jetson_csi_pipeline, jetson_file_pipeline, jetson_rtsp_pipeline
from pipeline.errors import TridentError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rtsp://admin:pa55@10.0.0.7:554/live", "rtsp://admin:***@10.0.0.7:554/live"),
        ("error opening 'rtsp://u:p@h/x' and 'http://a:b@c/'", "error opening 'rtsp://u:***@h/x' and 'http://a:***@c/'"),
        ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
        ("/videos/a:b@c.mp4", "/videos/a:b@c.mp4"),
    ],
)
def test_redact_hides_every_password(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "uri, kind",
    [("0", "webcam"), ("/dev/video2", "webcam"), ("rtsp://h/s", "rtsp"), ("http://h/s.m3u8", "rtsp"), ("clip.mp4", "file"),
     ("videotestsrc ! videoconvert ! appsink", "gstreamer")],
)
def test_classify_picks_the_source_kind(uri, kind):
    assert classify(uri) == kind


def test_stream_names_are_short_and_password_free():
    assert stream_name("rtsp://admin:pw@192.168.1.20:554/cam/1") == "192-168-1-20-554_cam_1"
    assert stream_name("/data/videos/street.mp4") == "street"
    assert stream_name("2") == "webcam2"


def test_jetson_rtsp_pipeline_uses_hardware_decode_and_drops_stale_frames():
    s = jetson_rtsp_pipeline("rtsp://cam/1", codec="h265", latency_ms=100, width=1280, height=720)
    assert s == (
        "rtspsrc location=rtsp://cam/1 latency=100 protocols=tcp ! rtph265depay ! h265parse ! nvv4l2decoder ! "
        "nvvidconv ! video/x-raw,format=BGRx,width=1280,height=720 ! videoconvert ! video/x-raw,format=BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )
    assert classify(s) == "gstreamer"


def test_jetson_file_and_csi_pipelines():
    f = jetson_file_pipeline("/data/a.mp4")
    assert f.startswith("filesrc location=/data/a.mp4 ! qtdemux ! h264parse ! nvv4l2decoder ! nvvidconv")
    assert "drop=true" not in f  # files lose nothing
    c = jetson_csi_pipeline(sensor_id=1, width=1920, height=1080, fps=60)
    assert c.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,height=1080,framerate=60/1 ! nvvidconv")


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: jetson_rtsp_pipeline("rtsp://c/1", codec="vp9"), "codec must be h264 or h265"),
        (lambda: jetson_rtsp_pipeline("http://c/1"), "needs an rtsp:// URI"),
        (lambda: jetson_csi_pipeline(fps=0), "fps > 0"),
        (lambda: SourceConfig("rtsp://c", rtsp_transport="sctp"), "rtsp_transport must be tcp or udp"),
        (lambda: SourceConfig("rtsp://c", reconnect_initial_s=5, reconnect_max_s=1), "reconnect backoff"),
    ],
)
def test_bad_source_settings_are_clear_errors(call, needle):
    with pytest.raises(TridentError, match=needle):
        call()


def test_metrics_percentiles_and_prometheus_endpoint():
    m = Metrics()
    for ms in range(1, 101):
        m.stage("infer", ms / 1e3)
    m.stream("cam").frames = 5
    s = m.summary()
    assert s["stages"]["infer"]["count"] == 100
    assert s["stages"]["infer"]["p50_ms"] == pytest.approx(50.5) and s["stages"]["infer"]["p99_ms"] == pytest.approx(99.01)
    server = PrometheusServer(m, port=0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.close()
    assert 'trident_stage_latency_seconds_count{stage="infer"} 100' in body
    assert 'trident_stream_frames_total{stream="cam"} 5' in body
    assert 'trident_stage_latency_seconds{stage="infer",quantile="0.50"} 0.050500' in body


def _run_source(uri: str, **kw):
    import threading

    from pipeline.sources import make_source

    src = make_source(SourceConfig(uri, reconnect_initial_s=0.05, reconnect_max_s=0.1, **kw), threading.Event())
    src.start()
    src.join(15)
    return src


def test_missing_webcam_fails_after_its_retry_budget():
    src = _run_source("/dev/video99", max_reconnects=1)
    assert not src.is_alive() and src.stats.frames == 0
    assert src.error == "webcam /dev/video99 gave no frames after 2 attempt(s); check that the device exists (ls /dev/video*) and that no other program holds it"


def test_gstreamer_source_without_gstreamer_opencv_says_what_to_install():
    from pipeline.sources.capture import opencv_has_gstreamer

    if opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    src = _run_source("videotestsrc num-buffers=5 ! videoconvert ! appsink")
    assert "no GStreamer support" in src.error and "JetPack" in src.error


def _next_native_id() -> int:
    """The kernel's next task id, as far as a new thread shows it (ids are handed out in order)."""
    import threading

    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    return t.native_id


def test_frames_convert_to_bgr_without_starting_threads():
    """PyAV >= 17 gives every to_ndarray conversion its own libswscale thread pool (two threads
    started and stopped a frame); to_bgr converts on the calling thread, to the same pixels."""
    from pathlib import Path

    import av
    import numpy as np

    from pipeline.sources.decode import to_bgr

    clip = Path(__file__).resolve().parents[2] / "pipeline" / "assets" / "demo_clip.mp4"
    with av.open(str(clip)) as container:
        frames = [f for _, f in zip(range(100), container.decode(video=0))]
    before = _next_native_id()
    images = [to_bgr(f) for f in frames]
    started = _next_native_id() - before - 1
    # 100 conversions with the default pool start ~200 threads; other processes on the machine may
    # take a few ids in between, never a hundred
    assert started < 50, f"{started} tasks started while converting 100 frames"
    assert images[0].shape == (frames[0].height, frames[0].width, 3) and images[0].dtype == np.uint8
    assert all(np.array_equal(a, f.to_ndarray(format="bgr24")) for a, f in zip(images[:5], frames[:5]))
