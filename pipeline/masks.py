"""Instance masks sized by their boxes: each mask cropped to its integer box, plus the frame size.

A full-frame bool mask per detection costs N x H x W bytes (100 detections on
a 1080p frame: 207 MB per frame) although almost every pixel is outside the
object. `InstanceMasks` keeps instance i as ``crops[i]`` (bool[h_i, w_i]) at
``boxes[i]`` (x0, y0, x1, y1 in frame pixels, right/bottom exclusive), so
memory grows with box area. The few callers that need a frame-sized array
ask for it (`paste`, `dense`); everything on the hot path (COCO RLE for the
sinks and evaluation, mask IoU for the trackers, drawing) works from the
crops. numpy only: trackers and engines use it as a contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Sequence

import numpy as np

from pipeline.errors import ContractError

__all__ = ["InstanceMasks"]


@dataclass(frozen=True, eq=False, repr=False)
class InstanceMasks:
    """N instance masks of one frame, each cropped to its box.

    crops: tuple of bool[h_i, w_i] (a crop may be 0-size: an instance with no
    pixels); boxes: int32[N,4] x0, y0, x1, y1 of each crop in frame pixels,
    inside the frame, with (y1 - y0, x1 - x0) == crops[i].shape;
    frame_hw: (H, W) of the frame the boxes live in.
    """

    crops: tuple[np.ndarray, ...]
    boxes: np.ndarray
    frame_hw: tuple[int, int]

    def __post_init__(self) -> None:
        if __debug__:
            _validate(self.crops, self.boxes, self.frame_hw)

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def empty(cls, frame_hw: tuple[int, int], count: int = 0) -> "InstanceMasks":
        """``count`` instances with no pixels (0-size crops at the origin) in a frame of ``frame_hw``."""
        blank = np.zeros((0, 0), bool)
        return cls(tuple(blank for _ in range(count)), np.zeros((count, 4), np.int32), tuple(frame_hw))

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> "InstanceMasks":
        """bool[N,H,W] full-frame masks -> each cropped to its tight bounding box (copied, so the
        dense array can be freed). An all-False mask becomes a 0-size crop."""
        if not isinstance(masks, np.ndarray) or masks.ndim != 3:
            got = list(masks.shape) if isinstance(masks, np.ndarray) else type(masks).__name__
            raise ContractError(f"InstanceMasks.from_dense needs a bool[N,H,W] numpy array, got {got}")
        if masks.dtype != np.bool_:
            raise ContractError(f"InstanceMasks.from_dense needs bool masks, got {masks.dtype.name}; cast with .astype(bool)")
        n, h, w = masks.shape
        if h == 0 or w == 0:
            raise ContractError(f"InstanceMasks.from_dense got a frame of {h}x{w}; masks need a non-empty frame")
        rows, cols = masks.any(axis=2), masks.any(axis=1)  # [N,H], [N,W]
        has = rows.any(axis=1)
        boxes = np.stack(
            [cols.argmax(axis=1), rows.argmax(axis=1), w - cols[:, ::-1].argmax(axis=1), h - rows[:, ::-1].argmax(axis=1)], axis=1
        )
        boxes[~has] = 0
        boxes = boxes.astype(np.int32)
        crops = tuple(masks[i, y0:y1, x0:x1].copy() for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()))
        return cls(crops, boxes, (int(h), int(w)))

    @classmethod
    def concat(cls, parts: Sequence["InstanceMasks"]) -> "InstanceMasks":
        """Rows of several InstanceMasks of one frame size, in order."""
        if not parts:
            raise ContractError("InstanceMasks.concat needs at least one InstanceMasks (an empty list has no frame size)")
        hw = parts[0].frame_hw
        if any(p.frame_hw != hw for p in parts):
            raise ContractError(f"InstanceMasks.concat got frame sizes {sorted({p.frame_hw for p in parts})}; masks of one frame share one size")
        crops = tuple(c for p in parts for c in p.crops)
        return cls._trusted(crops, np.concatenate([p.boxes for p in parts]).astype(np.int32, copy=False), hw)

    @classmethod
    def _trusted(cls, crops: tuple[np.ndarray, ...], boxes: np.ndarray, frame_hw: tuple[int, int]) -> "InstanceMasks":
        """Rows of already validated masks: skip the per-crop checks (the trackers index every frame)."""
        out = object.__new__(cls)
        object.__setattr__(out, "crops", crops)
        object.__setattr__(out, "boxes", boxes)
        object.__setattr__(out, "frame_hw", frame_hw)
        return out

    # --- rows -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: np.ndarray | slice | Sequence[int]) -> "InstanceMasks":
        """Rows picked by an index array, a bool mask or a slice (so ``masks[tracks.det_index[tracks.det_index >= 0]]``
        follows tracks). A single int is refused: use `crop(i)` or `paste(i)` for one mask."""
        if isinstance(index, Integral):
            raise TypeError(
                "InstanceMasks[i] with one int is ambiguous; use masks.crop(i) for the box-local mask, "
                "masks.paste(i) for a full frame, or masks[[i]] for a one-row InstanceMasks"
            )
        if not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype != np.bool_ and index.size and index.min() < 0:
                # numpy would wrap -1 to the last row: a coasting track (det_index -1) would get someone else's mask
                raise ContractError(
                    "InstanceMasks rows must be >= 0, got -1 or below; a coasting track has det_index -1 and no mask, "
                    "so select masks[det_index[det_index >= 0]]"
                )
        rows = np.arange(len(self.crops))[index]
        return InstanceMasks._trusted(tuple(self.crops[r] for r in rows.tolist()), self.boxes[rows], self.frame_hw)

    def replace(self, rows: np.ndarray, other: "InstanceMasks") -> "InstanceMasks":
        """A copy whose ``rows`` hold ``other``'s masks, pairwise (a tracker keeping each track's last mask)."""
        if other.frame_hw != self.frame_hw:
            raise ContractError(f"InstanceMasks.replace: masks of a {other.frame_hw} frame cannot go into a {self.frame_hw} one")
        rows = np.asarray(rows, np.intp).reshape(-1)
        if len(rows) != len(other):
            raise ContractError(f"InstanceMasks.replace got {len(rows)} rows for {len(other)} masks; pass one row per mask")
        crops = list(self.crops)
        for r, c in zip(rows.tolist(), other.crops):
            crops[r] = c
        boxes = self.boxes.copy()
        boxes[rows] = other.boxes
        return InstanceMasks._trusted(tuple(crops), boxes, self.frame_hw)

    # --- pixels ---------------------------------------------------------------------------------
    def crop(self, i: int) -> np.ndarray:
        """bool[h, w] mask of instance i inside its box ``boxes[i]``."""
        return self.crops[i]

    def paste(self, i: int) -> np.ndarray:
        """bool[H, W]: instance i on a full frame."""
        out = np.zeros(self.frame_hw, bool)
        x0, y0, x1, y1 = self.boxes[i].tolist()
        out[y0:y1, x0:x1] = self.crops[i]
        return out

    def dense(self) -> np.ndarray:
        """bool[N, H, W] full-frame masks; N x H x W bytes, for the rare caller that needs them."""
        out = np.zeros((len(self), *self.frame_hw), bool)
        for i, (x0, y0, x1, y1) in enumerate(self.boxes.tolist()):
            out[i, y0:y1, x0:x1] = self.crops[i]
        return out

    def areas(self) -> np.ndarray:
        """int64[N] pixels per instance."""
        return np.fromiter((np.count_nonzero(c) for c in self.crops), np.int64, len(self.crops))

    @property
    def nbytes(self) -> int:
        """Bytes of the crops and boxes (what these masks cost to hold)."""
        return int(sum(c.nbytes for c in self.crops) + self.boxes.nbytes)

    def __repr__(self) -> str:
        return f"InstanceMasks(n={len(self)}, frame_hw={self.frame_hw}, nbytes={self.nbytes})"

    # --- encodings and similarity ---------------------------------------------------------------
    def rle(self) -> list[dict]:
        """COCO RLE of each full-frame mask, ``{"size": [H, W], "counts": str}``, equal to
        ``pycocotools.mask.encode`` of the dense masks, computed from the crops without ever
        building a frame-sized array."""
        if len(self) == 0:
            return []
        from pycocotools import mask as mask_utils  # lazy: only sinks and evaluation encode

        h, w = self.frame_hw
        objs = [{"size": [h, w], "counts": c} for c in _uncompressed_counts(self.crops, self.boxes, h, w)]
        return [{"size": [h, w], "counts": r["counts"].decode("ascii")} for r in mask_utils.frPyObjects(objs, h, w)]

    def iou(self, other: "InstanceMasks") -> np.ndarray:
        """float64[M, N] mask IoU against ``other`` (same frame size), counted only where two crops
        overlap: pairs whose boxes are apart, or with an empty mask, are 0."""
        if not isinstance(other, InstanceMasks):
            raise ContractError(f"InstanceMasks.iou needs another InstanceMasks, got {type(other).__name__}")
        if other.frame_hw != self.frame_hw:
            raise ContractError(
                f"mask IoU between masks of frame size {self.frame_hw} and {other.frame_hw}; "
                "masks of different frames cannot be compared"
            )
        m, n = len(self), len(other)
        out = np.zeros((m, n))
        if m == 0 or n == 0:
            return out
        a, b = self.boxes.astype(np.int64), other.boxes.astype(np.int64)
        area_a, area_b = self.areas(), other.areas()
        ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
        iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
        ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
        iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
        pi, pj = np.nonzero((ix1 > ix0) & (iy1 > iy0) & (area_a[:, None] > 0) & (area_b[None, :] > 0))
        inter = np.zeros((m, n), np.int64)
        # The overlap of each pair in both crops' coordinates, as plain ints: the loop is per pair,
        # so it avoids numpy scalar indexing (the pixel work is one AND and one count per pair).
        x0, y0, x1, y1 = ix0[pi, pj], iy0[pi, pj], ix1[pi, pj], iy1[pi, pj]
        ax, ay, bx, by = a[pi, 0], a[pi, 1], b[pj, 0], b[pj, 1]
        cols = np.stack([y0 - ay, y1 - ay, x0 - ax, x1 - ax, y0 - by, y1 - by, x0 - bx, x1 - bx], axis=1).tolist()
        ca, cb = self.crops, other.crops
        inter[pi, pj] = [
            np.count_nonzero(ca[i][r0:r1, c0:c1] & cb[j][s0:s1, d0:d1])
            for i, j, (r0, r1, c0, c1, s0, s1, d0, d1) in zip(pi.tolist(), pj.tolist(), cols)
        ]
        union = (area_a[:, None] + area_b[None, :] - inter).astype(np.float64)
        np.divide(inter, union, out=out, where=union > 0)
        return out


def _uncompressed_counts(crops: tuple[np.ndarray, ...], boxes: np.ndarray, h: int, w: int) -> list[np.ndarray]:
    """Canonical COCO run lengths (column-major over the full frame, starting with a 0-run) per crop.

    Every vertical transition of every crop (a crop column padded by a False
    row above and below) is found in one pass over all crops, mapped to its
    frame index ``(x0 + col) * H + (y0 + row)`` and sorted per instance. A run
    that leaves the bottom of one frame column and enters the top of the next
    gives an end and a start at the same index; both are dropped so the run is
    one count, as pycocotools writes it.
    """
    n = len(crops)
    hs = np.fromiter((c.shape[0] if c.size else 0 for c in crops), np.int64, n)
    ws = np.fromiter((c.shape[1] if c.size else 0 for c in crops), np.int64, n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum((hs + 1) * ws, out=offsets[1:])
    edges = np.empty(int(offsets[-1]), bool)
    for i, c in enumerate(crops):
        ch = int(hs[i])
        if ch == 0:
            continue
        d = edges[offsets[i] : offsets[i + 1]].reshape(ch + 1, c.shape[1])  # d[r] = row r differs from row r-1
        d[0] = c[0]
        np.not_equal(c[1:], c[:-1], out=d[1:ch])
        d[ch] = c[-1]
    at = np.flatnonzero(edges)
    inst = np.searchsorted(offsets, at, side="right") - 1
    row, col = np.divmod(at - offsets[inst], ws[inst])
    b = boxes.astype(np.int64)
    pos = (b[inst, 0] + col) * h + b[inst, 1] + row
    # Column-major within each instance. Not a stable sort (numpy's SIMD sort is several times faster):
    # equal keys only occur as a joined end/start pair, and both of those are dropped below.
    order = np.argsort(inst * (h * w + 1) + pos)
    pos, inst = pos[order], inst[order]
    joined = (pos[1:] == pos[:-1]) & (inst[1:] == inst[:-1])
    if joined.any():
        keep = np.ones(len(pos), bool)
        keep[1:][joined] = False
        keep[:-1][joined] = False
        pos, inst = pos[keep], inst[keep]
    per = np.bincount(inst, minlength=n)
    # Per instance the boundaries are [0, transitions..., H*W]; their differences are the counts.
    starts = np.cumsum(per + 2) - (per + 2)
    bounds = np.empty(len(pos) + 2 * n, np.int64)
    bounds[starts] = 0
    bounds[starts + per + 1] = h * w
    bounds[np.arange(len(pos)) + 2 * inst + 1] = pos
    counts = np.diff(bounds)
    last = np.zeros(n, bool)  # a mask that ends on the frame's last pixel has no trailing 0-run
    last[per > 0] = bounds[starts[per > 0] + per[per > 0]] == h * w
    lens = per + 1 - last
    return [counts[s : s + k] for s, k in zip(starts.tolist(), lens.tolist())]


def _validate(crops: object, boxes: object, frame_hw: object) -> None:
    if (
        not isinstance(frame_hw, tuple)
        or len(frame_hw) != 2
        or not all(isinstance(v, Integral) and v > 0 for v in frame_hw)
    ):
        raise ContractError(f"InstanceMasks.frame_hw must be a tuple (H, W) of positive ints, got {frame_hw!r}")
    if not isinstance(crops, tuple):
        raise ContractError(f"InstanceMasks.crops must be a tuple of bool arrays, got {type(crops).__name__}; pass tuple(crops)")
    if not isinstance(boxes, np.ndarray) or boxes.dtype != np.int32 or boxes.shape != (len(crops), 4):
        got = f"{boxes.dtype.name}{list(boxes.shape)}" if isinstance(boxes, np.ndarray) else type(boxes).__name__
        raise ContractError(
            f"InstanceMasks.boxes must be int32[{len(crops)},4] (x0, y0, x1, y1 of each crop), got {got}; "
            "build it with np.asarray(boxes, np.int32)"
        )
    h, w = frame_hw
    x0, y0, x1, y1 = boxes.T
    outside = (x0 < 0) | (y0 < 0) | (x1 > w) | (y1 > h) | (x1 < x0) | (y1 < y0)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ContractError(
            f"InstanceMasks.boxes[{i}] = {boxes[i].tolist()} is not inside the {h}x{w} frame with x0<=x1, y0<=y1; "
            "clip each crop box to the frame"
        )
    for i, c in enumerate(crops):
        if not isinstance(c, np.ndarray) or c.dtype != np.bool_ or c.ndim != 2:
            got = f"{c.dtype.name}{list(c.shape)}" if isinstance(c, np.ndarray) else type(c).__name__
            raise ContractError(f"InstanceMasks.crops[{i}] must be a 2-D bool array, got {got}; cast with .astype(bool)")
        if c.shape != (int(y1[i] - y0[i]), int(x1[i] - x0[i])):
            raise ContractError(
                f"InstanceMasks.crops[{i}] has shape {list(c.shape)} but its box {boxes[i].tolist()} is "
                f"{int(y1[i] - y0[i])}x{int(x1[i] - x0[i])}; a crop covers exactly its box"
            )
