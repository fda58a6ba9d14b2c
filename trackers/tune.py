"""Search a tracker's thresholds for the best HOTA on one's own MOT data.

`tune(sequences, base, trials, search, seed)` tries `trials` configurations
and returns them ranked. Trial 0 is always `base` itself, so the winner is
never worse than what one started from on that data. Each trial tracks every
sequence from its detections and scores the result against its ground truth
(trackers.metrics, sequences combined the way the MOT benchmark combines
them).

- "random": each threshold drawn uniformly from its range (integers from
  their set), independently, from one seeded generator;
- "grid": every threshold on a few evenly spaced levels; when the full grid
  has more points than `trials`, a seeded random subset of it.

Either way the same seed and data give the same trials and the same answer.
What is searched depends on the algorithm (`SPACE`): a BYTE-only threshold
is not searched for SORT, OC-SORT's own only for OC-SORT. The thresholds
that decide which detections are believed (high/low/new-track scores), how
much overlap makes a match, how long a lost track lives and is reported, and
how many hits confirm a track are the ones a detector and a scene change.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

import numpy as np

from pipeline.contracts import Detections
from pipeline.errors import TridentError
from trackers.config import TrackerConfig
from trackers.factory import make_tracker
from trackers.metrics import MotMetrics, combine_metrics, evaluate_mot
from trackers.mot_io import MotSequence, tracks_to_sequence

__all__ = ["SPACE", "Trial", "TuneSequence", "search_space", "sample_configs", "score_config", "tune"]

# name -> (low, high) for a float, or a tuple of choices; and which algorithms use it.
SPACE: dict[str, tuple[object, tuple[str, ...]]] = {
    "high_score": ((0.2, 0.7), ("bytetrack", "ocsort", "sort")),
    "low_score": ((0.05, 0.3), ("bytetrack", "ocsort")),
    "new_track_score": ((0.3, 0.8), ("bytetrack", "ocsort", "sort")),
    "match_iou": ((0.1, 0.5), ("bytetrack", "ocsort", "sort")),
    "low_match_iou": ((0.2, 0.6), ("bytetrack", "ocsort")),
    "tentative_match_iou": ((0.1, 0.5), ("bytetrack", "ocsort")),
    "min_hits": ((1, 2, 3), ("bytetrack", "ocsort", "sort")),
    "lost_buffer_s": ((0.3, 3.0), ("bytetrack", "ocsort", "sort")),
    "report_coasting_s": ((0.0, 0.5), ("bytetrack", "ocsort", "sort")),
    "momentum_weight": ((0.0, 0.5), ("ocsort",)),
    "recovery_iou": ((0.1, 0.6), ("ocsort",)),
}
GRID_LEVELS = 3


@dataclass(frozen=True)
class TuneSequence:
    """One sequence to tune on: its ground truth and per-frame detections (index 0 = frame 1)."""

    name: str
    gt: MotSequence
    detections: list[Detections]


@dataclass(frozen=True)
class Trial:
    index: int
    config: TrackerConfig
    metrics: MotMetrics

    @property
    def hota(self) -> float:
        return self.metrics.hota


def search_space(algorithm: str, names: Iterable[str] | None = None) -> dict[str, object]:
    """The ranges searched for `algorithm`, optionally only `names` (each must apply to it)."""
    space = {n: rng for n, (rng, algos) in SPACE.items() if algorithm in algos}
    if names is None:
        return space
    out = {}
    for n in names:
        if n not in space:
            usable = ", ".join(space)
            raise TridentError(f"--params: {n!r} is not searched for {algorithm}; choose from {usable}")
        out[n] = space[n]
    return out


def _levels(rng: object) -> list:
    if isinstance(rng, tuple) and len(rng) == 2 and all(isinstance(v, float) for v in rng):
        return [round(float(v), 4) for v in np.linspace(rng[0], rng[1], GRID_LEVELS)]
    return list(rng)  # type: ignore[arg-type]


def _draw(rng: object, gen: np.random.Generator) -> object:
    if isinstance(rng, tuple) and len(rng) == 2 and all(isinstance(v, float) for v in rng):
        return round(float(gen.uniform(rng[0], rng[1])), 3)
    choices = list(rng)  # type: ignore[arg-type]
    return choices[int(gen.integers(len(choices)))]


def _valid(base: TrackerConfig, values: dict[str, object]) -> TrackerConfig | None:
    """The base with `values`, or None when they contradict each other (low_score > high_score)."""
    try:
        return replace(base, **values)
    except TridentError:
        return None


def sample_configs(base: TrackerConfig, space: dict[str, object], trials: int, search: str, seed: int) -> list[TrackerConfig]:
    """`trials` configurations: `base` first, then drawn as `search` says."""
    if search not in ("random", "grid"):
        raise TridentError(f"--search must be random or grid, got {search!r}")
    gen = np.random.default_rng(seed)
    out = [base]
    if search == "grid":
        names = list(space)
        points = list(itertools.product(*(_levels(space[n]) for n in names)))
        order = gen.permutation(len(points)) if len(points) > trials - 1 else np.arange(len(points))
        for k in order:
            if len(out) >= trials:
                break
            cfg = _valid(base, dict(zip(names, points[int(k)])))
            if cfg is not None and cfg not in out:
                out.append(cfg)
        return out
    attempts = 0
    while len(out) < trials and attempts < 50 * trials:
        attempts += 1
        cfg = _valid(base, {n: _draw(r, gen) for n, r in space.items()})
        if cfg is not None:
            out.append(cfg)
    return out


def score_config(config: TrackerConfig, sequences: Sequence[TuneSequence]) -> MotMetrics:
    """The combined metrics of `config` over every sequence."""
    parts = []
    for seq in sequences:
        tracker = make_tracker(config)
        frames = ((i + 1, tracker.update(d, i / config.fps)) for i, d in enumerate(seq.detections))
        parts.append(evaluate_mot(seq.gt, tracks_to_sequence(frames), names=(seq.name, "tracks")))
    return combine_metrics(parts)


def tune(
    sequences: Sequence[TuneSequence],
    base: TrackerConfig,
    trials: int,
    search: str = "random",
    seed: int = 0,
    params: Iterable[str] | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    score: Callable[[list[TrackerConfig]], Iterable[MotMetrics]] | None = None,
) -> list[Trial]:
    """Every trial, best HOTA first (ties: the earlier trial). `score` may
    evaluate the configs elsewhere (processes); it must yield in order."""
    if trials < 1:
        raise TridentError(f"--trials must be >= 1, got {trials}")
    if not sequences:
        raise TridentError("nothing to tune on: no sequences given")
    configs = sample_configs(base, search_space(base.algorithm, params), trials, search, seed)
    results = score(configs) if score is not None else (score_config(c, sequences) for c in configs)
    done = []
    for k, (cfg, m) in enumerate(zip(configs, results)):
        trial = Trial(k, cfg, m)
        done.append(trial)
        if on_trial is not None:
            on_trial(trial)
    return sorted(done, key=lambda t: (-t.hota, t.index))
