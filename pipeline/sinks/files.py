"""Text sinks: MOTChallenge tracks and JSON Lines (boxes, scores, classes, track ids, RLE masks).

Both write one line per record and flush per frame, so a run stopped at any
point leaves files that parse up to the last complete frame.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.sinks.base import Sink
from pipeline.contracts import FrameResult


class MotSink(Sink):
    """`frame,id,x,y,w,h,score,class,-1` with 1-based frames; class is 1-based like MOT's."""

    def __init__(self, path: Path):
        self.name = f"mot:{path.name}"
        self.stage = "mot"
        self.path = path
        self._f = open(path, "w", encoding="utf-8")

    def write(self, result: FrameResult) -> None:
        tracks = result.tracks
        if tracks is None:
            return
        frame = result.frame.index + 1
        lines = []
        for tid, (x0, y0, x1, y1), score, cls in zip(tracks.track_ids, tracks.boxes, tracks.scores, tracks.class_ids):
            lines.append(f"{frame},{int(tid)},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},{score:.4f},{int(cls) + 1},-1\n")
        self._f.writelines(lines)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class JsonlSink(Sink):
    """One JSON object per frame: detections with their track id (or null) and COCO RLE masks."""

    def __init__(self, path: Path, class_names: tuple[str, ...], masks: bool = True):
        self.name = f"jsonl:{path.name}"
        self.stage = "jsonl"
        self.path, self.class_names, self.masks = path, class_names, masks
        self._f = open(path, "w", encoding="utf-8")

    def write(self, result: FrameResult) -> None:
        dets, tracks = result.detections, result.tracks
        track_of = {}
        if tracks is not None:
            track_of = {d: t for t, d in zip(tracks.track_ids.tolist(), tracks.det_index.tolist()) if d >= 0}
        rles = dets.masks.rle() if (self.masks and dets.masks is not None) else None  # from the box crops
        objects = []
        # .tolist() once per array: Python floats of the same float32 values, without a numpy scalar per field
        for i, (box, score, cls) in enumerate(zip(dets.boxes.tolist(), dets.scores.tolist(), dets.class_ids.tolist())):
            obj = {
                "box": [round(v, 2) for v in box],
                "score": round(score, 4),
                "class_id": cls,
                "class": self.class_names[cls] if cls < len(self.class_names) else str(cls),
                "track_id": track_of.get(i),
            }
            if rles is not None:
                obj["mask"] = rles[i]
            objects.append(obj)
        record = {
            "stream": result.frame.stream_id,
            "frame": result.frame.index,
            "pts": round(result.frame.pts, 4),
            "objects": objects,
            "timings_ms": {k: round(v * 1e3, 3) for k, v in result.timings.items()},
        }
        if not result.inferred:  # infer_every: the tracker's predictions carrying the last measurements
            record["inferred"] = False
        if tracks is not None:
            record["coasting_tracks"] = [t for t, d in zip(tracks.track_ids.tolist(), tracks.det_index.tolist()) if d < 0]
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
