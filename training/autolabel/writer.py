"""Run autolabel over every source and write the dataset in the layout `trident synth` writes.

Layout under OUT (see training/synthetic/generate.py; `SyntheticVideoDataset` reads both)::

    dataset.yaml                          classes, splits, teacher, settings, mask sources
    images/<video>/<frame:06d>.jpg        every labelled frame (the source may be any codec; JPEGs are what training reads)
    semantic/<video>/<frame:06d>.png      the teacher's semantic map, or the instance masks painted on background
    annotations/instances_{split}.json    COCO: boxes, RLE masks, track_id, video_id, frame_id (+ teacher score)
    mot/<video>/gt/gt.txt                 MOTChallenge: the tracked boxes (+ seqinfo.ini)
    autolabel/run.json, <video>.jsonl     the work log a stopped run resumes from

dataset.yaml is written last: a folder with one is complete, a folder with
only autolabel/run.json is a run to resume.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.errors import TridentError
from training.autolabel.labeler import VideoLabels, label_video
from training.autolabel.options import AutolabelOptions, same_run
from training.autolabel.teacher import Teacher

STATE_FORMAT = "trident-autolabel-1"


@dataclass(frozen=True)
class AutolabelSummary:
    out: Path
    videos: int
    frames: int
    annotations: int
    tracks: int
    teacher_frames: int  # frames the teacher ran on in this call; fewer than `frames` after a resume
    mask_sources: dict[str, int]
    seconds: float


def video_names(sources: tuple[str, ...]) -> list[str]:
    """Folder-safe, unique, stable names: the file stems, numbered on a clash."""
    names: list[str] = []
    for src in sources:
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(src).stem) or "video"
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}_{k}", k + 1
        names.append(name)
    return names


def _prepare(out: Path, opts: AutolabelOptions, overwrite: bool) -> bool:
    """Make OUT ready; True when an interrupted run of these same settings is resumed."""
    from training.synthetic.generate import check_writable

    check_writable(out, overwrite)  # refuses a finished dataset without --overwrite
    state_path = out / "autolabel" / "run.json"
    if overwrite:
        for sub in ("images", "semantic", "annotations", "mot", "autolabel"):
            if (out / sub).exists():
                shutil.rmtree(out / sub)
        (out / "dataset.yaml").unlink(missing_ok=True)
    elif state_path.exists():
        saved = json.loads(state_path.read_text())
        differs = same_run(saved.get("options", {}), opts.fingerprint())
        if saved.get("format") != STATE_FORMAT or differs:
            raise TridentError(
                f"--out {out} holds an unfinished autolabel run with a different {differs or 'format'}; "
                "re-run it with its own settings to resume, or pass --overwrite to start over"
            )
        return True
    (out / "autolabel").mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps({"format": STATE_FORMAT, "options": opts.fingerprint()}, indent=1))
    return False


def autolabel(
    opts: AutolabelOptions,
    out: str | os.PathLike,
    overwrite: bool = False,
    device: str = "cpu",
    on_frame: Callable[[], None] = lambda: None,
) -> AutolabelSummary:
    """Label every source with the teacher into ``out``; see the module docstring for the layout."""
    for src in opts.sources:
        if not Path(src).is_file():
            raise TridentError(f"--source {src} does not exist; pass a video file")
    out = Path(out)
    teacher = Teacher(opts.teacher, opts.class_map, opts.score, need_masks=opts.masks == "teacher", device=device)
    try:
        _prepare(out, opts, overwrite)
        semantic = "teacher" if teacher.has_semantic else ("masks" if opts.masks != "none" else "none")
        start = time.perf_counter()
        videos = [
            label_video(str(Path(src).resolve()), name, out, opts, teacher, semantic, on_frame)
            for src, name in zip(opts.sources, video_names(opts.sources))
        ]
    finally:
        teacher.close()
    sem_classes = teacher.semantic_classes if semantic == "teacher" else ("background",) + teacher.class_names
    return write_dataset(out, opts, teacher.class_names, sem_classes, semantic, videos, time.perf_counter() - start)


def _split(video: VideoLabels, val_fraction: float) -> dict[str, set[int]]:
    """Frame ids per split: the last `val_fraction` of the video's labelled frames are val (held out in time)."""
    frames = [row["frame_id"] for row in video.images]
    n_val = int(round(len(frames) * val_fraction)) if val_fraction > 0 else 0
    if val_fraction > 0 and len(frames) >= 2:
        n_val = min(max(n_val, 1), len(frames) - 1)
    cut = len(frames) - n_val
    return {"train": set(frames[:cut]), "val": set(frames[cut:])}


def write_dataset(out: Path, opts: AutolabelOptions, classes: tuple[str, ...], sem_classes: tuple[str, ...],
                  semantic: str, videos: list[VideoLabels], seconds: float) -> AutolabelSummary:
    import yaml

    (out / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": n, "supercategory": "thing"} for i, n in enumerate(classes)]
    splits = {v.name: _split(v, opts.val_fraction) for v in videos}
    split_names = ["train"] + (["val"] if opts.val_fraction > 0 else [])
    image_id, ann_id, total_ann, tracks = 1, 1, 0, set()
    split_videos: dict[str, list[str]] = {s: [] for s in split_names}
    for split in split_names:
        coco = {"info": {"description": f"trident autolabel dataset ({split})", "teacher": str(opts.teacher)},
                "categories": categories, "videos": [], "images": [], "annotations": []}
        for vid, video in enumerate(videos, start=1):
            wanted = splits[video.name][split]
            if not wanted:
                continue
            split_videos[split].append(video.name)
            coco["videos"].append({"id": vid, "name": video.name, "file_name": video.source, "frames": video.decoded, "fps": video.fps})
            frame_to_image = {}
            for img in video.images:
                if img["frame_id"] in wanted:
                    coco["images"].append({"id": image_id, "video_id": vid, **img})
                    frame_to_image[img["frame_id"]] = image_id
                    image_id += 1
            for ann in video.annotations:
                if ann["frame_id"] not in wanted:
                    continue
                row = dict(ann)
                row.update(image_id=frame_to_image[row.pop("frame_id")], video_id=vid, id=ann_id)
                ann_id += 1
                coco["annotations"].append(row)
                if ann["track_id"] > 0:
                    tracks.add((vid, ann["track_id"]))
        total_ann += len(coco["annotations"])
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))

    for video in videos:
        mot_dir = out / "mot" / video.name
        (mot_dir / "gt").mkdir(parents=True, exist_ok=True)
        (mot_dir / "gt" / "gt.txt").write_text("\n".join(video.mot_lines) + ("\n" if video.mot_lines else ""))
        (mot_dir / "seqinfo.ini").write_text(
            "[Sequence]\n"
            f"name={video.name}\nimDir=../../images/{video.name}\nframeRate={int(round(video.fps))}\nseqLength={video.decoded}\n"
            f"imWidth={video.width}\nimHeight={video.height}\nimExt=.jpg\n"
        )
    mask_sources = dict(sum((v.mask_sources for v in videos), Counter()))
    frames = sum(len(v.images) for v in videos)
    first = videos[0]
    meta = {
        "name": "trident-autolabel",
        "teacher": str(opts.teacher),
        "config": opts.fingerprint(),
        "size": {"width": first.width, "height": first.height},
        "fps": first.fps,
        "things": list(classes),
        "semantic": list(sem_classes),
        "semantic_source": semantic,  # teacher | masks (instance masks on background) | none
        "mask_sources": mask_sources,
        "splits": {s: {"annotations": f"annotations/instances_{s}.json", "videos": split_videos[s]} for s in split_names},
        "mot_gt": "mot/{video}/gt/gt.txt",
        "camera_motion": "none",
        "semantic_masks": "semantic/{video}/{frame:06d}.png",
    }
    (out / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return AutolabelSummary(out, len(videos), frames, total_ann, len(tracks), sum(v.teacher_frames for v in videos), mask_sources, seconds)
