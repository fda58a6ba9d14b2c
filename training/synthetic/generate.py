"""Write a synthetic video dataset to disk.

Layout under OUT::

    dataset.yaml                      classes, splits, sizes, seed, codec
    videos/video_0000.mp4             H.264 (libx264) where available, else MPEG-4 Part 2
    semantic/video_0000/000000.png    uint8 label PNG per frame (indices into `semantic` classes)
    images/video_0000/000000.jpg      only with save_frames=True
    annotations/instances_{split}.json  COCO: boxes, RLE masks, track_id, video_id, frame_id
    mot/video_0000/gt/gt.txt          MOTChallenge ground truth (+ seqinfo.ini)
    mot/video_0000/camera.txt         only with a moving camera: frame,a11,a12,a13,a21,a22,a23
                                      (the 2x3 world -> frame affine of each 1-based frame)

Videos are rendered in parallel processes, each from its own child of the
seed's SeedSequence, so the data do not depend on the number of workers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.errors import TridentError
from training.synthetic.camera import CAMERA_MOTIONS
from training.synthetic.shapes import SEMANTIC_CLASSES, THING_CLASSES

MAX_SIDE = 4096
MIN_SIDE = 64
MAX_FRAMES = 100_000
MAX_VIDEOS = 10_000


@dataclass(frozen=True)
class SynthConfig:
    videos: int = 10
    frames: int = 150
    width: int = 640
    height: int = 384
    seed: int = 0
    fps: float = 30.0
    val_fraction: float = 0.2  # the last videos form the val split (at least one when videos >= 2)
    max_objects: int = 8
    save_frames: bool = False  # also write every frame as JPEG (COCO tools that want image files)
    camera_motion: str = "none"  # none | pan | zoom | shake (training/synthetic/camera.py)

    def __post_init__(self) -> None:
        if not 1 <= self.videos <= MAX_VIDEOS:
            raise TridentError(f"--videos must be between 1 and {MAX_VIDEOS}, got {self.videos}")
        if not 1 <= self.frames <= MAX_FRAMES:
            raise TridentError(f"--frames must be between 1 and {MAX_FRAMES}, got {self.frames}")
        for name, side in (("width", self.width), ("height", self.height)):
            if not MIN_SIDE <= side <= MAX_SIDE:
                raise TridentError(f"--size {name} must be between {MIN_SIDE} and {MAX_SIDE} pixels, got {side}")
            if side % 2:
                raise TridentError(f"--size {name} must be even (H.264 stores 4:2:0 chroma), got {side}")
        if not 0 < self.fps <= 240:
            raise TridentError(f"--fps must be in (0, 240], got {self.fps}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise TridentError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.camera_motion not in CAMERA_MOTIONS:
            raise TridentError(f"--camera-motion must be one of {', '.join(CAMERA_MOTIONS)}, got {self.camera_motion!r}")
        if not 1 <= self.max_objects <= 64:
            raise TridentError(f"max_objects must be between 1 and 64, got {self.max_objects}")

    @property
    def n_val(self) -> int:
        if self.videos < 2 or self.val_fraction == 0:
            return 0
        return max(1, int(round(self.videos * self.val_fraction)))


@dataclass(frozen=True)
class SynthSummary:
    out: Path
    videos: int
    frames: int
    annotations: int
    tracks: int
    seconds: float
    codec: str


def video_name(i: int) -> str:
    return f"video_{i:04d}"


def pick_codec() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def check_writable(out: Path, overwrite: bool) -> None:
    """Fail before any work if OUT cannot hold the dataset."""
    if out.exists() and not out.is_dir():
        raise TridentError(f"--out {out} is a file; pass a directory")
    if (out / "dataset.yaml").exists() and not overwrite:
        raise TridentError(f"--out {out} already holds a dataset (dataset.yaml); pass --overwrite or choose another directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise TridentError(f"cannot write to --out {out}: {exc.strerror or exc}; choose a writable directory") from None


def _render_one(cfg: SynthConfig, index: int, seed_seq: np.random.SeedSequence, out: str, codec: str) -> dict:
    """Render and write one video; returns its COCO image/annotation rows and MOT lines (no global ids yet)."""
    import av
    import cv2
    from pycocotools import mask as mask_utils

    from training.synthetic.scene import VideoScene

    name = video_name(index)
    root = Path(out)
    sem_dir = root / "semantic" / name
    sem_dir.mkdir(parents=True, exist_ok=True)
    img_dir = root / "images" / name
    if cfg.save_frames:
        img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed_seq)
    scene = VideoScene(cfg.width, cfg.height, cfg.frames, rng, fps=cfg.fps, max_objects=cfg.max_objects,
                       camera_motion=cfg.camera_motion)
    images, annotations, mot_lines, camera_lines = [], [], [], []
    video_path = root / "videos" / f"{name}.mp4"
    with av.open(str(video_path), mode="w") as container:
        stream = container.add_stream(codec, rate=int(round(cfg.fps)))
        stream.width, stream.height, stream.pix_fmt = cfg.width, cfg.height, "yuv420p"
        if codec == "libx264":
            # threads=1: deterministic bit stream; parallelism comes from rendering videos in processes
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        else:
            stream.bit_rate = 8_000_000
        for fr in scene.render():
            if fr.camera is not None:
                camera_lines.append(f"{fr.index + 1}," + ",".join(f"{v:.6f}" for v in fr.camera.ravel()))
            frame = av.VideoFrame.from_ndarray(fr.image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
            cv2.imwrite(str(sem_dir / f"{fr.index:06d}.png"), fr.semantic)
            if cfg.save_frames:
                cv2.imwrite(str(img_dir / f"{fr.index:06d}.jpg"), fr.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            images.append(
                {
                    "file_name": f"{name}/{fr.index:06d}.jpg",
                    "width": cfg.width,
                    "height": cfg.height,
                    "frame_id": fr.index,
                    "video_file": f"videos/{name}.mp4",
                    "sem_file": f"semantic/{name}/{fr.index:06d}.png",
                }
            )
            if fr.instances:
                rles = mask_utils.encode(np.asfortranarray(np.stack([i.mask for i in fr.instances], axis=2).astype(np.uint8)))
            for inst, rle in zip(fr.instances, rles if fr.instances else []):
                x0, y0, x1, y1 = inst.box
                annotations.append(
                    {
                        "frame_id": fr.index,
                        "category_id": inst.cls + 1,
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": float(inst.area),
                        "segmentation": {"size": [cfg.height, cfg.width], "counts": rle["counts"].decode("ascii")},
                        "iscrowd": 0,
                        "track_id": inst.track_id,
                        "visibility": round(inst.visibility, 4),
                    }
                )
                mot_lines.append(
                    f"{fr.index + 1},{inst.track_id},{x0:.1f},{y0:.1f},{x1 - x0:.1f},{y1 - y0:.1f},1,{inst.cls + 1},{inst.visibility:.4f}"
                )
        for packet in stream.encode():
            container.mux(packet)
    mot_dir = root / "mot" / name
    (mot_dir / "gt").mkdir(parents=True, exist_ok=True)
    mot_lines.sort(key=lambda line: tuple(int(v) for v in line.split(",")[:2]))
    (mot_dir / "gt" / "gt.txt").write_text("\n".join(mot_lines) + ("\n" if mot_lines else ""))
    if camera_lines:
        (mot_dir / "camera.txt").write_text("\n".join(camera_lines) + "\n")
    (mot_dir / "seqinfo.ini").write_text(
        "[Sequence]\n"
        f"name={name}\nimDir=../../images/{name}\nframeRate={int(round(cfg.fps))}\nseqLength={cfg.frames}\n"
        f"imWidth={cfg.width}\nimHeight={cfg.height}\nimExt=.jpg\n"
    )
    return {"index": index, "name": name, "images": images, "annotations": annotations}


def generate_dataset(
    cfg: SynthConfig,
    out: str | os.PathLike,
    overwrite: bool = False,
    workers: int | None = None,
    on_video_done: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Render ``cfg.videos`` videos into ``out``; see the module docstring for the layout."""
    import yaml

    out = Path(out)
    check_writable(out, overwrite)
    for sub in ("videos", "semantic", "images", "annotations", "mot"):
        if overwrite and (out / sub).exists():
            shutil.rmtree(out / sub)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    codec = pick_codec()
    seeds = np.random.SeedSequence(cfg.seed).spawn(cfg.videos)
    workers = max(1, min(workers or os.cpu_count() or 1, cfg.videos))
    start = time.perf_counter()
    results: list[dict] = []
    if workers == 1:
        for i in range(cfg.videos):
            results.append(_render_one(cfg, i, seeds[i], str(out), codec))
            if on_video_done:
                on_video_done(i)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_render_one, cfg, i, seeds[i], str(out), codec) for i in range(cfg.videos)]
            for i, fut in enumerate(futures):
                results.append(fut.result())
                if on_video_done:
                    on_video_done(i)

    n_train = cfg.videos - cfg.n_val
    splits = {"train": results[:n_train], "val": results[n_train:]}
    categories = [{"id": i + 1, "name": n, "supercategory": "thing"} for i, n in enumerate(THING_CLASSES)]
    image_id, ann_id = 1, 1
    total_ann, tracks = 0, set()
    for split, videos in splits.items():
        coco = {
            "info": {"description": f"trident synthetic dataset ({split})", "seed": cfg.seed},
            "categories": categories,
            "videos": [],
            "images": [],
            "annotations": [],
        }
        for res in videos:
            vid = res["index"] + 1
            coco["videos"].append({"id": vid, "name": res["name"], "file_name": f"videos/{res['name']}.mp4", "frames": cfg.frames, "fps": cfg.fps})
            frame_to_image = {}
            for img in res["images"]:
                coco["images"].append({"id": image_id, "video_id": vid, **img})
                frame_to_image[img["frame_id"]] = image_id
                image_id += 1
            for ann in res["annotations"]:
                row = dict(ann)
                row["image_id"] = frame_to_image[row.pop("frame_id")]
                row["video_id"] = vid
                row["id"] = ann_id
                ann_id += 1
                coco["annotations"].append(row)
                tracks.add((vid, ann["track_id"]))
        total_ann += len(coco["annotations"])
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))

    seconds = time.perf_counter() - start
    meta = {
        "name": "trident-synthetic",
        "config": asdict(cfg),
        "size": {"width": cfg.width, "height": cfg.height},
        "fps": cfg.fps,
        "codec": codec,
        "things": list(THING_CLASSES),
        "semantic": list(SEMANTIC_CLASSES),
        "splits": {
            split: {"annotations": f"annotations/instances_{split}.json", "videos": [r["name"] for r in videos]}
            for split, videos in splits.items()
        },
        "mot_gt": "mot/{video}/gt/gt.txt",
        "camera_motion": cfg.camera_motion,
        "semantic_masks": "semantic/{video}/{frame:06d}.png",
    }
    (out / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return SynthSummary(out, cfg.videos, cfg.videos * cfg.frames, total_ann, len(tracks), seconds, codec)
