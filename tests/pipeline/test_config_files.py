"""Config files and overrides of the wrong shape or type: one message naming the key, nothing run, nothing written."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.config import build_run_config
from pipeline.config_files import apply_override, load_config_file
from pipeline.errors import TridentError


def _run_config(tmp_path, text: str, capsys, *extra: str) -> tuple[int, str]:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(text)
    rc = main(["run", "--config", str(cfg), "--out", str(tmp_path / "out"), "--no-progress", *extra])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(
    "text, message",
    [
        ("sources: /data/clip.mp4\nengine: {model: m.onnx}\n", "config key 'sources' must be a list of sources, got str '/data/clip.mp4'; write it as a list: sources: [/data/clip.mp4]"),
        ("sources: [a.mp4]\nengine: {model: m.onnx, threads: -3}\n", "engine.threads must be >= 0"),
        ("sources: [a.mp4]\nengine: {model: m.onnx, threads: true}\n", "config key 'engine.threads' must be a number, got true"),
        ("sources: [a.mp4]\nengine: {model: m.onnx}\noutput: {video_fps: -5}\n", "output.video_fps must be >= 0"),
        ("sources: [a.mp4]\nengine: {model: m.onnx}\nbatch: {max_batch: 2.5}\n", "config key 'batch.max_batch' must be a whole number, got 2.5"),
        ("sources: [a.mp4]\nengine: {model: m.onnx}\ntracker: {high_score: high}\n", "config key 'tracker.high_score' must be a number, got the string 'high'"),
        ("sources: [a.mp4]\nengine: m.onnx\n", "config key 'engine' must be a table/mapping, got the string 'm.onnx'"),
        ("sources: [a.mp4\nengine: {model: m.onnx}\n", "does not parse: line 2, column"),
        ("- a.mp4\n- b.mp4\n", "must hold a mapping (key: value lines) at the top level, got a list"),
    ],
)
def test_a_config_value_of_the_wrong_shape_is_one_message_naming_the_key(tmp_path, capsys, text, message):
    rc, err = _run_config(tmp_path, text, capsys)
    assert rc == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_a_bare_source_string_never_becomes_one_source_per_character():
    with pytest.raises(TridentError, match="must be a list of sources"):
        build_run_config({"sources": "/data/clip4.mp4"})


def test_set_with_a_broken_value_or_a_scalar_for_sources_is_a_message(tmp_path, capsys):
    rc = main(["run", "--source", "a.mp4", "--model", "m.onnx", "--out", str(tmp_path / "o"), "--set", "tracker.high_score=[1,"])
    err = capsys.readouterr().err
    assert rc == 2 and "override 'tracker.high_score=[1,': the value does not parse as YAML" in err
    rc = main(["run", "--model", "m.onnx", "--out", str(tmp_path / "o"), "--set", "sources=5"])
    assert rc == 2 and "config key 'sources' must be a list of sources, got int '5'" in capsys.readouterr().err


def test_a_config_path_that_is_a_directory_or_not_utf8_is_named(tmp_path):
    with pytest.raises(TridentError, match=f"config file {tmp_path} is a directory"):
        load_config_file(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("sources: [caf\xe9.mp4]\n".encode("latin-1"))
    with pytest.raises(TridentError, match="is not UTF-8 text \\(bad byte at offset 13\\); save it as UTF-8"):
        load_config_file(bad)
    toml = tmp_path / "run.toml"
    toml.write_text("sources = [\"a.mp4\"]\nengine = {model = }\n")
    with pytest.raises(TridentError, match="run.toml does not parse: .*line"):
        load_config_file(toml)


def test_overrides_parse_as_yaml_and_nest():
    data: dict = {}
    apply_override(data, "tracker.high_score=0.5")
    apply_override(data, "output.video=false")
    apply_override(data, "sources=[a.mp4, b.mp4]")
    cfg = build_run_config(data)
    assert cfg.tracker.high_score == 0.5 and cfg.output.video is False
    assert [s.uri for s in cfg.sources] == ["a.mp4", "b.mp4"]


@pytest.mark.parametrize(
    "output, message",
    [({"video_preset": "warp9"}, "output.video_preset must be one of ultrafast"), ({"video_crf": 60}, "output.video_crf must be 0..51")],
)
def test_a_bad_video_encoder_setting_is_one_message_naming_the_key(output, message):
    with pytest.raises(TridentError, match=message):
        build_run_config({"sources": ["a.mp4"], "output": output})


def test_the_video_encoder_settings_reach_the_mp4(tmp_path):
    """A lower crf (better quality) makes a larger file of the same frames: the setting is applied."""
    import numpy as np

    from pipeline.sinks.annotation import Picture
    from pipeline.sinks.video import VideoSink

    rng = np.random.default_rng(3)
    images = list(rng.integers(0, 255, (12, 96, 128, 3), dtype=np.uint8))
    sizes = {}
    for crf in (10, 40):
        sink = VideoSink(tmp_path / f"crf{crf}.mp4", fps=10, crf=crf, preset="ultrafast")
        for image in images:
            sink.write(Picture(image=image, result=None))
        sink.close()
        sizes[crf] = (tmp_path / f"crf{crf}.mp4").stat().st_size
    assert sizes[10] > 2 * sizes[40]
