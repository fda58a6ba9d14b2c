"""The multi-task model: output contract per head subset, input checks, config, checkpoints, ONNX parity."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from pipeline.errors import TridentError
from training.model import ExportWrapper, ModelConfig, build_model, load_model, save_checkpoint
from training.model.normalize import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, ImageNormalizer

# Small inputs keep every test fast; the contract does not depend on size.
HW = (64, 96)
ANCHORS = (8 * 12) + (4 * 6) + (2 * 3)  # strides 8, 16, 32


def _images(batch: int = 2, hw: tuple[int, int] = HW, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, *hw), dtype=torch.uint8, generator=g)


def _model(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(input_hw=HW, **kw)).eval()


@pytest.mark.parametrize(
    "heads, names",
    [
        (("det",), ("boxes", "scores")),
        (("det", "inst"), ("boxes", "scores", "mask_coeffs", "protos")),
        (("sem",), ("sem_logits",)),
        (("det", "sem"), ("boxes", "scores", "sem_logits")),
        (("sem", "inst", "det"), ("boxes", "scores", "mask_coeffs", "protos", "sem_logits")),
    ],
)
def test_each_head_subset_exports_exactly_its_outputs_with_contract_shapes(heads, names):
    model = _model(heads=heads)
    assert model.output_names == names
    with torch.inference_mode():
        out = model.export_forward(_images())
        eager, losses = model(_images())
    assert len(out) == len(names) and losses == {}
    expected = {
        "boxes": (2, ANCHORS, 4),
        "scores": (2, ANCHORS, 4),
        "mask_coeffs": (2, ANCHORS, 32),
        "protos": (2, 32, HW[0] // 4, HW[1] // 4),
        "sem_logits": (2, 7, HW[0] // 4, HW[1] // 4),
    }
    for name, tensor in zip(names, out):
        assert tuple(tensor.shape) == expected[name], name
        assert tensor.dtype == torch.float32
        torch.testing.assert_close(eager[name], tensor, rtol=0, atol=0)
    if "scores" in names:
        scores = out[names.index("scores")]
        assert 0.0 <= float(scores.min()) and float(scores.max()) <= 1.0


def test_decoded_boxes_are_xyxy_around_their_anchor_in_input_pixels():
    model = _model(heads=("det",))
    with torch.inference_mode():
        boxes, _ = model.export_forward(_images(1))
    # Row 0 is the top-left stride-8 cell, centred at (4, 4); the last row is
    # the bottom-right stride-32 cell at (80, 48).
    assert bool((boxes[0, :, 2] >= boxes[0, :, 0]).all() and (boxes[0, :, 3] >= boxes[0, :, 1]).all())
    assert float(boxes[0, 0, 0]) <= 4.0 <= float(boxes[0, 0, 2])
    assert float(boxes[0, -1, 1]) <= 48.0 <= float(boxes[0, -1, 3])


def test_n_model_has_at_most_four_million_parameters():
    model = build_model(ModelConfig())
    count = sum(p.numel() for p in model.parameters())
    assert count <= 4_000_000, count
    assert count >= 2_000_000  # not accidentally a toy: the widths are the tuned ones


def test_uint8_images_are_accepted_and_float_images_rejected_with_a_clear_error():
    model = _model(heads=("sem",))
    with torch.inference_mode():
        model(_images())
        with pytest.raises(TridentError, match=r"uint8 .*got dtype float32"):
            model(_images().float())
        with pytest.raises(TridentError, match="multiples of 32"):
            model(_images(hw=(60, 96)))
        with pytest.raises(TridentError, match=r"\[B,3,H,W\]"):
            model(_images()[:, :1])


def test_csp_input_is_scaled_to_unit_range_and_torchvision_input_is_flipped_to_rgb_and_standardised():
    blue = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    blue[:, 0] = 255  # BGR: channel 0 is blue
    plain = ImageNormalizer()(blue)
    assert float(plain[0, 0, 0, 0]) == pytest.approx(1.0) and float(plain[0, 2, 0, 0]) == 0.0
    rgb = ImageNormalizer(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, bgr_to_rgb=True)(blue)
    # After the flip, blue is channel 2 and red (0) is channel 0.
    assert float(rgb[0, 2, 0, 0]) == pytest.approx((1.0 - 0.406) / 0.225, abs=1e-5)
    assert float(rgb[0, 0, 0, 0]) == pytest.approx(-0.485 / 0.229, abs=1e-5)


def test_torchvision_backbone_feeds_the_same_heads_at_strides_8_16_32():
    model = _model(backbone="mobilenet_v3_small", heads=("det", "sem"))
    assert model.backbone.strides == [8, 16, 32]
    with torch.inference_mode():
        boxes, scores, sem = model.export_forward(_images(1))
    assert boxes.shape == (1, ANCHORS, 4) and sem.shape == (1, 7, HW[0] // 4, HW[1] // 4)


def test_pretrained_weights_missing_from_cache_is_an_error_naming_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(TridentError, match=r"not in the torch hub cache .*checkpoints"):
        build_model(ModelConfig(backbone="resnet18", pretrained=True))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backbone": "vgg16"}, r"unknown backbone 'vgg16'; choose one of csp, resnet18"),
        ({"size": "xl"}, r"unknown model size 'xl'; choose one of n, s, m"),
        ({"heads": ("inst",)}, r"'inst' needs head 'det'"),
        ({"heads": ()}, r"heads is empty"),
        ({"num_classes": 5}, r"class_names has 4 names but num_classes is 5"),
        ({"input_hw": (100, 640)}, r"multiples of 32, got 100x640"),
        ({"decoder_stride": 16}, r"decoder_stride must be 4 or 8, got 16"),
    ],
)
def test_invalid_model_config_is_one_clear_error(kwargs, message):
    with pytest.raises(TridentError, match=message):
        ModelConfig(**kwargs)


def test_config_round_trips_through_a_dict_and_rejects_unknown_keys():
    cfg = ModelConfig(size="s", heads=("det", "sem"), input_hw=(320, 320))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TridentError, match=r"unknown model config key 'num_class'"):
        ModelConfig.from_dict({**cfg.to_dict(), "num_class": 3})


def test_checkpoint_round_trip_restores_identical_outputs_and_extra(tmp_path):
    cfg = ModelConfig(input_hw=HW, heads=("det", "inst"))
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    path = save_checkpoint(tmp_path / "ckpt.pt", model, cfg, {"epoch": 3, "metrics": {"map": 0.5}, "ema": torch.ones(2)})
    raw = torch.load(path, weights_only=True)  # plain data only: the safe loader reads it
    assert raw["format"] == "trident-checkpoint" and raw["config"]["heads"] == ["det", "inst"]
    loaded, loaded_cfg, extra = load_model(path)
    assert loaded_cfg == cfg and extra["epoch"] == 3 and extra["metrics"] == {"map": 0.5}
    assert not loaded.training
    with torch.inference_mode():
        for a, b in zip(model.export_forward(_images()), loaded.export_forward(_images())):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_saving_a_non_plain_extra_is_refused_before_writing(tmp_path):
    cfg = ModelConfig(input_hw=HW, heads=("sem",))
    with pytest.raises(TridentError, match=r"extra\['when'\] is a object"):
        save_checkpoint(tmp_path / "c.pt", build_model(cfg), cfg, {"when": object()})
    assert not (tmp_path / "c.pt").exists()


def test_each_bad_checkpoint_gives_its_own_clear_error(tmp_path):
    cfg = ModelConfig(input_hw=HW, heads=("det", "sem"))
    model = build_model(cfg)
    good = save_checkpoint(tmp_path / "good.pt", model, cfg, {})

    with pytest.raises(TridentError, match=r"does not exist"):
        load_model(tmp_path / "missing.pt")

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(TridentError, match=r"truncated or corrupt"):
        load_model(truncated)

    foreign = tmp_path / "foreign.pt"
    torch.save({"model": model.state_dict()}, foreign)
    with pytest.raises(TridentError, match=r"not a Trident checkpoint \(no 'trident-checkpoint' tag\)"):
        load_model(foreign)

    pickled = tmp_path / "pickled.pt"
    torch.save(model, pickled)
    with pytest.raises(TridentError, match=r"not a Trident checkpoint: it holds pickled Python objects"):
        load_model(pickled)

    wanted = ModelConfig(input_hw=HW, heads=("det", "sem"), num_classes=5, class_names=("a", "b", "c", "d", "e"))
    with pytest.raises(TridentError, match=r"trained with 4 thing classes but the config asks for 5"):
        load_model(good, config=wanted)


def test_fused_batchnorm_model_gives_the_same_outputs():
    model = _model()
    with torch.inference_mode():
        before = model.export_forward(_images())
        after = model.fuse().export_forward(_images())
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_onnx_export_matches_torch_within_1e_4_for_batch_2(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = _model()
    path = tmp_path / "model.onnx"
    dynamic = {name: {0: "batch"} for name in ("images", *model.output_names)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about constant shapes, which are static here
        torch.onnx.export(
            ExportWrapper(model), (_images(1),), str(path), dynamo=False, opset_version=17,
            input_names=["images"], output_names=list(model.output_names), dynamic_axes=dynamic,
        )
    onnx.checker.check_model(onnx.load(str(path)))
    assert not model.training  # exporting must not flip the model back to training mode
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(model.output_names)
    images = _images(2, seed=7)
    got = session.run(None, {"images": images.numpy()})
    with torch.inference_mode():
        want = model.export_forward(images)
    for name, a, b in zip(model.output_names, got, want):
        assert a.shape == tuple(b.shape), name
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_a_head_placed_before_the_head_it_needs_is_rejected():
    from training.model import MultiTaskNet

    full = _model()
    with pytest.raises(TridentError, match=r"head 'inst' needs head 'det' built before it"):
        MultiTaskNet(full.backbone, full.neck, {"inst": full.heads["inst"], "det": full.heads["det"]}, num_classes=4)


def _conv_macs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates of every Conv2d in one forward pass, by module name."""
    macs: dict[str, int] = {}

    def hook(name):
        def record(mod, inp, out):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            macs[name] = out.numel() * k

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return macs


def test_decoder_stride_8_takes_the_stride_4_weights_and_outputs_and_runs_its_convs_at_stride_8(tmp_path):
    torch.manual_seed(0)
    base_cfg = ModelConfig(input_hw=(128, 192))
    base = build_model(base_cfg).eval()
    path = save_checkpoint(tmp_path / "s4.pt", base, base_cfg)
    cheap_cfg = ModelConfig(input_hw=(128, 192), decoder_stride=8)
    cheap, cfg, _ = load_model(path, config=cheap_cfg)  # strict load: every weight has the same shape
    assert cfg.decoder_stride == 8
    x = torch.randint(0, 255, (1, 3, 128, 192), dtype=torch.uint8)
    with torch.no_grad():
        a, b = base(x)[0], cheap(x)[0]
    for name in ("sem_logits", "protos"):
        assert a[name].shape == b[name].shape == (1, a[name].shape[1], 32, 48)
        assert not torch.allclose(a[name], b[name])  # another function of the same weights
    for name in ("boxes", "scores", "mask_coeffs"):
        torch.testing.assert_close(a[name], b[name])  # detection is untouched
    m4, m8 = _conv_macs(base, x), _conv_macs(cheap, x)
    for conv in ("heads.sem.pre.conv", "heads.sem.post.conv", "heads.inst.protos.pre.conv", "heads.inst.protos.post.conv"):
        assert m8[conv] == m4[conv] // (4 if ".post." in conv else 1), conv
    for conv in ("heads.sem.classifier", "heads.inst.protos.out"):
        assert m8[conv] * 4 == m4[conv], conv
    assert sum(m4.values()) - sum(m8.values()) == 3 * (m8["heads.sem.post.conv"] + m8["heads.inst.protos.post.conv"]) + 3 * (
        m8["heads.sem.classifier"] + m8["heads.inst.protos.out"]
    )
