"""The synthetic dataset: loadable by standard tools, internally consistent, hard enough, deterministic."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from pipeline.cli import main
from training.synthetic import SEMANTIC_CLASSES, THING_CLASSES, SynthConfig, generate_dataset


def _coco(root: Path, split: str) -> COCO:
    return COCO(str(root / "annotations" / f"instances_{split}.json"))


def test_dataset_yaml_describes_classes_splits_and_codec(small_synth):
    root, cfg, summary = small_synth
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    assert meta["things"] == list(THING_CLASSES) and len(meta["things"]) == 4
    assert meta["semantic"] == list(SEMANTIC_CLASSES) and meta["semantic"][0] == "background"
    assert meta["splits"]["train"]["videos"] == ["video_0000", "video_0001"]
    assert meta["splits"]["val"]["videos"] == ["video_0002"]
    assert meta["codec"] in ("libx264", "mpeg4") and summary.codec == meta["codec"]


def test_coco_json_loads_with_one_image_per_frame_and_video_ids(small_synth):
    root, cfg, summary = small_synth
    train, val = _coco(root, "train"), _coco(root, "val")
    assert len(train.getImgIds()) == 2 * cfg.frames and len(val.getImgIds()) == cfg.frames
    assert len(train.getAnnIds()) + len(val.getAnnIds()) == summary.annotations > 0
    assert sorted(train.getCatIds()) == [1, 2, 3, 4]
    assert {img["video_id"] for img in train.dataset["images"]} == {1, 2}
    assert sorted(img["frame_id"] for img in val.dataset["images"]) == list(range(cfg.frames))
    assert not set(train.getImgIds()) & set(val.getImgIds())  # image ids unique across splits


def test_masks_decode_to_their_area_and_fit_their_box(small_synth):
    root, _, _ = small_synth
    coco = _coco(root, "train")
    for ann in coco.dataset["annotations"]:
        m = mask_utils.decode({"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()})
        assert m.sum() == ann["area"] >= 24
        x, y, w, h = ann["bbox"]
        ys, xs = np.nonzero(m)
        # the box is the tight box of the visible mask
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
        assert ann["area"] <= w * h


def test_semantic_png_labels_every_instance_pixel_with_its_class(small_synth):
    root, _, _ = small_synth
    coco = _coco(root, "train")
    image = coco.dataset["images"][10]
    sem = cv2.imread(str(root / image["sem_file"]), cv2.IMREAD_UNCHANGED)
    assert sem.dtype == np.uint8 and sem.shape == (image["height"], image["width"])
    assert sem.max() < len(SEMANTIC_CLASSES)
    assert {0, 1, 2} <= set(np.unique(sem).tolist())  # background (sky), ground and road all present
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
        m = coco.annToMask(ann).astype(bool)
        label = SEMANTIC_CLASSES.index(THING_CLASSES[ann["category_id"] - 1])
        assert (sem[m] == label).all()


def test_tracks_are_continuous_and_match_the_mot_ground_truth(small_synth):
    root, cfg, _ = small_synth
    coco = _coco(root, "train")
    frame_of = {img["id"]: img["frame_id"] for img in coco.dataset["images"]}
    frames = defaultdict(list)
    for ann in coco.dataset["annotations"]:
        if ann["video_id"] == 1:
            frames[ann["track_id"]].append(frame_of[ann["image_id"]])
    gt = np.loadtxt(root / "mot" / "video_0000" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    assert gt.shape == (sum(len(v) for v in frames.values()), 9)
    assert set(gt[:, 1].astype(int)) == set(frames)
    assert gt[:, 0].min() >= 1 and gt[:, 0].max() <= cfg.frames  # 1-based frame numbers
    assert (gt[:, 8] > 0).all() and (gt[:, 8] <= 1).all()  # visibility ratio
    # a track appears in one frame at most once, and in most frames between its first and last
    for track, fr in frames.items():
        assert len(fr) == len(set(fr))
        span = max(fr) - min(fr) + 1
        assert len(fr) >= 0.6 * span, (track, sorted(fr))


def test_scenes_have_occlusion_entries_and_varied_appearance(small_synth):
    root, _, _ = small_synth
    anns = _coco(root, "train").dataset["annotations"] + _coco(root, "val").dataset["annotations"]
    visibility = np.array([a["visibility"] for a in anns])
    assert (visibility < 0.9).mean() > 0.05  # occluded or truncated objects are common
    coco = {s: _coco(root, s) for s in ("train", "val")}
    frame_of = {img["id"]: img["frame_id"] for c in coco.values() for img in c.dataset["images"]}
    first = defaultdict(lambda: 10**9)
    for a in anns:
        key = (a["video_id"], a["track_id"])
        first[key] = min(first[key], frame_of[a["image_id"]])
    assert any(f > 0 for f in first.values())  # objects enter after the first frame
    assert len({a["category_id"] for a in anns}) >= 3
    # boxes of one class span a wide range of scales
    heights = np.array([a["bbox"][3] for a in anns])
    assert heights.max() / max(heights.min(), 1) > 4


def test_instances_of_a_class_do_not_share_one_colour(tmp_path):
    cfg = SynthConfig(videos=2, frames=3, width=256, height=160, seed=3, save_frames=True)
    generate_dataset(cfg, tmp_path, workers=1)
    coco = COCO(str(tmp_path / "annotations" / "instances_train.json"))
    means = defaultdict(list)
    for ann in coco.dataset["annotations"]:
        img = coco.imgs[ann["image_id"]]
        pixels = cv2.imread(str(tmp_path / "images" / img["file_name"]))[coco.annToMask(ann).astype(bool)]
        if len(pixels) > 100:
            means[ann["category_id"]].append(pixels.mean(axis=0))
    spreads = [np.linalg.norm(np.std(v, axis=0)) for v in means.values() if len(v) >= 2]
    assert spreads and max(spreads) > 15


def test_video_decodes_to_the_configured_frames(small_synth):
    import av

    root, cfg, _ = small_synth
    with av.open(str(root / "videos" / "video_0001.mp4")) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == cfg.frames
    assert frames[0].shape == (cfg.height, cfg.width, 3)
    assert float(np.std(frames[5])) > 10  # not a flat image


def test_same_seed_gives_the_same_dataset_whatever_the_worker_count(tmp_path):
    cfg = SynthConfig(videos=2, frames=5, width=128, height=96, seed=11)
    generate_dataset(cfg, tmp_path / "a", workers=1)
    generate_dataset(cfg, tmp_path / "b", workers=2)
    generate_dataset(SynthConfig(videos=2, frames=5, width=128, height=96, seed=12), tmp_path / "c", workers=1)
    a, b, c = (json.loads((tmp_path / d / "annotations" / "instances_train.json").read_text()) for d in "abc")
    assert a["annotations"] == b["annotations"]
    assert a["annotations"] != c["annotations"]
    for name in ("semantic/video_0000/000004.png", "mot/video_0001/gt/gt.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_cli_writes_dataset_and_prints_time(tmp_path, capsys):
    rc = main(["synth", "--out", str(tmp_path / "d"), "--videos", "2", "--frames", "4", "--size", "128x96", "--workers", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "wrote 2 videos, 8 frames" in out and " s (" in out
    assert (tmp_path / "d" / "videos" / "video_0001.mp4").stat().st_size > 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--frames", "0"], "--frames must be between 1 and"),
        (["--videos", "0"], "--videos must be between 1 and"),
        (["--size", "100000x100000"], "--size width must be between 64 and 4096"),
        (["--size", "0x0"], "--size width must be between"),
        (["--size", "129x96"], "must be even"),
        (["--workers", "0"], "--workers must be >= 1"),
    ],
)
def test_cli_rejects_bad_numbers_with_one_line(tmp_path, capsys, args, needle):
    rc = main(["synth", "--out", str(tmp_path / "d"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert needle in err and len(err.splitlines()) == 1 and err.startswith("trident synth: error:")
    assert not (tmp_path / "d" / "dataset.yaml").exists()


def test_cli_rejects_malformed_size_via_argparse(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(tmp_path), "--size", "big"])
    assert exc.value.code == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_cli_rejects_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    rc = main(["synth", "--out", str(blocker / "sub"), "--videos", "1", "--frames", "2", "--size", "128x96"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write to --out" in err and "writable directory" in err
    assert blocker.read_text() == "not a directory"
    rc = main(["synth", "--out", str(blocker), "--videos", "1", "--frames", "2", "--size", "128x96"])
    assert rc == 2 and "is a file" in capsys.readouterr().err


def test_cli_refuses_to_overwrite_an_existing_dataset(tmp_path, capsys):
    args = ["synth", "--out", str(tmp_path), "--videos", "1", "--frames", "2", "--size", "128x96", "--workers", "1"]
    assert main(args) == 0
    before = (tmp_path / "annotations" / "instances_train.json").read_bytes()
    assert main(args + ["--seed", "5"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert (tmp_path / "annotations" / "instances_train.json").read_bytes() == before
    assert main(args + ["--seed", "5", "--overwrite"]) == 0
    assert (tmp_path / "annotations" / "instances_train.json").read_bytes() != before
