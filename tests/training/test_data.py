"""Datasets, transforms and batching: label formats, problem counts, geometric consistency."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from pipeline.errors import TridentError
from training.data import (
    CocoInstances,
    Compose,
    HSVJitter,
    LetterboxTransform,
    Mosaic,
    MosaicDataset,
    Sample,
    SemanticFolder,
    SyntheticVideoDataset,
    boxes_from_masks,
    collate,
    letterbox,
    seed_worker,
    train_transforms,
    unletterbox_boxes,
    unletterbox_masks,
)
from training.data import base as kinds
from training.data import synthetic_video
from training.data.transforms import affine, hflip
from training.synthetic import SEMANTIC_CLASSES, SynthConfig, generate_dataset

H, W = 96, 128
IDENTITY = LetterboxTransform((H, W))  # the synthetic frames already have the input size: letterbox is the identity


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(SynthConfig(videos=2, frames=6, width=W, height=H, seed=1), out, workers=1)
    return out


@pytest.fixture(scope="module")
def synth_jpegs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_jpg")
    generate_dataset(SynthConfig(videos=2, frames=6, width=W, height=H, seed=1, save_frames=True), out, workers=1)
    return out


def coco_rows(root: Path, split: str = "train") -> dict:
    return json.loads((root / "annotations" / f"instances_{split}.json").read_text())


def test_synthetic_splits_have_one_sample_per_frame(synth: Path) -> None:
    assert len(SyntheticVideoDataset(synth, "train")) == 6
    assert len(SyntheticVideoDataset(synth, "val")) == 6


def test_synthetic_target_shapes_and_dtypes(synth: Path) -> None:
    ds = SyntheticVideoDataset(synth, "train", transforms=IDENTITY)
    image, t = ds[2]
    n = len(t["boxes"])
    assert n > 0
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, H, W)
    assert t["boxes"].dtype == torch.float32 and tuple(t["boxes"].shape) == (n, 4)
    assert t["labels"].dtype == torch.int64 and tuple(t["labels"].shape) == (n,)
    assert t["masks"].dtype == torch.uint8 and tuple(t["masks"].shape) == (n, H, W)
    assert t["semantic"].dtype == torch.int64 and tuple(t["semantic"].shape) == (H, W)
    assert t["image_id"] == ds.entries[2].image_id
    assert t["orig_size"] == (H, W) and t["scale"] == 1.0 and t["pad"] == (0.0, 0.0)
    assert int(t["labels"].max()) < len(ds.thing_classes) == 4


def test_synthetic_masks_decode_to_annotated_area_and_box(synth: Path) -> None:
    ds = SyntheticVideoDataset(synth, "train", transforms=IDENTITY)
    anns_by_image: dict[int, list[dict]] = {}
    for a in coco_rows(synth)["annotations"]:
        anns_by_image.setdefault(a["image_id"], []).append(a)
    checked = 0
    for i in range(len(ds)):
        _, t = ds[i]
        anns = anns_by_image.get(t["image_id"], [])
        assert len(anns) == len(t["masks"])
        for ann, mask, box, label in zip(anns, t["masks"], t["boxes"], t["labels"]):
            assert abs(int(mask.sum()) - ann["area"]) <= 1
            x, y, w, h = ann["bbox"]
            np.testing.assert_allclose(box.numpy(), [x, y, x + w, y + h], atol=1)
            assert int(label) == ann["category_id"] - 1
            checked += 1
    assert checked == len(coco_rows(synth)["annotations"])


def test_synthetic_semantic_labels_equal_the_png(synth: Path) -> None:
    ds = SyntheticVideoDataset(synth, "val", transforms=IDENTITY)
    for i in (0, 5):
        _, t = ds[i]
        png = cv2.imread(str(synth / ds.entries[i].row["sem_file"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(t["semantic"].numpy(), png.astype(np.int64))
    assert ds.semantic_classes == SEMANTIC_CLASSES


def test_synthetic_each_video_is_decoded_once(synth: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Counter[str] = Counter()
    real = synthetic_video.decode_video

    def counting(path: Path) -> list[np.ndarray]:
        calls[path.name] += 1
        return real(path)

    monkeypatch.setattr(synthetic_video, "decode_video", counting)
    ds = SyntheticVideoDataset(synth, "train", transforms=IDENTITY)
    for i in [5, 0, 3, 3, 1]:
        ds[i]
    assert calls == Counter({"video_0000.mp4": 1})


def test_synthetic_reads_jpegs_when_present_and_they_match_the_video(synth_jpegs: Path) -> None:
    ds = SyntheticVideoDataset(synth_jpegs, "train", transforms=IDENTITY)
    assert all(f is not None for f in ds._frame_files)
    from_jpeg = ds.frame(4).astype(np.int16)
    video = synthetic_video.decode_video(synth_jpegs / "videos" / "video_0000.mp4")
    # JPEG and H.264 lose different details, so compare: the JPEG is nearest to the same video frame
    diffs = [np.abs(from_jpeg - f.astype(np.int16)).mean() for f in video]
    assert int(np.argmin(diffs)) == 4 and diffs[4] < 8.0


def test_synthetic_missing_yaml_names_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(TridentError, match=r"dataset.yaml.*trident synth"):
        SyntheticVideoDataset(tmp_path)


def test_synthetic_unreadable_yaml_raises(tmp_path: Path) -> None:
    (tmp_path / "dataset.yaml").write_text("splits: [unclosed\n  - x: {")
    with pytest.raises(TridentError, match="cannot read"):
        SyntheticVideoDataset(tmp_path)


def test_synthetic_missing_annotation_file_names_it(tmp_path: Path) -> None:
    generate_dataset(SynthConfig(videos=1, frames=2, width=64, height=64), tmp_path, workers=1)
    (tmp_path / "annotations" / "instances_train.json").unlink()
    with pytest.raises(TridentError, match="instances_train.json"):
        SyntheticVideoDataset(tmp_path, "train")
    with pytest.raises(TridentError, match=r"split 'test'.*\['train', 'val'\]"):
        SyntheticVideoDataset(tmp_path, "test")


def _write_coco(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.full((80, 100, 3), 50, np.uint8))
    square = np.zeros((80, 100), np.uint8)
    square[40:50, 60:75] = 1
    # COCO's uncompressed RLE: column-major run lengths, starting with a run of zeros
    col = square.T.ravel()
    edges = np.flatnonzero(np.diff(col)) + 1
    runs = np.diff(np.concatenate([[0], edges, [col.size]])).tolist()
    from pycocotools import mask as mask_utils

    compressed = mask_utils.encode(np.asfortranarray(square))["counts"].decode("ascii")
    poly = [[10, 10, 30, 10, 30, 20, 10, 20]]
    ann = lambda i, cat, bbox, seg, img=1: {"id": i, "image_id": img, "category_id": cat, "bbox": bbox, "segmentation": seg, "iscrowd": 0, "area": 1.0}  # noqa: E731
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}, {"id": 2, "file_name": "missing.png", "width": 100, "height": 80}],
        "categories": [{"id": 7, "name": "car"}, {"id": 3, "name": "person"}],
        "annotations": [
            ann(1, 3, [10, 10, 20, 10], poly),  # polygon
            ann(2, 7, [60, 40, 15, 10], {"size": [80, 100], "counts": compressed}),  # compressed RLE
            ann(3, 7, [60, 40, 15, 10], {"size": [80, 100], "counts": runs}),  # uncompressed RLE
            ann(4, 3, [90, 70, 20, 20], [[90, 70, 100, 70, 100, 80, 90, 80]]),  # box out of image -> clipped
            ann(5, 3, [10, 10, 5, 5], []),  # empty polygon
            ann(6, 3, [10, 10, 5, 5], [[1, 1, 2, 2]]),  # degenerate polygon (two points)
            ann(7, 99, [10, 10, 5, 5], poly),  # unknown category
            ann(8, 3, [10, 10, 0, 5], poly),  # zero-area box
            ann(9, 3, [10, 10, 20, 10], poly, img=2),  # its image file is missing
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    return path, images


def test_coco_counts_every_problem_kind_exactly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, images = _write_coco(tmp_path)
    with caplog.at_level(logging.WARNING, logger="trident.data"):
        ds = CocoInstances(path, images, transforms=LetterboxTransform((80, 100)))
    assert ds.problems == Counter(
        {
            kinds.BOX_CLIPPED: 1,
            kinds.BAD_POLYGON: 2,
            kinds.UNKNOWN_CATEGORY: 1,
            kinds.BOX_ZERO_AREA: 1,
            kinds.MISSING_IMAGE: 1,
        }
    )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "6 annotation problem(s)" in text
    assert f"{kinds.BAD_POLYGON}: 2" in text and f"{kinds.MISSING_IMAGE}: 1" in text
    assert len(ds) == 1


def test_coco_decodes_polygon_and_both_rle_kinds(tmp_path: Path) -> None:
    path, images = _write_coco(tmp_path)
    ds = CocoInstances(path, images, transforms=LetterboxTransform((80, 100)))
    _, t = ds[0]
    assert ds.category_ids == (3, 7) and ds.thing_classes == ("person", "car")
    assert t["labels"].tolist() == [0, 1, 1, 0]  # category 3 -> 0, category 7 -> 1
    assert t["masks"].sum(dim=(1, 2)).tolist() == [200, 150, 150, 100]
    assert t["boxes"][3].tolist() == [90.0, 70.0, 100.0, 80.0]  # clipped to the 100x80 image
    assert np.array_equal(t["masks"][1].numpy(), t["masks"][2].numpy())
    assert t["semantic"] is None


def test_coco_without_segmentations_has_boxes_but_no_masks(tmp_path: Path) -> None:
    path, images = _write_coco(tmp_path)
    coco = json.loads(path.read_text())
    for a in coco["annotations"]:
        a.pop("segmentation")
    path.write_text(json.dumps(coco))
    ds = CocoInstances(path, images, transforms=LetterboxTransform((80, 100)))
    _, t = ds[0]
    assert t["masks"] is None and len(t["boxes"]) == 6  # the two bad polygons no longer matter
    assert kinds.BAD_POLYGON not in ds.problems


def test_coco_missing_or_malformed_annotation_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(TridentError, match=r"nope\.json"):
        CocoInstances(tmp_path / "nope.json", tmp_path)
    path, images = _write_coco(tmp_path)
    coco = json.loads(path.read_text())
    del coco["images"][0]["height"]
    path.write_text(json.dumps(coco))
    with pytest.raises(TridentError, match=r"malformed COCO file .*instances\.json.*'height'"):
        CocoInstances(path, images)
    path.write_text("{not json")
    with pytest.raises(TridentError, match="cannot read annotation file"):
        CocoInstances(path, images)


def _semantic_folder(tmp_path: Path) -> tuple[Path, Path]:
    img_dir, lab_dir = tmp_path / "img", tmp_path / "lab"
    img_dir.mkdir()
    lab_dir.mkdir()
    for name in ("a", "b", "c", "d"):
        cv2.imwrite(str(img_dir / f"{name}.jpg"), np.full((60, 80, 3), 90, np.uint8))
    lab = np.zeros((60, 80), np.uint8)
    lab[:, 40:] = 1
    lab[0, 0] = 9  # beyond the 3 classes
    lab[1, 0] = 200  # the dataset's own ignore value
    cv2.imwrite(str(lab_dir / "a.png"), lab)
    cv2.imwrite(str(lab_dir / "b.png"), lab)
    cv2.imwrite(str(lab_dir / "c.png"), np.zeros((30, 80), np.uint8))  # wrong size; d has no label
    return img_dir, lab_dir


def test_semantic_folder_counts_problems_and_maps_ignore(tmp_path: Path) -> None:
    img_dir, lab_dir = _semantic_folder(tmp_path)
    ds = SemanticFolder(img_dir, lab_dir, ["sky", "road", "car"], ignore_value=200, transforms=LetterboxTransform((60, 80)))
    assert len(ds) == 2
    assert ds.problems == Counter({kinds.MISSING_LABEL: 1, kinds.SEMANTIC_SIZE: 1})
    _, t = ds[0]
    assert t["boxes"] is None and t["labels"] is None and t["masks"] is None
    sem = t["semantic"].numpy()
    assert sem[0, 0] == 255 and sem[1, 0] == 255 and sem[5, 10] == 0 and sem[5, 50] == 1
    assert ds.problems[kinds.SEMANTIC_RANGE] == 1


def test_mixed_datasets_collate_into_one_batch(tmp_path: Path, synth: Path) -> None:
    img_dir, lab_dir = _semantic_folder(tmp_path)
    lb = LetterboxTransform((96, 128))
    mixed = torch.utils.data.ConcatDataset(
        [SyntheticVideoDataset(synth, "train", transforms=lb), SemanticFolder(img_dir, lab_dir, ["a", "b", "c"], transforms=lb)]
    )
    loader = torch.utils.data.DataLoader(mixed, batch_size=8, shuffle=False, collate_fn=collate)
    images, targets = next(iter(loader))
    assert images.dtype == torch.uint8 and tuple(images.shape) == (8, 3, 96, 128)
    assert [t["boxes"] is None for t in targets] == [False] * 6 + [True] * 2
    assert all(t["semantic"] is not None for t in targets)
    # 60x80 -> 96x128 has scale 1.6, no padding
    assert targets[6]["scale"] == pytest.approx(1.6) and targets[6]["pad"] == (0.0, 0.0)
    with pytest.raises(TridentError, match="different sizes"):
        collate([mixed[0], SemanticFolder(img_dir, lab_dir, ["a", "b", "c"], transforms=LetterboxTransform((64, 64)))[0]])


def _sample_with_square() -> Sample:
    masks = np.zeros((1, 100, 100), np.uint8)
    masks[0, 20:40, 10:30] = 1
    boxes, labels = np.array([[10, 20, 30, 40]], np.float32), np.array([2], np.int64)
    return Sample(np.zeros((100, 100, 3), np.uint8), 1, (100, 100), boxes, labels, masks, masks[0].copy())


def test_hflip_maps_box_to_mirrored_coordinates() -> None:
    out = hflip(_sample_with_square())
    assert out.boxes.tolist() == [[70.0, 20.0, 90.0, 40.0]]
    assert boxes_from_masks(out.masks).tolist() == out.boxes.tolist()
    assert out.semantic[30, 80] == 1 and out.semantic[30, 15] == 0


def test_letterbox_and_inverse_are_identity_within_one_pixel() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (200, 500, 3), np.uint8)
    out, scale, pad = letterbox(image, (384, 640))
    assert out.shape == (384, 640, 3) and scale == pytest.approx(1.28) and pad == (0, 64)
    xy = rng.uniform(0, 200, (20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 150, (20, 2))], axis=1).astype(np.float32)
    back = unletterbox_boxes(boxes * scale + np.array([pad[0], pad[1]] * 2), scale, pad)
    assert np.abs(back - boxes).max() < 1.0
    masks = np.zeros((1, 200, 500), np.uint8)
    masks[0, 50:120, 100:300] = 1
    lb = LetterboxTransform((384, 640))(Sample(image=image, image_id=0, orig_size=(200, 500), boxes=boxes[:1], labels=np.zeros(1, np.int64), masks=masks))
    restored = unletterbox_masks(lb.masks, lb.scale, lb.pad, (200, 500))
    assert np.argwhere(restored[0]).min(0).tolist() == [50, 100]
    assert np.abs(np.argwhere(restored[0]).max(0) - [119, 299]).max() <= 1


def test_letterbox_pads_image_114_semantic_255_masks_0() -> None:
    sample = _sample_with_square().with_(image=np.full((50, 100, 3), 7, np.uint8), masks=np.ones((1, 50, 100), np.uint8),
                                          semantic=np.zeros((50, 100), np.uint8), boxes=np.array([[0, 0, 100, 50]], np.float32))
    out = LetterboxTransform((100, 100))(sample)
    assert out.pad == (0, 25) and out.scale == 1.0
    assert (out.image[:25] == 114).all() and (out.image[25:75] == 7).all() and (out.image[75:] == 114).all()
    assert (out.semantic[:25] == 255).all() and (out.semantic[25:75] == 0).all()
    assert out.masks[0, :25].sum() == 0 and out.masks[0].sum() == 50 * 100
    assert out.boxes.tolist() == [[0.0, 25.0, 100.0, 75.0]]


def test_affine_boxes_equal_mask_bounding_boxes_and_labels_follow(synth: Path) -> None:
    ds = SyntheticVideoDataset(synth, "train", transforms=IDENTITY)
    base = IDENTITY(ds.load_sample(3))
    assert len(base.boxes) >= 2
    for s, shift in [(1.6, (30.0, -10.0)), (0.5, (-20.0, 5.0)), (2.5, (60.0, 0.0))]:
        out = affine(base, s, shift, min_area=16.0)
        assert len(out.boxes) == len(out.masks) == len(out.labels)
        assert np.array_equal(out.boxes, boxes_from_masks(out.masks))
        area = (out.boxes[:, 2] - out.boxes[:, 0]) * (out.boxes[:, 3] - out.boxes[:, 1])
        assert (area >= 16).all()
        assert set(out.labels.tolist()) <= set(base.labels.tolist())
    zoomed_out = affine(base, 0.5, (0.0, 0.0))
    assert (zoomed_out.semantic[:, :10] == 255).all() and (zoomed_out.image[:, :10] == 114).all()


def test_affine_keeps_scale_and_pad_an_exact_map_to_original_pixels() -> None:
    sample = LetterboxTransform((200, 200))(_sample_with_square())
    out = affine(sample, 0.8, (5.0, -3.0))
    back = unletterbox_boxes(out.boxes, out.scale, out.pad)
    assert np.abs(back - np.array([[10, 20, 30, 40]])).max() <= 1.0 / out.scale + 1e-6


def test_train_transforms_are_reproducible_from_the_seed(synth: Path) -> None:
    ds = SyntheticVideoDataset(synth, "train", transforms=IDENTITY)
    raw = ds.load_sample(1)
    a = train_transforms((96, 128), seed=5)(raw)
    b = train_transforms((96, 128), seed=5)(raw)
    c = train_transforms((96, 128), seed=6)(raw)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.image, c.image)


def test_hsv_jitter_changes_only_the_image() -> None:
    sample = _sample_with_square().with_(image=np.random.default_rng(0).integers(0, 255, (100, 100, 3), np.uint8))
    out = Compose([HSVJitter(np.random.default_rng(1), 0.1, 0.7, 0.4)])(sample)
    assert not np.array_equal(out.image, sample.image)
    assert out.boxes is sample.boxes and out.masks is sample.masks


def test_mosaic_output_has_input_size_and_consistent_labels(synth: Path) -> None:
    ds = SyntheticVideoDataset(synth, "train", transforms=IDENTITY)
    samples = [ds.load_sample(i) for i in range(4)]
    out = Mosaic(np.random.default_rng(0), (96, 128))(samples)
    assert out.image.shape == (96, 128, 3) and out.semantic.shape == (96, 128)
    assert len(out.boxes) == len(out.masks) == len(out.labels) > 0
    assert np.array_equal(out.boxes, boxes_from_masks(out.masks))
    wrapped = MosaicDataset(ds, np.random.default_rng(0), (96, 128), p=1.0)
    image, target = wrapped[0]
    assert tuple(image.shape) == (3, 96, 128) and target["masks"].shape[1:] == (96, 128)


def test_seed_worker_gives_each_worker_its_own_augmentation_stream(synth: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = SyntheticVideoDataset(synth, "train", transforms=train_transforms((96, 128), seed=0))
    wrapped = torch.utils.data.ConcatDataset([ds])
    images = []
    for seed in (11, 12, 11):
        info = SimpleNamespace(dataset=wrapped, seed=seed)
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        seed_worker(0)
        images.append(ds[1][0])
    assert not torch.equal(images[0], images[1])
    assert torch.equal(images[0], images[2])


def test_more_instances_than_opencv_channels_survive_letterbox_and_affine() -> None:
    # OpenCV 5 resizes/warps at most 128 channels per call (4.x: 512); masks go through in chunks
    n = 300
    masks = np.zeros((n, 50, 100), np.uint8)
    for i in range(n):
        masks[i, (i % 10) * 5 : (i % 10) * 5 + 4, (i // 10) * 3 : (i // 10) * 3 + 3] = 1
    sample = Sample(np.zeros((50, 100, 3), np.uint8), 0, (50, 100), boxes_from_masks(masks), np.zeros(n, np.int64), masks)
    out = LetterboxTransform((100, 200))(sample)
    assert out.masks.shape == (n, 100, 200) and len(out.boxes) == n
    assert np.abs(boxes_from_masks(out.masks) - out.boxes).max() <= 1.0
    zoomed = affine(out, 0.8, (0.0, 0.0), min_area=1.0)  # zoom out: every object stays in the frame
    assert len(zoomed.masks) == len(zoomed.boxes) == n
