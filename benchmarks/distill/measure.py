"""Score a distilled student against its teacher on held-out frames, and time both through `trident run`.

    python benchmarks/distill/measure.py --data data/vtest --teacher runs/distill/teacher.onnx \
        --student runs/distill/student.onnx --source /usr/share/doc/opencv-doc/examples/data/vtest.avi \
        --json benchmarks/distill/results.json

1. Agreement: the student's boxes on the dataset's val split (frames it never trained on) scored with
   COCO AP against the teacher's labels of those frames, for `person` alone and for every class.
2. Masks: the share of the student's person detections (score >= --score) on those frames that carry a
   non-empty instance mask, read from `trident run`'s JSON Lines.
3. Speed: `trident run` over the whole clip (decode -> model -> ByteTrack -> annotated MP4 + JSONL), the
   whole process timed, teacher and student alternating (--repeats each), medians compared.

These are agreement numbers: the teacher's labels are the reference, not ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def person_ap(data: Path, model: str, split: str) -> dict:
    """COCO box AP of `model` on the split, person only and all classes, against the dataset's labels."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from engines.loader import load_engine
    from engines.postprocess import PostprocessConfig, postprocess
    from engines.preprocess import letterbox_batch
    from training.data import SyntheticVideoDataset

    ds = SyntheticVideoDataset(data, split)
    engine = load_engine(model, device="cpu")
    spec = engine.spec
    names = list(ds.thing_classes)
    if list(spec.class_names) != names:
        raise SystemExit(f"model classes {list(spec.class_names)} differ from the dataset's {names}")
    post = PostprocessConfig(score_threshold=0.001, max_detections=100)  # mAP uses every score, as `trident eval`
    rows = []
    for i, entry in enumerate(ds.entries):
        batch, lbs = letterbox_batch([ds.frame(i)], tuple(spec.input_hw), "cpu", spec.resize)
        dets, _ = postprocess(engine.infer(batch), spec, lbs, post)[0]
        for box, score, cls in zip(dets.boxes.tolist(), dets.scores.tolist(), dets.class_ids.tolist()):
            x0, y0, x1, y1 = box
            rows.append({"image_id": entry.image_id, "category_id": ds.category_ids[cls], "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score})
    engine.close()
    gt = COCO(str(ds.annotation_file))
    res = gt.loadRes(rows) if rows else None
    out = {"images": len(ds.entries), "gt_boxes": len(gt.getAnnIds())}
    for label, cats in (("person", [ds.category_ids[names.index("person")]]), ("all", list(ds.category_ids))):
        ev = COCOeval(gt, res, "bbox")
        ev.params.catIds = cats
        ev.params.imgIds = [e.image_id for e in ds.entries]
        ev.evaluate(), ev.accumulate(), ev.summarize()
        out[label] = {"ap50_95": round(float(ev.stats[0]), 4), "ap50": round(float(ev.stats[1]), 4), "ar100": round(float(ev.stats[8]), 4)}
    return out


def timed_run(model: str, source: str, out: Path, score: float) -> float:
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--source", source, "--model", model, "--out", str(out),
           "--score-threshold", str(score), "--no-progress"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def mask_coverage(jsonl: Path, first_frame: int, score: float) -> dict:
    from pycocotools import mask as mask_utils

    total = with_mask = frames = 0
    for line in jsonl.read_text().splitlines():
        rec = json.loads(line)
        if rec["frame"] < first_frame:
            continue
        frames += 1
        for obj in rec["objects"]:
            if obj["class"] != "person" or obj["score"] < score:
                continue
            total += 1
            m = obj.get("mask")
            if m and mask_utils.area({"size": m["size"], "counts": m["counts"].encode("ascii")}) > 0:
                with_mask += 1
    return {"frames": frames, "person_detections": total, "with_mask": with_mask, "share": round(with_mask / max(total, 1), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--score", type=float, default=0.35)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    agreement = person_ap(Path(args.data), args.student, args.split)
    val_frames = json.loads((Path(args.data) / "annotations" / f"instances_{args.split}.json").read_text())["images"]
    first = min(img["frame_id"] for img in val_frames)
    times: dict[str, list[float]] = {"teacher": [], "student": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = ("teacher", "student") if r % 2 == 0 else ("student", "teacher")  # A/B, then B/A: load drifts cancel
            for who in order:
                model = args.teacher if who == "teacher" else args.student
                times[who].append(round(timed_run(model, args.source, Path(tmp) / f"{who}{r}", args.score), 2))
        stem = Path(args.source).stem
        masks = mask_coverage(Path(tmp) / "student0" / f"{stem}.jsonl", first, args.score)
        teacher_frames = sum(1 for _ in (Path(tmp) / "teacher0" / f"{stem}.jsonl").open())
    med = {k: statistics.median(v) for k, v in times.items()}
    results = {
        "what": "student vs the teacher's labels on held-out frames (agreement, not ground truth)",
        "data": args.data, "split": args.split, "first_val_frame": first,
        "teacher": args.teacher, "student": args.student,
        "box_ap_vs_teacher": agreement,
        "student_person_masks": masks,
        "trident_run_wall_s": times, "trident_run_wall_median_s": med,
        "speed_ratio_student_over_teacher": round(med["student"] / med["teacher"], 3),
        "frames_in_jsonl": teacher_frames,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, shared with other jobs (load {os.getloadavg()[0]:.1f})",
    }
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
