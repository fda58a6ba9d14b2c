"""Multi-task loss balancing strategies and task schedules.

A balancer turns the model's loss dict into one scalar to backpropagate:

    total, weights = balancer(losses, step)

`weights` maps each loss key to the float multiplier used this step, for
logging. A term that is exactly zero carries no labels this step (the
model's convention for partially labelled batches); balancers that learn or
keep history leave such terms out so an absent label set does not look
like a perfectly solved task.

A schedule says which tasks train at a given step; `select` keeps only
their terms. Loss keys are "loss_<task>_<term>" (see MultiTaskNet).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import torch
from torch import nn

from pipeline.errors import TridentError

__all__ = [
    "FixedWeights",
    "UncertaintyWeighting",
    "DynamicWeightAverage",
    "JointSchedule",
    "AlternatingSchedule",
    "task_of",
]


def task_of(key: str) -> str:
    """'loss_det_box' -> 'det'."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "loss":
        raise TridentError(f"loss key {key!r} is not of the form loss_<task>_<term>")
    return parts[1]


def _is_labelled(value: torch.Tensor) -> bool:
    return bool(value.detach() != 0)


def _empty_total(losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
    if not losses:
        raise TridentError("no loss terms to balance; the batch produced an empty loss dict (targets missing?)")
    return sum(losses.values()) * 0.0  # type: ignore[return-value]


class FixedWeights:
    """total = sum_k w_k * L_k with constant weights.

    `weights` is keyed by loss key ("loss_det_box") or by task ("det");
    the exact key wins, then the task, then `default`.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, default: float = 1.0) -> None:
        self.weights = dict(weights or {})
        self.default = default

    def weight(self, key: str) -> float:
        if key in self.weights:
            return float(self.weights[key])
        return float(self.weights.get(task_of(key), self.default))

    def __call__(self, losses: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        weights = {k: self.weight(k) for k in losses}
        total = _empty_total(losses)
        for k, v in losses.items():
            total = total + weights[k] * v
        return total, weights


class UncertaintyWeighting(nn.Module):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla 2018).

    Each term gets a learned log-variance s_k: total = sum exp(-s_k) L_k + s_k.
    A noisy or large task raises its s_k and so lowers its own weight; the
    +s_k term stops all weights from collapsing to zero. The s_k are
    parameters: pass this module's parameters to the optimiser.
    """

    def __init__(self, keys: Sequence[str], init_log_var: float = 0.0) -> None:
        super().__init__()
        if not keys:
            raise TridentError("UncertaintyWeighting needs the loss keys it will weight (e.g. model.loss_keys)")
        self.keys = tuple(keys)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.log_vars = nn.Parameter(torch.full((len(self.keys),), float(init_log_var)))

    def forward(self, losses: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        total = _empty_total(losses)
        weights: dict[str, float] = {}
        for k, v in losses.items():
            if k not in self.index:
                raise TridentError(
                    f"UncertaintyWeighting has no weight for {k!r}; it was built for {', '.join(self.keys)}"
                )
            s = self.log_vars[self.index[k]]
            weights[k] = float(torch.exp(-s.detach()))
            if _is_labelled(v):
                total = total + torch.exp(-s) * v + s
        return total, weights


class DynamicWeightAverage:
    """Dynamic Weight Average (Liu, Johns & Davison 2019, MTAN).

    w_k = K * softmax_k(r_k / T), with r_k = Lbar_k(p-1) / Lbar_k(p-2) the
    ratio of a term's mean loss over the last two completed periods of
    `period` steps. A term that stopped falling (ratio near 1) gains weight
    over terms still dropping fast. Needs no gradients, so it is cheap.
    temperature: higher -> weights closer to uniform.
    """

    def __init__(self, temperature: float = 2.0, period: int = 1) -> None:
        if temperature <= 0 or period < 1:
            raise TridentError(f"DWA needs temperature > 0 and period >= 1, got {temperature} and {period}")
        self.temperature = temperature
        self.period = period
        self._current_period: int | None = None
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._history: list[dict[str, float]] = []  # the last two completed period means

    def _roll(self, period_index: int) -> None:
        if self._current_period is not None and period_index != self._current_period and self._sums:
            means = {k: self._sums[k] / self._counts[k] for k in self._sums}
            self._history = (self._history + [means])[-2:]
            self._sums, self._counts = {}, {}
        self._current_period = period_index

    def weights_for(self, keys: Collection[str]) -> dict[str, float]:
        if len(self._history) < 2:
            return {k: 1.0 for k in keys}
        older, newer = self._history
        ratios = {}
        for k in keys:
            before, after = older.get(k, 0.0), newer.get(k, 0.0)
            ratios[k] = after / before if before > 0 and after > 0 else 1.0
        top = max(r / self.temperature for r in ratios.values())
        exps = {k: math.exp(r / self.temperature - top) for k, r in ratios.items()}
        norm = sum(exps.values())
        return {k: len(keys) * e / norm for k, e in exps.items()}

    def __call__(self, losses: Mapping[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        self._roll(step // self.period)
        weights = self.weights_for(list(losses))
        total = _empty_total(losses)
        for k, v in losses.items():
            total = total + weights[k] * v
            if _is_labelled(v):
                self._sums[k] = self._sums.get(k, 0.0) + float(v.detach())
                self._counts[k] = self._counts.get(k, 0) + 1
        return total, weights


def _select(losses: Mapping[str, torch.Tensor], active: Collection[str]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in losses.items() if task_of(k) in active}


class JointSchedule:
    """Every task trains every step."""

    def __init__(self, tasks: Collection[str]) -> None:
        if not tasks:
            raise TridentError("JointSchedule needs at least one task (e.g. model.tasks)")
        self.tasks = frozenset(tasks)

    def active(self, step: int) -> set[str]:
        return set(self.tasks)

    def select(self, losses: Mapping[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """The terms of the tasks active at `step`."""
        return _select(losses, self.active(step))


class AlternatingSchedule:
    """Cycle through task groups, `steps_per_group` steps each.

    E.g. groups=[("det", "inst"), ("sem",)] trains detection and masks on
    one step and semantics on the next: each step's gradient comes from one
    group only, which avoids tasks fighting inside one update and halves the
    head compute per step, at the price of slower per-task progress.
    """

    def __init__(self, groups: Sequence[Collection[str]], steps_per_group: int = 1) -> None:
        if not groups or any(not g for g in groups):
            raise TridentError("AlternatingSchedule needs a non-empty list of non-empty task groups")
        if steps_per_group < 1:
            raise TridentError(f"steps_per_group must be >= 1, got {steps_per_group}")
        self.groups = [frozenset(g) for g in groups]
        self.steps_per_group = steps_per_group

    def active(self, step: int) -> set[str]:
        return set(self.groups[(step // self.steps_per_group) % len(self.groups)])

    def select(self, losses: Mapping[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """The terms of the tasks active at `step`."""
        return _select(losses, self.active(step))
