"""One video through the teacher, the tracker and the mask maker, resumable frame by frame.

The teacher is the only slow step, so it is the only one whose answers are
kept: every labelled frame appends one JSON line (boxes, scores, classes and
teacher masks) to ``autolabel/<video>.jsonl`` after its JPEG (and label PNG)
is on disk, and flushes. A resumed run decodes the video again from the
start and feeds the tracker and the background model exactly what they saw
before, taking the teacher's answers from the log instead of the model, so
track ids and motion masks come out identical to an uninterrupted run; the
teacher runs only on frames the log does not have.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.contracts import Detections
from pipeline.errors import TridentError
from pipeline.masks import InstanceMasks
from training.autolabel.motion import MotionMasker, fill_empty, int_box
from training.autolabel.options import AutolabelOptions
from training.autolabel.teacher import Teacher


@dataclass
class VideoLabels:
    """What one video contributed: image rows, annotation rows (frame_id, no global ids yet), MOT lines."""

    name: str
    source: str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    decoded: int = 0
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    mot_lines: list[str] = field(default_factory=list)
    mask_sources: Counter[str] = field(default_factory=Counter)
    teacher_frames: int = 0  # frames the teacher ran on in this call (the rest came from the log)


class WorkLog:
    """The teacher's answers per frame of one video: read what survived an interruption, append the rest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[int, dict] = {}
        if path.exists():
            good = []
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break  # the line being written when the run was stopped; everything after it is gone too
                self.records[int(rec["frame"])] = rec
                good.append(line)
            path.write_text("".join(g + "\n" for g in good))  # drop the torn tail before appending
        self._file = path.open("a")

    def append(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.records[int(record["frame"])] = record

    def close(self) -> None:
        self._file.close()


def _record(frame: int, dets: Detections, masks_mode: str) -> dict:
    rec = {
        "frame": frame,
        "boxes": dets.boxes.astype(float).tolist(),
        "scores": dets.scores.astype(float).tolist(),
        "classes": dets.class_ids.astype(int).tolist(),
    }
    if masks_mode == "teacher" and dets.masks is not None:
        rec["masks"] = dets.masks.rle()
    return rec


def _detections(rec: dict, hw: tuple[int, int]) -> tuple[Detections, list[np.ndarray] | None]:
    """The logged answer as Detections (floats round-trip exactly through JSON) and teacher crops if logged."""
    boxes = np.asarray(rec["boxes"], np.float32).reshape(-1, 4)
    dets = Detections(boxes=boxes, scores=np.asarray(rec["scores"], np.float32), class_ids=np.asarray(rec["classes"], np.int32))
    if "masks" not in rec:
        return dets, None
    from pycocotools import mask as mask_utils

    crops = []
    for box, rle in zip(boxes, rec["masks"]):
        x0, y0, x1, y1 = int_box(box, hw)
        full = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
        crops.append(full[y0:y1, x0:x1].astype(bool))
    return dets, crops


def _semantic_from_masks(hw: tuple[int, int], boxes: np.ndarray, classes: np.ndarray, crops: list[np.ndarray]) -> np.ndarray:
    """uint8 label map: background 0, class k -> k + 1, painted far to near.

    On a camera looking down at a floor, an object lower in the frame is
    nearer and hides the ones behind it, so boxes are painted in order of
    their bottom edge.
    """
    labels = np.zeros(hw, np.uint8)
    for i in np.argsort(boxes[:, 3], kind="stable"):
        x0, y0, x1, y1 = int_box(boxes[i], hw)
        labels[y0:y1, x0:x1][crops[i]] = int(classes[i]) + 1
    return labels


def label_video(
    source: str,
    name: str,
    out: Path,
    opts: AutolabelOptions,
    teacher: Teacher,
    semantic: str,
    on_frame: Callable[[], None] = lambda: None,
) -> VideoLabels:
    """Label `source` into `out` as video `name`; `semantic` is 'teacher', 'masks' or 'none'."""
    import av
    import cv2

    from trackers.config import TrackerConfig
    from trackers.factory import make_tracker

    labels = VideoLabels(name=name, source=source)
    img_dir, sem_dir = out / "images" / name, out / "semantic" / name
    img_dir.mkdir(parents=True, exist_ok=True)
    if semantic != "none":
        sem_dir.mkdir(parents=True, exist_ok=True)
    log = WorkLog(out / "autolabel" / f"{name}.jsonl")
    motion = MotionMasker() if opts.masks == "motion" else None
    tracker = None
    try:
        container = av.open(source)
    except (av.error.FFmpegError, OSError) as exc:
        log.close()
        raise TridentError(f"cannot open --source {source}: {exc}; pass a readable video file") from None
    try:
        stream = container.streams.video[0]
        labels.fps = float(opts.fps or stream.average_rate or 30.0)
        # Every teacher box is a label, so every box takes part in tracking: the tracker's score gates sit at --score.
        tracker = make_tracker(TrackerConfig(fps=labels.fps, high_score=opts.score, low_score=opts.score / 2,
                                             new_track_score=opts.score, output_filtered_boxes=False))
        for index, frame in enumerate(container.decode(stream)):
            image = frame.to_ndarray(format="bgr24")
            labels.decoded = index + 1
            labels.height, labels.width = image.shape[:2]
            foreground = motion.observe(image) if motion is not None else None
            if opts.frames.wanted(index):
                _label_frame(index, image, foreground, labels, log, teacher, tracker, motion, opts, semantic, img_dir, sem_dir, cv2)
                on_frame()
            if opts.frames.done_after(index):
                break
    except av.error.FFmpegError as exc:
        raise TridentError(f"--source {source} is damaged after frame {labels.decoded}: {exc}; the frames before it are kept, "
                           "re-encode the file or pass --frames to stop before the damage") from None
    finally:
        container.close()
        log.close()
    if labels.decoded == 0:
        raise TridentError(f"--source {source} has no decodable video frames; pass a video file")
    if not labels.images:
        raise TridentError(
            f"--frames {opts.frames.start}:{'' if opts.frames.stop is None else opts.frames.stop} selects no frame of "
            f"{source}, which has {labels.decoded} frames (0..{labels.decoded - 1}); choose a range inside it"
        )
    labels.mot_lines.sort(key=lambda line: tuple(int(v) for v in line.split(",")[:2]))
    return labels


def _label_frame(index, image, foreground, labels, log, teacher, tracker, motion, opts, semantic, img_dir, sem_dir, cv2) -> None:
    hw = image.shape[:2]
    rec = log.records.get(index)
    sem_path = sem_dir / f"{index:06d}.png"
    teacher_sem = None
    if rec is None:
        dets, teacher_sem = teacher(image)
        teacher_crops = None if opts.masks != "teacher" else list(dets.masks.crops)
        labels.teacher_frames += 1
    else:
        dets, teacher_crops = _detections(rec, hw)
    tracks = tracker.update(Detections(dets.boxes, dets.scores, dets.class_ids), index / labels.fps)
    track_ids = np.full(len(dets), -1, np.int64)  # -1: a box the tracker has not confirmed (kept as a detection label)
    matched = tracks.det_index >= 0
    track_ids[tracks.det_index[matched]] = tracks.track_ids[matched]

    crops = None
    if opts.masks == "motion":
        crops, _ = motion.masks(foreground, dets.boxes, track_ids)
        labels.mask_sources.update(motion.sources)
        motion.sources.clear()
    elif opts.masks == "teacher":
        crops = fill_empty(teacher_crops, labels.mask_sources)

    if rec is None:  # files first, the log line last: a logged frame always has its files
        cv2.imwrite(str(img_dir / f"{index:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, opts.jpeg_quality])
        if semantic == "teacher":
            cv2.imwrite(str(sem_path), teacher_sem.labels)
        elif semantic == "masks":
            cv2.imwrite(str(sem_path), _semantic_from_masks(hw, dets.boxes, dets.class_ids, crops))
        log.append(_record(index, dets, opts.masks))

    row = {"file_name": f"{labels.name}/{index:06d}.jpg", "width": int(hw[1]), "height": int(hw[0]), "frame_id": index,
           "video_file": labels.source}
    if semantic != "none":
        row["sem_file"] = f"semantic/{labels.name}/{index:06d}.png"
    labels.images.append(row)
    rles = InstanceMasks(tuple(crops), np.array([int_box(b, hw) for b in dets.boxes], np.int32).reshape(-1, 4), hw).rle() if crops else []
    for i in range(len(dets)):
        x0, y0, x1, y1 = (float(v) for v in dets.boxes[i])
        ann = {"frame_id": index, "category_id": int(dets.class_ids[i]) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
               "area": float(crops[i].sum()) if crops else (x1 - x0) * (y1 - y0), "iscrowd": 0,
               "track_id": int(track_ids[i]), "score": float(dets.scores[i])}
        if crops:
            ann["segmentation"] = rles[i]
        labels.annotations.append(ann)
        if track_ids[i] > 0:
            labels.mot_lines.append(f"{index + 1},{track_ids[i]},{x0:.1f},{y0:.1f},{x1 - x0:.1f},{y1 - y0:.1f},1,{int(dets.class_ids[i]) + 1},1.0")
