"""Inference interval (`infer_every: K`): the network sees every K-th frame of a stream, the tracker predicts in between.

This is DeepStream's `interval` and Ultralytics' `vid_stride` made to keep an
output for every frame: on a frame the network skips, each stream's tracker
predicts (`tracker.predict(t)`, pure, no detection counted as missed) and
this module carries what the last inferred frame measured onto the predicted
boxes, so every sink still gets every frame:

- each track matched on the last inferred frame becomes a detection of this
  frame at its predicted box, with its score and class, and its mask moved
  and scaled with the box (nearest-neighbour resize of the box-local crop
  into the new integer box, cut at the frame's edge);
- `Tracks.det_index` of those tracks points at these carried rows (so JSON
  Lines keeps their track ids and masks, the picture draws them as usual);
  tracks already coasting at the last inferred frame keep det_index -1;
- the semantic map is the last inferred frame's (a scene's layout moves far
  slower than its objects);
- `FrameResult.inferred` is False, and JSON Lines writes `"inferred": false`.

The trade (benchmarks/bench_infer_every.py): K-1 of every K frames cost a
tracker step instead of letterbox + network + post-process; boxes in between
are the Kalman filter's, so fast turns and new objects are seen up to K-1
frames late.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.contracts import Detections, SemanticMap, Tracks
from pipeline.masks import InstanceMasks


@dataclass(frozen=True)
class _Measured:
    """What the last inferred frame said about one track."""

    score: float
    class_id: int
    crop: np.ndarray | None  # bool box-local mask, None when the model has no masks


class IntervalCarry:
    """Per stream: remembers the last inferred frame's tracks, carries them onto predicted frames."""

    def __init__(self) -> None:
        self._measured: dict[int, _Measured] = {}
        self._semantic: SemanticMap | None = None
        self._masks = False
        self._seen = False

    @property
    def ready(self) -> bool:
        """An inferred frame has been seen: there is something to carry."""
        return self._seen

    def remember(self, dets: Detections, tracks: Tracks | None, semantic: SemanticMap | None) -> None:
        """After an inferred frame: the tracks matched on it, with their detection's score, class and mask."""
        self._semantic, self._masks, self._seen = semantic, dets.masks is not None, True
        self._measured = {}
        if tracks is None:
            return
        for tid, row in zip(tracks.track_ids.tolist(), tracks.det_index.tolist()):
            if row >= 0:
                crop = dets.masks.crop(row) if dets.masks is not None else None
                self._measured[tid] = _Measured(float(dets.scores[row]), int(dets.class_ids[row]), crop)

    def carry(self, tracks: Tracks, frame_hw: tuple[int, int]) -> tuple[Detections, Tracks, SemanticMap | None]:
        """A predicted frame's (Detections, Tracks, SemanticMap) from `tracker.predict`'s tracks."""
        rows = [i for i, tid in enumerate(tracks.track_ids.tolist()) if tid in self._measured]
        measured = [self._measured[int(tracks.track_ids[i])] for i in rows]
        boxes = tracks.boxes[rows].astype(np.float32).reshape(-1, 4)
        masks = _moved_masks(boxes, [m.crop for m in measured], frame_hw) if self._masks else None
        dets = Detections(
            boxes=boxes,
            scores=np.array([m.score for m in measured], np.float32),
            class_ids=np.array([m.class_id for m in measured], np.int32),
            masks=masks,
        )
        det_index = np.full(len(tracks), -1, np.int32)
        det_index[rows] = np.arange(len(rows), dtype=np.int32)
        carried = Tracks(tracks.track_ids, tracks.boxes, tracks.scores, tracks.class_ids, det_index)
        semantic = self._semantic if self._semantic is not None and self._semantic.labels.shape == tuple(frame_hw) else None
        return dets, carried, semantic


def _moved_masks(boxes: np.ndarray, crops: list[np.ndarray | None], frame_hw: tuple[int, int]) -> InstanceMasks:
    """Each crop resized (nearest) into the integer box of its new float box, cut at the frame's edge."""
    import cv2

    h, w = frame_hw
    out_crops, out_boxes = [], []
    for box, crop in zip(boxes.tolist(), crops):
        x0, y0, x1, y1 = int(np.floor(box[0])), int(np.floor(box[1])), int(np.ceil(box[2])), int(np.ceil(box[3]))
        bw, bh = x1 - x0, y1 - y0
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if crop is None or crop.size == 0 or bw <= 0 or bh <= 0 or cx1 <= cx0 or cy1 <= cy0:
            out_crops.append(np.zeros((0, 0), bool))
            out_boxes.append((0, 0, 0, 0))
            continue
        resized = cv2.resize(crop.view(np.uint8), (bw, bh), interpolation=cv2.INTER_NEAREST).astype(bool)
        out_crops.append(np.ascontiguousarray(resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]))
        out_boxes.append((cx0, cy0, cx1, cy1))
    return InstanceMasks(tuple(out_crops), np.array(out_boxes, np.int32).reshape(-1, 4), (int(h), int(w)))
