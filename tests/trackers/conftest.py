"""Shared builders for the tracker tests, and the trackeval oracle.

`trackeval` (the MOTChallenge reference implementation) is used only here, as
the oracle that trackers/metrics.py must equal; none of its code is in the
package.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest

from pipeline.contracts import Detections
from pipeline.masks import InstanceMasks


def make_dets(boxes: Sequence[Sequence[float]], scores: Sequence[float] | None = None,
              classes: Sequence[int] | None = None, masks: InstanceMasks | None = None) -> Detections:
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    n = len(b)
    return Detections(
        boxes=b,
        scores=np.asarray([0.9] * n if scores is None else scores, dtype=np.float32),
        class_ids=np.asarray([0] * n if classes is None else classes, dtype=np.int32),
        masks=masks,
    )


@pytest.fixture
def dets() -> Callable[..., Detections]:
    """dets([[x1, y1, x2, y2], ...], scores=None, classes=None) -> Detections."""
    return make_dets


def box_at(x: float, y: float, w: float = 40.0, h: float = 80.0) -> list[float]:
    return [x, y, x + w, y + h]


@pytest.fixture
def box() -> Callable[..., list[float]]:
    """box(x, y, w=40, h=80) -> xyxy list with top-left (x, y)."""
    return box_at


@pytest.fixture
def trackeval_oracle() -> Callable[..., dict[str, dict[str, float]]]:
    """trackeval_oracle([(gt_file, res_file, seq_length), ...], work_dir) -> scores."""
    return trackeval_scores


def trackeval_scores(
    pairs: list[tuple[str | os.PathLike, str | os.PathLike, int]], work: Path
) -> dict[str, dict[str, float]]:
    """Scores of each (gt file, result file, sequence length) pair, keyed
    "seq0", "seq1", ..., plus "combined" over all of them."""
    trackeval = pytest.importorskip("trackeval", reason="trackeval (the metric oracle) is not installed: pip install -e '.[eval]'")
    seq_info = {}
    for k, (gt_path, res_path, length) in enumerate(pairs):
        seq = f"seq{k}"
        gt_dir = work / "gt" / seq / "gt"
        trk_dir = work / "trackers" / "ours" / "data"
        gt_dir.mkdir(parents=True, exist_ok=True)
        trk_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(gt_path, gt_dir / "gt.txt")
        shutil.copy(res_path, trk_dir / f"{seq}.txt")
        (work / "gt" / seq / "seqinfo.ini").write_text(f"[Sequence]\nname={seq}\nseqLength={length}\n")
        seq_info[seq] = length
    eval_config = trackeval.Evaluator.get_default_eval_config()
    eval_config.update({"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
                        "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
                        "OUTPUT_EMPTY_CLASSES": False, "DISPLAY_LESS_PROGRESS": True, "BREAK_ON_ERROR": True,
                        "RETURN_ON_ERROR": False, "LOG_ON_ERROR": None})
    dataset_config = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
    dataset_config.update({"GT_FOLDER": str(work / "gt"), "TRACKERS_FOLDER": str(work / "trackers"),
                           "OUTPUT_FOLDER": str(work / "out"), "TRACKERS_TO_EVAL": ["ours"], "SKIP_SPLIT_FOL": True,
                           "SEQ_INFO": seq_info, "PRINT_CONFIG": False, "DO_PREPROC": True})
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = trackeval.Evaluator(eval_config)
        dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
                   trackeval.metrics.Identity({"PRINT_CONFIG": False})]
        results, _ = evaluator.evaluate([dataset], metrics)
    per_seq = results["MotChallenge2DBox"]["ours"]
    out = {seq: _flatten(per_seq[seq]["pedestrian"]) for seq in seq_info}
    out["combined"] = _flatten(per_seq["COMBINED_SEQ"]["pedestrian"])
    return out


def _flatten(r: dict) -> dict[str, float]:
    h, c, i = r["HOTA"], r["CLEAR"], r["Identity"]
    return {
        "hota": float(h["HOTA"].mean()), "deta": float(h["DetA"].mean()), "assa": float(h["AssA"].mean()),
        "loca": float(h["LocA"].mean()), "mota": float(c["MOTA"]), "motp": float(c["MOTP"]),
        "idf1": float(i["IDF1"]), "idp": float(i["IDP"]), "idr": float(i["IDR"]),
        "tp": int(c["CLR_TP"]), "fp": int(c["CLR_FP"]), "fn": int(c["CLR_FN"]), "idsw": int(c["IDSW"]),
        "frag": int(c["Frag"]), "mt": int(c["MT"]), "pt": int(c["PT"]), "ml": int(c["ML"]),
        "idtp": int(i["IDTP"]), "idfp": int(i["IDFP"]), "idfn": int(i["IDFN"]),
    }
