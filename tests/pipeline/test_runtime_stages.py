"""The runtime's stages: one drawing per frame for every picture sink, decode measured, one set of timings."""

from __future__ import annotations

import collections
import threading
import time

import av
import cv2
import numpy as np
import pytest

from pipeline.app import run
from pipeline.batcher import BatchConfig
from pipeline.config import build_run_config
from pipeline.contracts import Detections, Frame, FrameResult
from pipeline.draw import Annotator
from pipeline.errors import TridentError
from pipeline.metrics import Metrics
from pipeline.runtime import Pipeline
from pipeline.sinks import AnnotationStage, Picture, Sink, SinkRunner
from pipeline.sources import SourceConfig
from pipeline.sources.decode import timed_frames
from tests.pipeline.fakes import FakeEngine

FRAME_STAGES = ("decode", "preprocess", "infer", "postprocess", "track")


class FakeWindow:
    """cv2's window calls on a headless OpenCV: count what would be shown, per window."""

    def __init__(self, monkeypatch):
        self.shown: collections.Counter[str] = collections.Counter()
        self.closed: list[str] = []
        monkeypatch.setattr(cv2, "namedWindow", lambda title, flags=0: None)
        monkeypatch.setattr(cv2, "imshow", lambda title, image: self.shown.update([title]))
        monkeypatch.setattr(cv2, "waitKey", lambda delay=0: -1)
        monkeypatch.setattr(cv2, "destroyWindow", self.closed.append)


def _draw_spy(monkeypatch) -> list[tuple[int, str, int, int]]:
    """Record (annotator id, stream, frame index, thread id) for every Annotator.draw."""
    calls: list[tuple[int, str, int, int]] = []
    lock = threading.Lock()
    real = Annotator.draw

    def draw(self, result):
        with lock:
            calls.append((id(self), result.frame.stream_id, result.frame.index, threading.get_ident()))
        return real(self, result)

    monkeypatch.setattr(Annotator, "draw", draw)
    return calls


def _video_frames(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_video_images_and_window_share_one_drawing_per_frame_per_stream(clips, tmp_path, monkeypatch):
    window = FakeWindow(monkeypatch)
    draws = _draw_spy(monkeypatch)
    cfg = build_run_config({
        "sources": [str(clips[0]), str(clips[1])],
        "output": {"dir": str(tmp_path), "images_every": 5, "show": True},
        "progress": False,
    })
    summary = run(cfg, engine=FakeEngine(max_batch=4), progress=False)
    assert summary.frames == 24 + 15 and not summary.errors

    per_stream = collections.defaultdict(list)
    annotators = collections.defaultdict(set)
    for annotator, sid, index, _ in draws:
        per_stream[sid].append(index)
        annotators[sid].add(annotator)
    # each frame drawn exactly once, in frame order (trails follow the stream), by one Annotator per stream
    assert per_stream == {"video_0000": list(range(24)), "video_0000-2": list(range(15))}
    assert all(len(a) == 1 for a in annotators.values()) and annotators["video_0000"] != annotators["video_0000-2"]
    assert len({thread for *_, thread in draws}) == 2  # one annotation stage thread per stream

    # ... and every picture sink still got every picture
    assert window.shown == {"video_0000": 24, "video_0000-2": 15}
    assert sorted(window.closed) == ["video_0000", "video_0000-2"]
    assert _video_frames(tmp_path / "video_0000.mp4") == 24 and _video_frames(tmp_path / "video_0000-2.mp4") == 15
    assert sorted(p.name for p in (tmp_path / "video_0000_frames").iterdir()) == [f"{i:06d}.jpg" for i in (0, 5, 10, 15, 20)]
    assert sorted(p.name for p in (tmp_path / "video_0000-2_frames").iterdir()) == [f"{i:06d}.jpg" for i in (0, 5, 10)]
    assert summary.outputs["video_0000"] == [
        str(tmp_path / "video_0000.mp4"), str(tmp_path / "video_0000.mot.txt"), str(tmp_path / "video_0000.jsonl"),
        str(tmp_path / "video_0000_frames"), "video_0000",
    ]


def test_without_picture_sinks_nothing_is_drawn(clips, tmp_path, monkeypatch):
    draws = _draw_spy(monkeypatch)
    cfg = build_run_config({"sources": [str(clips[1])], "output": {"dir": str(tmp_path), "video": False}, "progress": False})
    summary = run(cfg, engine=FakeEngine(), progress=False)
    assert summary.frames == 15 and draws == []
    assert summary.outputs["video_0000"] == [str(tmp_path / "video_0000.mot.txt"), str(tmp_path / "video_0000.jsonl")]


class _Collect(Sink[Picture]):
    def __init__(self, name: str, fail_at: int = -1):
        self.name, self.fail_at = name, fail_at
        self.indices: list[int] = []
        self.writable: list[bool] = []
        self.closed = False

    def write(self, picture: Picture) -> None:
        if picture.result.frame.index == self.fail_at:
            raise RuntimeError("disk full")
        self.indices.append(picture.result.frame.index)
        self.writable.append(picture.image.flags.writeable)

    def close(self) -> None:
        self.closed = True


def _results(n: int) -> list[FrameResult]:
    image = np.zeros((32, 48, 3), np.uint8)
    return [FrameResult(Frame("cam", i, i / 10, image, 0.0), Detections.empty(), None, None, {}) for i in range(n)]


def test_a_failing_picture_sink_is_reported_and_the_others_keep_their_pictures():
    good, bad = _Collect("good"), _Collect("bad", fail_at=3)
    stage = AnnotationStage(Annotator(("thing",)), [good, bad])
    runner = SinkRunner(stage)
    for result in _results(10):
        runner.submit(result)
    runner.close()
    assert good.indices == list(range(10)) and bad.indices == [0, 1, 2]
    assert good.writable == [False] * 10  # the shared picture is read-only
    assert good.closed and bad.closed and stage.drawn == 10
    assert runner.errors() == {"bad": "RuntimeError: disk full"}


def test_the_stage_stops_drawing_once_every_picture_sink_failed():
    only = _Collect("only", fail_at=2)
    stage = AnnotationStage(Annotator(("thing",)), [only])
    runner = SinkRunner(stage)
    results = _results(40)
    for result in results[:3]:
        runner.submit(result)
    deadline = time.monotonic() + 10
    while stage.feeds[0].error is None and time.monotonic() < deadline:
        time.sleep(0.005)
    for result in results[3:]:
        runner.submit(result)
    runner.close()
    assert only.indices == [0, 1] and runner.errors() == {"only": "RuntimeError: disk full"}
    assert stage.drawn == 3 and runner.written == 40


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_decode_is_measured_for_every_frame_of_a_file(clips, decoder):
    pipe = Pipeline([SourceConfig(str(clips[0]), decoder=decoder)], FakeEngine())
    results = list(pipe)
    decode = pipe.metrics.summary()["stages"]["decode"]
    assert len(results) == 24 and decode["count"] == 24
    assert decode["mean_ms"] > 0 and all(r.timings["decode"] > 0 for r in results)


def test_decode_time_leaves_out_the_time_the_consumer_holds_a_frame(clips):
    held = 0.1
    decode_s = []
    with av.open(str(clips[1])) as container:
        for _, _, seconds in timed_frames(container, container.streams.video[0]):
            decode_s.append(seconds)
            time.sleep(held)  # a full queue downstream: not decoding
    assert len(decode_s) == 15 and all(0 < s < held for s in decode_s)


class RecordingMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, list[float]] = collections.defaultdict(list)

    def stage(self, name: str, seconds: float) -> None:
        self.calls[name].append(seconds)
        super().stage(name, seconds)


def test_frame_timings_are_exactly_what_the_metrics_recorded(clips):
    metrics, engine = RecordingMetrics(), FakeEngine(max_batch=4)
    pipe = Pipeline([SourceConfig(str(clips[0])), SourceConfig(str(clips[1]))], engine, batch=BatchConfig(max_batch=4), metrics=metrics)
    results = list(pipe)
    assert len(results) == 39
    assert all(tuple(r.timings) == FRAME_STAGES for r in results)
    for name in FRAME_STAGES:
        assert metrics.calls[name] == [r.timings[name] for r in results], name
    assert len(metrics.calls["sink"]) == 39
    stages = metrics.summary()["stages"]
    assert {name: stages[name]["count"] for name in (*FRAME_STAGES, "sink", "end_to_end")} == dict.fromkeys((*FRAME_STAGES, "sink", "end_to_end"), 39)
    # a batch's cost is split over its frames: frames of one engine call carry the same infer time
    assert max(engine.batch_sizes) > 1 and len({r.timings["infer"] for r in results}) <= engine.calls


class _Closing(Sink[FrameResult]):
    def __init__(self):
        self.name, self.written, self.closed = "closing", 0, False

    def write(self, result: FrameResult) -> None:
        self.written += 1

    def close(self) -> None:
        self.closed = True


def test_a_sink_that_cannot_open_ends_the_run_before_any_source_starts(clips):
    made: list[_Closing] = []

    def factory(source):
        if made:
            raise TridentError("no display for the second stream")
        made.append(_Closing())
        return made

    pipe = Pipeline([SourceConfig(str(clips[0])), SourceConfig(str(clips[1]))], FakeEngine(), sinks=factory)
    with pytest.raises(TridentError, match="no display"):
        list(pipe)
    assert made[0].closed and made[0].written == 0
    assert all(src.stats.frames == 0 and not src.is_alive() for src in pipe.sources.values())


def test_the_run_factory_closes_the_sinks_it_opened_when_a_later_one_fails(clips, tmp_path, monkeypatch):
    from pipeline.sinks import JsonlSink, MotSink, VideoSink, WindowSink

    closed: list[str] = []
    for cls in (VideoSink, MotSink, JsonlSink):
        real = cls.close
        monkeypatch.setattr(cls, "close", lambda self, real=real: (closed.append(self.name), real(self))[1])

    def no_display(self, title):
        raise TridentError("--show needs OpenCV with GUI support and a display")

    monkeypatch.setattr(WindowSink, "__init__", no_display)
    cfg = build_run_config({"sources": [str(clips[1])], "output": {"dir": str(tmp_path), "show": True}, "progress": False})
    with pytest.raises(TridentError, match="--show needs"):
        run(cfg, engine=FakeEngine(), progress=False)
    assert sorted(closed) == ["jsonl:video_0000.jsonl", "mot:video_0000.mot.txt", "video:video_0000.mp4"]
