"""HOTA / MOTA / IDF1: hand-computed tiny cases, and equality with trackeval
(the MOTChallenge reference implementation) to 1e-6 on the same files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import TridentError
from trackers import TrackerConfig, make_tracker
from trackers.metrics import HOTA_ALPHAS, combine_metrics, evaluate_mot
from trackers.mot_io import MotSequence, read_mot, tracks_to_sequence, write_mot

KEYS = ("hota", "deta", "assa", "loca", "mota", "motp", "idf1", "idp", "idr", "tp", "fp", "fn", "idsw",
        "frag", "mt", "pt", "ml", "idtp", "idfp", "idfn")


def seq(rows: list[tuple]) -> MotSequence:
    """rows of (frame, id, x, y, w, h[, conf]) -> MotSequence with class 1 (pedestrian)."""
    a = np.array([r if len(r) == 7 else (*r, 1.0) for r in rows], dtype=np.float64).reshape(-1, 7)
    order = np.lexsort((a[:, 1], a[:, 0]))
    a = a[order]
    return MotSequence(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:6], a[:, 6],
                       np.ones(len(a), np.int64), np.ones(len(a)))


def _check_against_trackeval(oracle_fn, tmp_path: Path, pairs: list[tuple[MotSequence, MotSequence]]) -> None:
    files = []
    for k, (gt, res) in enumerate(pairs):
        write_mot(tmp_path / f"gt{k}.txt", gt)
        write_mot(tmp_path / f"res{k}.txt", res)
        files.append((tmp_path / f"gt{k}.txt", tmp_path / f"res{k}.txt", max(gt.last_frame, res.last_frame, 1)))
    oracle = oracle_fn(files, tmp_path / "trackeval")
    ours = [evaluate_mot(read_mot(g), read_mot(r)) for g, r, _ in files]
    for k, m in enumerate(ours):
        for key in KEYS:
            assert getattr(m, key) == pytest.approx(oracle[f"seq{k}"][key], abs=1e-6), f"seq{k} {key}"
    combined = combine_metrics(ours)
    for key in KEYS:
        assert getattr(combined, key) == pytest.approx(oracle["combined"][key], abs=1e-6), f"combined {key}"


# --- hand-computed cases -------------------------------------------------

ID_SWITCH = (
    seq([(f, 1, 0, 0, 10, 10) for f in range(1, 5)]),
    seq([(f, 1 if f <= 2 else 2, 0, 0, 10, 10) for f in range(1, 5)]),
)
FALSE_POSITIVES = (
    seq([(f, i, 30 * i, 0, 10, 10) for f in (1, 2) for i in (1, 2)]),
    seq([(f, i, 30 * i, 0, 10, 10) for f in (1, 2) for i in (1, 2)] + [(f, 9, 200, 200, 10, 10) for f in (1, 2)]),
)
LOOSE_BOX = (seq([(1, 1, 0, 0, 10, 10)]), seq([(1, 1, 0, 0, 10, 6.2)]))   # IoU 0.62


def test_id_switch_halves_association_and_costs_one_mota_switch() -> None:
    m = evaluate_mot(*ID_SWITCH)
    # Every frame detected: DetA 1. Each half pairs gt 1 with one result id:
    # A(gt1, res1) = 2 / (4 + 2 - 2) = 0.5, the same for res2, so AssA 0.5.
    assert m.deta == pytest.approx(1.0) and m.assa == pytest.approx(0.5)
    assert m.hota == pytest.approx(math.sqrt(0.5))
    assert (m.tp, m.fp, m.fn, m.idsw) == (4, 0, 0, 1)
    assert m.mota == pytest.approx((4 - 0 - 1) / 4)
    assert m.idtp == 2 and m.idf1 == pytest.approx(2 * 2 / (4 + 4))


def test_false_positives_lower_detection_accuracy_only() -> None:
    m = evaluate_mot(*FALSE_POSITIVES)
    assert m.deta == pytest.approx(4 / 6) and m.assa == pytest.approx(1.0)
    assert m.hota == pytest.approx(math.sqrt(4 / 6))
    assert m.mota == pytest.approx((4 - 2) / 4)
    assert m.idf1 == pytest.approx(2 * 4 / (4 + 6))
    assert (m.mt, m.pt, m.ml) == (2, 0, 0)


def test_a_loose_box_counts_only_at_hota_thresholds_it_reaches() -> None:
    m = evaluate_mot(*LOOSE_BOX)
    reached = int(np.sum(HOTA_ALPHAS <= 0.62))
    assert reached == 12
    assert m.hota == pytest.approx(reached / 19) and m.deta == pytest.approx(reached / 19)
    # LocA is 1 by convention at thresholds with no match, as in the HOTA code.
    assert m.loca == pytest.approx((reached * 0.62 + (19 - reached) * 1.0) / 19)
    assert m.mota == pytest.approx(1.0) and m.motp == pytest.approx(0.62)


def test_perfect_results_score_one_everywhere() -> None:
    gt = seq([(f, i, 40 * i + f, 10, 20, 30) for f in range(1, 6) for i in range(3)])
    m = evaluate_mot(gt, gt)
    assert (m.hota, m.deta, m.assa, m.loca, m.mota, m.idf1) == pytest.approx((1, 1, 1, 1, 1, 1))


def test_empty_results_score_zero_and_count_every_miss() -> None:
    gt = seq([(f, 1, 0, 0, 10, 10) for f in range(1, 4)])
    m = evaluate_mot(gt, seq([]))
    assert (m.hota, m.mota, m.idf1) == (0.0, 0.0, 0.0) and m.fn == 3


def test_zero_marked_ground_truth_is_ignored() -> None:
    gt = seq([(1, 1, 0, 0, 10, 10), (1, 2, 50, 0, 10, 10, 0.0)])
    m = evaluate_mot(gt, seq([(1, 1, 0, 0, 10, 10)]))
    assert m.num_gt_dets == 1 and m.mota == pytest.approx(1.0)


def test_duplicate_id_in_one_frame_is_an_error_naming_the_file() -> None:
    bad = seq([(3, 7, 0, 0, 10, 10), (3, 7, 50, 0, 10, 10)])
    with pytest.raises(TridentError, match="res.txt: frame 3 has the same id twice"):
        evaluate_mot(seq([(1, 1, 0, 0, 5, 5)]), bad, names=("gt.txt", "res.txt"))


def test_class_aware_evaluation_refuses_cross_class_matches() -> None:
    gt = seq([(1, 1, 0, 0, 10, 10)])
    res = seq([(1, 1, 0, 0, 10, 10)])
    res = MotSequence(res.frames, res.ids, res.boxes, res.scores, np.array([2]), res.visibility)
    assert evaluate_mot(gt, res).mota == pytest.approx(1.0)
    assert evaluate_mot(gt, res, class_aware=True).tp == 0


@pytest.mark.parametrize("case", [ID_SWITCH, FALSE_POSITIVES, LOOSE_BOX], ids=["id_switch", "false_positives", "loose_box"])
def test_hand_cases_equal_trackeval(trackeval_oracle, tmp_path: Path, case: tuple[MotSequence, MotSequence]) -> None:
    _check_against_trackeval(trackeval_oracle, tmp_path, [case])


# --- generated cases -----------------------------------------------------

def _generated_pair(seed: int, frames: int = 60) -> tuple[MotSequence, MotSequence]:
    """Six objects (two crossing), results with jitter, misses, false
    positives, ID switches and a fragmented track; some gt zero-marked."""
    rng = np.random.default_rng(seed)
    gt_rows, res_rows = [], []
    starts = rng.uniform(20, 400, (6, 2))
    vel = rng.normal(0, 3, (6, 2))
    vel[0], vel[1] = (4, 0), (-4, 0)
    starts[0], starts[1] = (50, 100), (290, 105)
    for f in range(1, frames + 1):
        for i in range(6):
            if i == 5 and 20 <= f < 30:
                continue                                     # object 5 leaves and returns
            x, y = starts[i] + vel[i] * f
            conf = 0.0 if (i == 4 and f % 7 == 0) else 1.0   # some ignored gt
            gt_rows.append((f, i + 1, x, y, 30, 60, conf))
            if rng.random() < 0.1:
                continue                                     # missed
            rid = i + 1 + (100 if (i == 2 and f > 35) else 0)   # ID switch
            if i in (0, 1) and f > 31:
                rid = 2 - i                                  # swap after crossing
            jx, jy, jw, jh = rng.normal(0, 2.5, 4)
            res_rows.append((f, rid, x + jx, y + jy, 30 + jw, 60 + jh))
        if rng.random() < 0.3:
            res_rows.append((f, 500 + f // 5, *rng.uniform(0, 400, 2), 25, 50))   # short-lived FPs
    return seq(gt_rows), seq(res_rows)


def test_generated_sequences_equal_trackeval_per_sequence_and_combined(trackeval_oracle, tmp_path: Path) -> None:
    _check_against_trackeval(trackeval_oracle, tmp_path, [_generated_pair(0), _generated_pair(1)])


def test_our_tracker_output_scores_equal_trackeval(trackeval_oracle, tmp_path: Path) -> None:
    gt, noisy = _generated_pair(2)
    tracker = make_tracker(TrackerConfig())
    frames = []
    for f, d in noisy.iter_frames(1, gt.last_frame):
        frames.append((f, tracker.update(d, (f - 1) / 30)))
    res = tracks_to_sequence(frames)
    assert len(res) > 0
    _check_against_trackeval(trackeval_oracle, tmp_path, [(gt, res)])
