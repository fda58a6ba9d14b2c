"""Triton model repository, wire head and client addressing, without a server (fast)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest

from engines.spec import ModelSpec, read_onnx_spec
from pipeline.commands import BUNDLED_CLIP, asset, bundled_onnx
from pipeline.errors import TridentError

pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed: pip install 'trident-vision[triton]'")


@pytest.fixture(scope="module")
def frames():
    from pipeline.bench_command import video_frames

    return video_frames(asset(BUNDLED_CLIP), 6)


def _parse(text: str):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _kind(value: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.ModelInstanceGroup.Kind.Name(value)


def _type(value: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(value)


def test_config_pbtxt_parses_with_tritons_model_config_and_matches_the_spec(tmp_path):
    from engines.triton_repo import ServingConfig, write_repository
    from engines.triton_wire import WirePlan

    onnx = bundled_onnx(int8=False)
    spec = read_onnx_spec(onnx)
    folder = write_repository(onnx, tmp_path / "repo", ServingConfig(name="cam-model", instances=2, max_queue_delay_us=2500))
    assert (folder / "1" / "model.onnx").stat().st_size > 1_000_000
    cfg = _parse((folder / "config.pbtxt").read_text())
    assert (cfg.name, cfg.platform, cfg.max_batch_size) == ("cam-model", "onnxruntime_onnx", spec.batch_range[2])
    (inp,) = cfg.input
    assert (inp.name, list(inp.dims)) == ("images", [3, *spec.input_hw])
    assert _type(inp.data_type) == "TYPE_UINT8"
    assert {o.name: _type(o.data_type) for o in cfg.output}["protos"] == "TYPE_UINT8"
    outs = {o.name: list(o.dims) for o in cfg.output}
    h4, w4 = spec.input_hw[0] // 4, spec.input_hw[1] // 4
    assert outs["boxes"] == [1000, 4] and outs["scores"] == [1000, len(spec.class_names)]
    assert outs["protos"] == [spec.num_protos, h4, w4] and outs["sem_logits"] == [len(spec.sem_class_names), h4, w4]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 2500
    assert [(g.count, _kind(g.kind)) for g in cfg.instance_group] == [(2, "KIND_CPU")]
    # served at the nominal size only: a rect-capable (dynamic_hw) export is pinned to input_hw
    assert ModelSpec.from_json(cfg.parameters["trident.spec"].string_value) == replace(spec, dynamic_hw=False)
    assert WirePlan.from_json(cfg.parameters["trident.wire"].string_value, "x") == WirePlan()


def test_tensorrt_plan_config_parses_too(tmp_path):
    from engines.triton_repo import ServingConfig, write_repository

    plan = tmp_path / "built.plan"
    plan.write_bytes(b"not read by the writer")
    folder = write_repository(bundled_onnx(int8=False), tmp_path / "repo", ServingConfig(name="trt", platform="tensorrt_plan", kind="KIND_GPU"), plan_file=plan)
    cfg = _parse((folder / "config.pbtxt").read_text())
    assert cfg.platform == "tensorrt_plan" and _kind(cfg.instance_group[0].kind) == "KIND_GPU"
    assert (folder / "1" / "model.plan").read_bytes() == plan.read_bytes()
    with pytest.raises(TridentError, match="needs --plan"):
        write_repository(bundled_onnx(int8=False), tmp_path / "r2", ServingConfig(platform="tensorrt_plan"))


@pytest.mark.parametrize("dense, budget, mask_tol", [("uint8", 1_000_000, 0.005), ("fp16", 1_400_000, 0.0)])
def test_wire_model_keeps_the_local_detections_in_a_fraction_of_the_bytes(frames, dense, budget, mask_tol):
    import onnxruntime as ort

    from engines.loader import load_engine
    from engines.postprocess import postprocess
    from engines.preprocess import letterbox_batch
    from engines.triton_wire import WirePlan, build_wire_model, decode, wire_bytes

    onnx = bundled_onnx(int8=False)
    local = load_engine(onnx, device="cpu")
    spec = local.spec
    data, shapes = build_wire_model(onnx, spec, WirePlan(dense=dense))
    assert wire_bytes(shapes) <= budget  # raw FP32 is 3.2 MB a frame
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    images, lbs = letterbox_batch(frames, spec.input_hw)
    raw = local.infer(images)
    raw_bytes = sum(getattr(raw, n)[0].nbytes for n in spec.output_names)
    assert wire_bytes(shapes) < raw_bytes / 2
    wire = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": images})))
    ref, got = postprocess(raw, spec, lbs), postprocess(decode(wire, spec), spec, lbs)
    changed = union = 0
    for (d0, s0), (d1, s1) in zip(ref, got):
        assert len(d0) == len(d1) > 0
        np.testing.assert_allclose(d1.boxes, d0.boxes, atol=1e-3, rtol=0)
        np.testing.assert_array_equal(d1.class_ids, d0.class_ids)
        for a, b in zip(d0.masks.crops, d1.masks.crops):
            changed, union = changed + int((a != b).sum()), union + int((a | b).sum())
        assert (s0.labels != s1.labels).mean() < 1e-3
    assert changed <= mask_tol * union


def test_the_served_name_and_options_are_read_from_the_uri():
    from engines.triton_engine import TritonAddress

    a = TritonAddress.parse("triton://10.0.0.5:9001/cam-model?shm=off&retry_s=5")
    assert (a.host, a.port, a.model, a.shm, a.retry_s, a.protocol) == ("10.0.0.5", 9001, "cam-model", "off", 5.0, "auto")
    for bad in ("triton://host", "triton://host:1/a/b", "triton://host:1/m?color=red", "triton://host:1/m?shm=maybe"):
        with pytest.raises(TridentError):
            TritonAddress.parse(bad)


def test_an_unreachable_server_is_one_clear_error_at_once():
    from engines.loader import load_engine
    from engines.triton_serve import free_port

    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(TridentError, match=rf"Triton at 127.0.0.1:{port} is unreachable.*trident serve-model"):
        load_engine(f"triton://127.0.0.1:{port}/trident")
    assert time.monotonic() - t0 < 30


def test_shards_cover_every_source_exactly_once():
    from pipeline.shard import parse_shard, select_shard

    sources = [f"cam{i}" for i in range(7)]
    shards = [select_shard(sources, *parse_shard(f"{i}/3")) for i in (1, 2, 3)]
    assert shards[0] == ["cam0", "cam3", "cam6"]
    assert sorted(sum(shards, [])) == sorted(sources)
    for bad in ("0/3", "4/3", "1/0", "a/b", "2"):
        with pytest.raises(TridentError, match="I/N"):
            parse_shard(bad)
    with pytest.raises(TridentError, match="gets no source"):
        select_shard(sources[:2], 3, 3)


def test_run_with_a_bad_shard_exits_2_with_one_line(capsys):
    from pipeline.cli import main

    assert main(["run", "--source", str(asset(BUNDLED_CLIP)), "--model", str(bundled_onnx()), "--shard", "3/2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shard" in err[0]


def test_export_triton_repo_and_the_command_agree(tmp_path, capsys):
    from pipeline.cli import main

    assert main(["triton-repo", "--model", str(bundled_onnx()), "--repo", str(tmp_path), "--name", "m", "--dense", "fp16"]) == 0
    cfg = _parse((tmp_path / "m" / "config.pbtxt").read_text())
    assert json.loads(cfg.parameters["trident.wire"].string_value)["dense"] == "fp16"
    assert "triton://HOST:8001/m" in capsys.readouterr().out
    assert main(["triton-repo", "--model", str(tmp_path / "missing.onnx"), "--repo", str(tmp_path)]) == 2
