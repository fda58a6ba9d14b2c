"""Tracking metrics: HOTA (DetA, AssA, LocA), CLEAR MOT (MOTA, MOTP) and IDF1.

Definitions follow the papers and the MOTChallenge evaluation protocol, so the
numbers are comparable with published ones:

- HOTA: Luiten et al., "HOTA: A Higher Order Metric for Evaluating
  Multi-Object Tracking", IJCV 2021. Averaged over IoU thresholds
  alpha = 0.05, 0.10, ..., 0.95.
- MOTA/MOTP: Bernardin & Stiefelhagen, "Evaluating Multiple Object Tracking
  Performance: The CLEAR MOT Metrics", 2008, with the MOTChallenge rule that a
  match continued from the previous frame wins over a better-IoU newcomer.
- IDF1: Ristani et al., "Performance Measures and a Data Set for
  Multi-Target, Multi-Camera Tracking", 2016.

tests/trackers/test_metrics_trackeval.py checks every number against the
`trackeval` package (the MOTChallenge reference) to 1e-6. Ground-truth rows
whose conf column is 0 are ignored, as in MOTChallenge gt files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.errors import TridentError
from trackers.matching import box_iou, gate_classes
from trackers.mot_io import MotSequence

__all__ = ["MotMetrics", "evaluate_mot", "combine_metrics", "HOTA_ALPHAS"]

HOTA_ALPHAS = np.arange(0.05, 0.99, 0.05)
# IoUs are floats: a pair exactly at a threshold must count as reaching it.
_EPS = np.finfo(float).eps


@dataclass(frozen=True, eq=False)
class MotMetrics:
    """Metrics of one sequence (or several combined). Ratios are in [0, 1]."""

    hota: float
    deta: float
    assa: float
    loca: float
    mota: float
    motp: float
    idf1: float
    idp: float
    idr: float
    tp: int            # CLEAR true positives (IoU >= threshold)
    fp: int
    fn: int
    idsw: int
    frag: int
    mt: int            # ground-truth tracks covered > 80 % of their life
    pt: int
    ml: int            # covered < 20 %
    idtp: int
    idfp: int
    idfn: int
    num_gt_dets: int
    num_res_dets: int
    num_gt_ids: int
    num_res_ids: int
    # Per-alpha HOTA counts, kept so sequences combine exactly (like the
    # benchmark does) instead of by averaging per-sequence scores.
    hota_arrays: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    motp_sum: float = field(repr=False, default=0.0)

    def summary(self) -> dict[str, float | int]:
        """The headline numbers, JSON-ready."""
        keys = ("hota", "deta", "assa", "loca", "mota", "motp", "idf1", "idp", "idr", "tp", "fp", "fn", "idsw",
                "frag", "mt", "pt", "ml", "idtp", "idfp", "idfn", "num_gt_dets", "num_res_dets", "num_gt_ids", "num_res_ids")
        return {k: getattr(self, k) for k in keys}


@dataclass
class _Frame:
    gt: np.ndarray      # contiguous gt id indices
    res: np.ndarray     # contiguous result id indices
    sim: np.ndarray     # [len(gt), len(res)] IoU


def _frames(gt: MotSequence, res: MotSequence, class_aware: bool, names: tuple[str, str]) -> tuple[list[_Frame], int, int]:
    """Per-frame id indices and IoU matrices over every frame either file covers."""
    _, gt_idx = np.unique(gt.ids, return_inverse=True)
    _, res_idx = np.unique(res.ids, return_inverse=True)
    n_gt_ids = int(gt_idx.max()) + 1 if len(gt) else 0
    n_res_ids = int(res_idx.max()) + 1 if len(res) else 0
    gs, rs = gt.frame_slices(), res.frame_slices()
    for seq, slices, name in ((gt, gs, names[0]), (res, rs, names[1])):
        for f, sl in slices.items():
            ids = seq.ids[sl]
            if len(np.unique(ids)) != len(ids):
                raise TridentError(f"{name}: frame {f} has the same id twice; each id may appear once per frame")
    frames = []
    empty = slice(0, 0)
    for f in range(1, max(gt.last_frame, res.last_frame) + 1):
        g, r = gs.get(f, empty), rs.get(f, empty)
        sim = box_iou(_xyxy(gt.boxes[g]), _xyxy(res.boxes[r]))
        if class_aware:
            sim = gate_classes(sim, gt.classes[g], res.classes[r])
        frames.append(_Frame(gt_idx[g], res_idx[r], sim))
    return frames, n_gt_ids, n_res_ids


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _hota(frames: list[_Frame], n_gt: int, n_res: int) -> dict[str, np.ndarray]:
    # Pass 1: how strongly each gt id and result id overlap over the whole
    # sequence (soft, IoU-weighted): this global alignment decides per-frame
    # matching, so a result that follows one object for long wins its frames.
    potential = np.zeros((n_gt, n_res))
    gt_count = np.zeros(n_gt)
    res_count = np.zeros(n_res)
    for fr in frames:
        gt_count[fr.gt] += 1
        res_count[fr.res] += 1
        if fr.sim.size:
            denom = fr.sim.sum(0)[None, :] + fr.sim.sum(1)[:, None] - fr.sim
            soft = np.zeros_like(fr.sim)
            np.divide(fr.sim, denom, out=soft, where=denom > _EPS)
            potential[np.ix_(fr.gt, fr.res)] += soft
    alignment = potential / np.maximum(gt_count[:, None] + res_count[None, :] - potential, _EPS)

    # Pass 2: per-frame matching maximising alignment * IoU, then each alpha
    # keeps the matches whose IoU reaches it.
    na = len(HOTA_ALPHAS)
    tp, fn, fp, loc = np.zeros(na), np.zeros(na), np.zeros(na), np.zeros(na)
    pairs: list[list[np.ndarray]] = [[] for _ in range(na)]
    for fr in frames:
        if fr.sim.size == 0:
            fn += len(fr.gt)
            fp += len(fr.res)
            continue
        score = alignment[np.ix_(fr.gt, fr.res)] * fr.sim
        r, c = linear_sum_assignment(-score)
        s = fr.sim[r, c]
        ok = s[None, :] >= HOTA_ALPHAS[:, None] - _EPS       # [alpha, match]
        k = ok.sum(1)
        tp += k
        fn += len(fr.gt) - k
        fp += len(fr.res) - k
        loc += (ok * s[None, :]).sum(1)
        codes = fr.gt[r] * n_res + fr.res[c]
        for a in np.flatnonzero(k):
            pairs[a].append(codes[ok[a]])
    assa, assre, asspr = np.zeros(na), np.zeros(na), np.zeros(na)
    for a in range(na):
        if not pairs[a]:
            continue
        codes, counts = np.unique(np.concatenate(pairs[a]), return_counts=True)
        g, t = codes // n_res, codes % n_res
        # Each true positive scores the association IoU of its (gt, result)
        # id pair: how much of both tracks' lives that pairing covers.
        assa[a] = np.sum(counts * counts / (gt_count[g] + res_count[t] - counts)) / max(1.0, tp[a])
        assre[a] = np.sum(counts * counts / np.maximum(1, gt_count[g])) / max(1.0, tp[a])
        asspr[a] = np.sum(counts * counts / np.maximum(1, res_count[t])) / max(1.0, tp[a])
    loca = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    return {"TP": tp, "FN": fn, "FP": fp, "AssA": assa, "AssRe": assre, "AssPr": asspr, "LocA": loca}


def _clear(frames: list[_Frame], n_gt: int, iou_threshold: float) -> dict[str, float]:
    tp = fn = fp = idsw = 0
    motp_sum = 0.0
    last_matched = np.full(n_gt, -1)     # result id a gt id was last matched to (IDSW)
    prev_frame = np.full(n_gt, -1)       # result id matched in the previous evaluated frame
    gt_count = np.zeros(n_gt)
    gt_matched = np.zeros(n_gt)
    frag_starts = np.zeros(n_gt)
    for fr in frames:
        # As in the MOTChallenge devkit, a frame with no ground truth or no
        # results leaves the previous frame's matches in place for continuity.
        if len(fr.gt) == 0:
            fp += len(fr.res)
            continue
        gt_count[fr.gt] += 1
        if len(fr.res) == 0:
            fn += len(fr.gt)
            continue
        continued = fr.res[None, :] == prev_frame[fr.gt][:, None]
        score = 1000.0 * continued + fr.sim
        score[fr.sim < iou_threshold - _EPS] = 0.0
        r, c = linear_sum_assignment(-score)
        ok = score[r, c] > _EPS
        r, c = r[ok], c[ok]
        g, t = fr.gt[r], fr.res[c]
        idsw += int(np.sum((last_matched[g] >= 0) & (last_matched[g] != t)))
        gt_matched[g] += 1
        was_untracked = prev_frame == -1
        last_matched[g] = t
        prev_frame[:] = -1
        prev_frame[g] = t
        frag_starts += was_untracked & (prev_frame != -1)
        tp += len(g)
        fn += len(fr.gt) - len(g)
        fp += len(fr.res) - len(g)
        motp_sum += float(fr.sim[r, c].sum())
    seen = gt_count > 0
    ratio = gt_matched[seen] / gt_count[seen]
    mt = int(np.sum(ratio > 0.8))
    pt = int(np.sum(ratio >= 0.2)) - mt
    return {"TP": tp, "FN": fn, "FP": fp, "IDSW": idsw, "MOTP_sum": motp_sum, "MT": mt, "PT": pt,
            "ML": len(ratio) - mt - pt, "Frag": int(np.sum(frag_starts[frag_starts > 0] - 1))}


def _identity(frames: list[_Frame], n_gt: int, n_res: int, iou_threshold: float) -> dict[str, int]:
    # Frames in which each (gt id, result id) pair overlaps enough; IDF1 then
    # pairs ids one-to-one for the whole sequence to maximise that count.
    overlap = np.zeros((n_gt, n_res))
    num_gt = num_res = 0
    for fr in frames:
        num_gt += len(fr.gt)
        num_res += len(fr.res)
        gi, ri = np.nonzero(fr.sim >= iou_threshold - _EPS)
        np.add.at(overlap, (fr.gt[gi], fr.res[ri]), 1)
    idtp = 0
    if overlap.size:
        r, c = linear_sum_assignment(-overlap)
        idtp = int(round(overlap[r, c].sum()))
    return {"IDTP": idtp, "IDFN": num_gt - idtp, "IDFP": num_res - idtp}


def _finish(h: dict[str, np.ndarray], c: dict[str, float], i: dict[str, int], counts: Sequence[int]) -> MotMetrics:
    deta = h["TP"] / np.maximum(1.0, h["TP"] + h["FN"] + h["FP"])
    hota = np.sqrt(deta * h["AssA"])
    idtp, idfp, idfn = i["IDTP"], i["IDFP"], i["IDFN"]
    return MotMetrics(
        hota=float(hota.mean()), deta=float(deta.mean()), assa=float(h["AssA"].mean()), loca=float(h["LocA"].mean()),
        mota=(c["TP"] - c["FP"] - c["IDSW"]) / max(1.0, c["TP"] + c["FN"]),
        motp=c["MOTP_sum"] / max(1.0, c["TP"]),
        idf1=idtp / max(1.0, idtp + 0.5 * idfp + 0.5 * idfn),
        idp=idtp / max(1.0, idtp + idfp), idr=idtp / max(1.0, idtp + idfn),
        tp=int(c["TP"]), fp=int(c["FP"]), fn=int(c["FN"]), idsw=int(c["IDSW"]), frag=int(c["Frag"]),
        mt=int(c["MT"]), pt=int(c["PT"]), ml=int(c["ML"]), idtp=idtp, idfp=idfp, idfn=idfn,
        num_gt_dets=counts[0], num_res_dets=counts[1], num_gt_ids=counts[2], num_res_ids=counts[3],
        hota_arrays=h, motp_sum=float(c["MOTP_sum"]),
    )


def evaluate_mot(
    gt: MotSequence,
    res: MotSequence,
    *,
    iou_threshold: float = 0.5,
    class_aware: bool = False,
    classes: Iterable[int] | None = None,
    names: tuple[str, str] = ("ground truth", "results"),
) -> MotMetrics:
    """HOTA, CLEAR and identity metrics of one sequence.

    iou_threshold applies to MOTA and IDF1 (HOTA averages its own thresholds).
    class_aware forbids matching a result to ground truth of another class;
    classes keeps only rows of those classes in both files. `names` label the
    two inputs in error messages (pass the file paths).
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise TridentError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    gt = gt.select(gt.scores != 0)        # MOTChallenge: conf 0 marks gt to ignore
    if classes is not None:
        wanted = np.asarray(list(classes), dtype=np.int64)
        gt = gt.select(np.isin(gt.classes, wanted))
        res = res.select(np.isin(res.classes, wanted))
    frames, n_gt, n_res = _frames(gt, res, class_aware, names)
    counts = (len(gt), len(res), n_gt, n_res)
    return _finish(_hota(frames, n_gt, n_res), _clear(frames, n_gt, iou_threshold),
                   _identity(frames, n_gt, n_res, iou_threshold), counts)


def combine_metrics(parts: Sequence[MotMetrics]) -> MotMetrics:
    """Several sequences as one benchmark: counts add up, association and
    localisation scores are weighted by true positives (the MOTChallenge way)."""
    if not parts:
        raise TridentError("combine_metrics needs at least one sequence")
    tp = sum(p.hota_arrays["TP"] for p in parts)
    h = {k: sum(p.hota_arrays[k] for p in parts) for k in ("TP", "FN", "FP")}
    for k in ("AssA", "AssRe", "AssPr"):
        h[k] = sum(p.hota_arrays[k] * p.hota_arrays["TP"] for p in parts) / np.maximum(1.0, tp)
    loc = sum(p.hota_arrays["LocA"] * p.hota_arrays["TP"] for p in parts)
    h["LocA"] = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    c = {"TP": sum(p.tp for p in parts), "FN": sum(p.fn for p in parts), "FP": sum(p.fp for p in parts),
         "IDSW": sum(p.idsw for p in parts), "MOTP_sum": sum(p.motp_sum for p in parts),
         "MT": sum(p.mt for p in parts), "PT": sum(p.pt for p in parts), "ML": sum(p.ml for p in parts),
         "Frag": sum(p.frag for p in parts)}
    i = {"IDTP": sum(p.idtp for p in parts), "IDFP": sum(p.idfp for p in parts), "IDFN": sum(p.idfn for p in parts)}
    counts = tuple(sum(getattr(p, k) for p in parts) for k in ("num_gt_dets", "num_res_dets", "num_gt_ids", "num_res_ids"))
    return _finish(h, c, i, counts)


def format_table(rows: dict[str, MotMetrics]) -> str:
    """A fixed-width text table of the headline metrics, one row per name."""
    width = max([14, *(len(name) + 1 for name in rows)])
    head = f"{'':<{width}}{'HOTA':>7}{'DetA':>7}{'AssA':>7}{'LocA':>7}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}{'FP':>7}{'FN':>7}"
    lines = [head]
    for name, m in rows.items():
        lines.append(
            f"{name:<{width}}{100 * m.hota:7.2f}{100 * m.deta:7.2f}{100 * m.assa:7.2f}{100 * m.loca:7.2f}"
            f"{100 * m.mota:7.2f}{100 * m.idf1:7.2f}{m.idsw:6d}{m.fp:7d}{m.fn:7d}"
        )
    return "\n".join(lines)
