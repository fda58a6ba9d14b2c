"""`trident run` refuses what would fail later before anything runs, and always prints its latency table."""

from __future__ import annotations

import socket

from pipeline.cli import main


def _run(clip, model, out, *extra: str) -> list[str]:
    return ["run", "--source", str(clip), "--model", str(model), "--out", str(out), "--max-frames", "3", "--no-progress", *extra]


def test_metrics_json_into_a_missing_folder_is_refused_before_the_run(tmp_path, clips, tiny_onnx, capsys):
    target = tmp_path / "no" / "such" / "m.json"
    assert main(_run(clips[1], tiny_onnx, tmp_path / "out", "--metrics-json", str(target))) == 2
    err = capsys.readouterr().err
    assert f"--metrics-json {target}: the folder {target.parent} does not exist; create it or choose another path" in err
    assert not (tmp_path / "out" / "video_0000.jsonl").exists()  # refused before any frame was processed


def test_metrics_json_that_is_a_directory_is_refused(tmp_path, clips, tiny_onnx, capsys):
    assert main(_run(clips[1], tiny_onnx, tmp_path / "out", "--metrics-json", str(tmp_path))) == 2
    assert f"--metrics-json {tmp_path} is a directory; pass a file name" in capsys.readouterr().err


def test_a_prometheus_port_in_use_is_one_message(tmp_path, clips, tiny_onnx, capsys):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(_run(clips[1], tiny_onnx, tmp_path / "out", "--prometheus-port", str(port))) == 2
    err = capsys.readouterr().err
    assert f"--prometheus-port {port} cannot be served on 127.0.0.1" in err and "pick another port" in err
    assert "Traceback" not in err


def test_an_output_file_name_taken_by_a_directory_is_refused(tmp_path, clips, tiny_onnx, capsys):
    (tmp_path / "out" / "video_0000.jsonl").mkdir(parents=True)
    assert main(_run(clips[1], tiny_onnx, tmp_path / "out")) == 2
    assert f"output {tmp_path / 'out' / 'video_0000.jsonl'} is an existing directory" in capsys.readouterr().err
    assert not (tmp_path / "out" / "video_0000.mp4").exists()


def test_no_progress_still_prints_the_latency_table(tmp_path, clips, tiny_onnx, capsys):
    assert main(_run(clips[1], tiny_onnx, tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert "processed 3 frames" in out and "p50 ms" in out and "infer" in out


def test_a_one_line_error_that_quotes_a_source_url_never_shows_its_password(tmp_path, tiny_onnx, capsys):
    assert main(["run", "--model", str(tiny_onnx), "--out", str(tmp_path / "o"), "--set", "sources=[rtsp://admin:s3cr@t/pw@10.0.0.7/x"]) == 2
    err = capsys.readouterr().err
    assert "does not parse as YAML" in err and "admin:***@10.0.0.7" in err
    assert "s3cr" not in err and "t/pw" not in err


def test_the_progress_total_counts_max_frames(clips, tiny_onnx):
    import pipeline
    from pipeline.sources import SourceConfig

    pipe = pipeline.stream([SourceConfig(uri=str(clips[0]), max_frames=5), str(clips[1])], str(tiny_onnx))
    assert sum(1 for _ in pipe) == 5 + 15
    assert pipe.total_frames == 5 + 15  # the bar's total: what will be processed, not the files' lengths
