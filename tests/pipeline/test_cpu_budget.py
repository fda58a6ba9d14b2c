"""The per-stage budget: CPU and wall time per stage and CPU by thread role, in the metrics of a real run."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from pipeline.cpu_budget import ThreadSampler, name_thread, read_threads

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names and CPU come from /proc (Linux)")


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        x += 1


@linux_only
def test_a_named_thread_and_its_cpu_are_seen_in_proc():
    seen = {}

    def work():
        name_thread("probe")
        _burn(0.15)
        seen.update(read_threads())

    t = threading.Thread(target=work)
    t.start()
    t.join()
    mine = [cpu for name, cpu in seen.values() if name == "trd:probe"]
    assert len(mine) == 1 and mine[0] >= 0.1


@linux_only
def test_sampler_counts_a_thread_that_ended_after_its_last_sample_by_role():
    sampler = ThreadSampler(period=10.0).start()  # no periodic sample: only the explicit ones count

    def work():
        name_thread("encode")
        _burn(0.2)
        sampler.sample()  # what a sink does before it closes

    t = threading.Thread(target=work)
    t.start()
    t.join()
    _burn(0.05)  # the main thread's own work
    sampler.close()
    groups = sampler.groups()
    assert groups["encode"] >= 0.15
    assert groups.get("main", 0.0) >= 0.03


def test_a_run_reports_cpu_and_wall_per_stage_and_cpu_by_thread(clips, tmp_path):
    from pipeline.app import run
    from pipeline.config import build_run_config
    from tests.pipeline.fakes import FakeEngine

    cfg = build_run_config({"sources": [str(clips[0])], "output": {"dir": str(tmp_path)}, "progress": False})
    summary = run(cfg, engine=FakeEngine())
    stages = summary.metrics["stages"]
    assert summary.frames == 24
    for stage in ("decode", "preprocess", "infer", "postprocess", "track", "draw", "encode", "jsonl", "mot"):
        assert "cpu_ms_mean" in stages[stage], stage
        assert stages[stage]["cpu_ms_mean"] >= 0.0
    for stage in ("queue", "draw", "encode", "jsonl", "mot"):
        assert stages[stage]["count"] == 24, stage
    assert stages["encode"]["cpu_ms_mean"] > 0 and stages["decode"]["cpu_ms_mean"] > 0
    # every output stage says how long after capture each frame left it
    assert {k: v["count"] for k, v in summary.metrics["delivered"].items()} == {"draw": 24, "encode": 24, "jsonl": 24, "mot": 24}
    if sys.platform.startswith("linux"):
        threads = summary.metrics["threads"]
        assert {"main", "decode", "encode", "draw"} <= set(threads), threads
        # /proc counts in clock ticks (10 ms): 24 small frames may encode in less than one
        assert all(t["cpu_s"] >= 0 and t["ms_per_frame"] == pytest.approx(t["cpu_s"] / 24 * 1e3, abs=0.01) for t in threads.values())
        assert threads["main"]["cpu_s"] > 0


def test_the_run_table_prints_a_cpu_column_and_the_thread_budget(clips, tmp_path, capsys):
    from pipeline.app import run
    from pipeline.config import build_run_config
    from tests.pipeline.fakes import FakeEngine

    cfg = build_run_config({"sources": [str(clips[1])], "output": {"dir": str(tmp_path)}, "progress": False})
    run(cfg, engine=FakeEngine())
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith("stage"))
    assert header.split()[-2:] == ["cpu", "ms"]
    encode = next(line for line in table.splitlines() if line.startswith("encode "))
    assert len(encode.split()) == 7 and float(encode.split()[-1]) >= 0
    if sys.platform.startswith("linux"):
        assert "threads (CPU)" in table


def test_the_post_process_runs_on_one_torch_and_blas_thread_and_gives_the_counts_back(clips):
    """numpy's OpenBLAS worker spin-waited after each mask product and burned 12 ms a frame."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from pipeline.runtime import Pipeline
    from pipeline.sources import SourceConfig
    from tests.pipeline.fakes import FakeEngine

    blas = lambda: {d["filepath"]: d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}  # noqa: E731
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            assert blas() and set(blas().values()) == {2}
            seen = []
            pipe = Pipeline([SourceConfig(str(clips[1]))], FakeEngine())
            for _ in pipe:
                seen.append((torch.get_num_threads(), set(blas().values())))
            assert seen and all(t == 1 and b == {1} for t, b in seen)
            assert torch.get_num_threads() == 2 and set(blas().values()) == {2}
    finally:
        torch.set_num_threads(before)


@linux_only
def test_ffmpeg_named_codec_threads_count_as_decode():
    sampler = ThreadSampler(period=10.0).start()

    def work():
        import ctypes

        ctypes.CDLL(None).prctl(15, b"av:h264:df0", 0, 0, 0)  # PR_SET_NAME, as FFmpeg 7 names a frame thread
        _burn(0.15)
        sampler.sample()

    t = threading.Thread(target=work)
    t.start()
    t.join()
    sampler.close()
    assert sampler.groups().get("decode", 0.0) >= 0.1


def test_the_pipeline_engine_gets_the_usable_cores_unless_told(monkeypatch):
    from engines.onnxruntime_engine import default_threads
    from pipeline.engine_choice import auto_concurrent, engine_options, pipeline_threads
    from pipeline.errors import TridentError

    assert [pipeline_threads(n) for n in (1, 2, 8)] == [1, 2, 8]
    assert [pipeline_threads(n, concurrent=2) for n in (1, 2, 8)] == [1, 1, 4]
    calls = auto_concurrent()
    assert calls == (2 if default_threads() >= 2 else 1)
    assert engine_options("m.onnx", "cpu", 0) == {"threads": pipeline_threads(concurrent=calls), "concurrent": calls}
    assert engine_options("m.onnx", "cpu", 1, 3) == {"threads": 1, "concurrent": 3}
    assert engine_options("m.onnx", "cpu", default_threads()) == {"threads": default_threads(), "concurrent": 1}
    assert engine_options("m.xml", "openvino", 0) == {"threads": pipeline_threads(concurrent=calls), "concurrent": calls}
    assert engine_options("m.onnx", "openvino", 1, 2) == {"threads": 1, "concurrent": 2}
    import pipeline.engine_choice as choice

    monkeypatch.setattr(choice, "_cpu_only", lambda: False)  # a CUDA host: auto puts the ONNX file on the GPU
    with pytest.raises(TridentError, match="only ONNX Runtime and OpenVINO on the CPU run several batches at once"):
        engine_options("m.onnx", "auto", 0, 2)
    assert engine_options("m.engine", "auto", 0) == {} and engine_options("triton://h:1/m", "auto", 0) == {}


def test_the_semantic_tint_is_the_blend_to_one_grey_level():
    import cv2

    from pipeline.contracts import Detections, Frame, FrameResult, SemanticMap
    from pipeline.draw import Annotator

    rng = np.random.default_rng(0)
    names = tuple("abcdefg")
    labels = rng.integers(0, len(names), (48, 64)).astype(np.uint8)
    image = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
    annotator = Annotator(("thing",), names)
    drawn = annotator.draw(FrameResult(Frame("s", 0, 0.0, image, 0.0), Detections.empty(), SemanticMap(labels, names)))
    blended = cv2.addWeighted(image, 1.0, annotator.sem_lut[labels], 0.35, 0)
    assert np.abs(drawn.astype(int) - blended).max() <= 1
    assert (drawn[labels == 0] == image[labels == 0]).all()  # background untinted
    assert (drawn != image).mean() > 0.5  # and the rest tinted


def test_annotator_pictures_stay_intact_while_it_draws_the_next_frames():
    """The overlay's temporaries are reused from frame to frame; the pictures handed to the sinks must not be."""
    from pipeline.contracts import Detections, Frame, FrameResult, SemanticMap
    from pipeline.draw import Annotator

    rng = np.random.default_rng(1)
    names = tuple("abcdefg")
    annotator = Annotator(("thing",), names)

    def result(i: int, hw=(48, 64)) -> FrameResult:
        labels = rng.integers(0, len(names), hw).astype(np.uint8)
        image = rng.integers(0, 256, (*hw, 3)).astype(np.uint8)
        return FrameResult(Frame("s", i, 0.0, image, 0.0), Detections.empty(), SemanticMap(labels, names))

    first = annotator.draw(result(0))
    kept = first.copy()
    second = annotator.draw(result(1))
    third = annotator.draw(result(2, hw=(32, 40)))  # another size: new temporaries
    np.testing.assert_array_equal(first, kept)
    assert not np.shares_memory(first, second) and third.shape == (32, 40, 3)


def test_cpu_semantic_labels_equal_the_torch_path_on_real_model_outputs():
    """The CPU post-process argmaxes OpenCV-resized logits; the GPU one torch's. Same labels (ties aside)."""
    import torch

    from engines.loader import load_engine
    from engines.postprocess import _argmax_cpu, _argmax_torch
    from engines.preprocess import letterbox_batch
    from pipeline.bench_command import video_frames
    from pipeline.commands import BUNDLED_CLIP, BUNDLED_ONNX, asset

    engine = load_engine(asset(BUNDLED_ONNX), device="cpu")
    frames = video_frames(asset(BUNDLED_CLIP), 3)
    frames.append(np.ascontiguousarray(frames[0][:300, :400]))  # another aspect ratio: padding on the other axis
    equal = total = 0
    for frame in frames:
        batch, (lb,) = letterbox_batch([frame], engine.spec.input_hw)
        logits = torch.from_numpy(engine.infer(batch).sem_logits[0])
        a, b = _argmax_cpu(logits, lb), _argmax_torch(logits, lb)
        assert a.shape == b.shape == tuple(lb.resized_hw) and a.dtype == np.uint8
        equal += int((a == b).sum())
        total += a.size
    assert equal / total >= 0.9999, f"{total - equal} of {total} labels differ"
