"""How long a run has left: per-cell costs from the cell's factors, scaled by what the run
has measured so far.

A cell's cost is ``startup + steps × step_s``. Before anything has run, ``step_s`` comes
from the model's published forward FLOPs per image, the mode (training a fine-tuned base
costs about three forward passes, a frozen one little more than one), the batch size and
an assumed machine speed; ``startup`` (worker start, model build) is a fixed guess. Each
finished cell replaces the guesses with measurements: its own start-up time, and its
seconds per unit of cost for cells of the same model and mode (or the same model, or any
cell, in that order). Within a cell, the steps done and their mean duration give the rest
of the cell. No I/O, no TensorFlow; the tests drive it with numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Forward GFLOPs per image at the model's default input size (multiply-adds × 2; published
# counts for the keras.applications models, rough ones for the test models).
GFLOPS_PER_IMAGE: Mapping[str, float] = {
    "mobilenet_v2": 0.60,
    "mobilenet_v1": 1.14,
    "inception_v3": 11.5,
    "tiny_mobilenet_v2": 0.0012,
    "tiny_cnn": 0.0008,
}
DEFAULT_SIZE: Mapping[str, int] = {"mobilenet_v2": 224, "mobilenet_v1": 224,
                                   "inception_v3": 299}
UNKNOWN_MODEL_GFLOPS = 1.0  # a file or hub model: corrected by the first finished cell
# Step cost relative to one forward pass.
MODE_FACTOR: Mapping[tuple[str, str], float] = {
    ("infer", ""): 1.0,
    ("train", "frozen"): 1.3,
    ("train", "unfrozen"): 3.0,
}
PRIOR_GFLOPS_PER_S = 40.0  # a small CPU; only until the first cell has finished
PRIOR_STARTUP_S = 8.0  # worker start, framework import, model build


@dataclass(frozen=True)
class CellPlan:
    """What one unit of work (a cell, or one block of an interleaved cell) should cost."""

    label: str
    model: str
    mode: str
    base: str
    cost_units: float  # GFLOPs of one step (model × mode × batch), the scale of its cost
    steps_low: int  # first call + warm-up + the measured steps asked for
    steps_high: int  # ... up to the most the stopping rule may take

    @property
    def keys(self) -> tuple[tuple[str, ...], ...]:
        """Calibration keys from the most specific to the least."""
        return ((self.model, self.mode, self.base), (self.model,), ())


def plan_for(label: str, factors: Mapping[str, Any], *, warmup_steps: int,
             measured_steps: int, max_measured_steps: int) -> CellPlan:
    """A cell's plan from its factor values (model, mode, base, batch_size, input_size)."""
    model = str(factors["model"])
    mode = str(factors["mode"])
    base = str(factors.get("base") or "")
    size = factors.get("input_size")
    gflops = GFLOPS_PER_IMAGE.get(model, UNKNOWN_MODEL_GFLOPS)
    if model in DEFAULT_SIZE and isinstance(size, int) and size > 0:
        gflops *= (size / DEFAULT_SIZE[model]) ** 2
    factor = MODE_FACTOR.get((mode, base), MODE_FACTOR[("train", "unfrozen")])
    units = gflops * factor * int(factors.get("batch_size") or 1)
    fixed = 1 + warmup_steps
    return CellPlan(label=label, model=model, mode=mode, base=base, cost_units=units,
                    steps_low=fixed + measured_steps,
                    steps_high=fixed + max(measured_steps, max_measured_steps))


@dataclass(frozen=True)
class Finished:
    """What a finished unit of work measured."""

    plan: CellPlan
    wall_s: float
    steps: int  # all timed calls: first, warm-up and measured
    step_s_mean: float | None  # None when it ran no step (skipped, failed early)


class Estimator:
    """Seconds left in a run of planned units of work, learning from finished ones."""

    def __init__(self, plans: Sequence[CellPlan], *,
                 prior_gflops_per_s: float = PRIOR_GFLOPS_PER_S,
                 prior_startup_s: float = PRIOR_STARTUP_S) -> None:
        self.plans = list(plans)
        self.finished: list[Finished] = []
        self._prior_s_per_unit = 1.0 / prior_gflops_per_s
        self._prior_startup_s = prior_startup_s

    # -- learning -------------------------------------------------------------------------
    def cell_finished(self, plan: CellPlan, wall_s: float, steps: int,
                      step_s_mean: float | None) -> None:
        self.finished.append(Finished(plan, wall_s, steps, step_s_mean))

    def _timed(self) -> list[Finished]:
        return [f for f in self.finished
                if f.step_s_mean is not None and f.steps > 0 and f.plan.cost_units > 0]

    def startup_s(self) -> float:
        """Median start-up (wall time not spent in steps) of the finished units."""
        gaps = [max(f.wall_s - f.steps * (f.step_s_mean or 0.0), 0.0) for f in self._timed()]
        untimed = [f.wall_s for f in self.finished if f.step_s_mean is None]
        values = gaps or untimed
        return statistics.median(values) if values else self._prior_startup_s

    def s_per_unit(self, plan: CellPlan) -> float:
        """Seconds per cost unit for a plan: from finished units of the same model and mode,
        else the same model, else any (geometric mean), else the prior."""
        timed = self._timed()
        for key in plan.keys:
            rates = [f.step_s_mean / f.plan.cost_units for f in timed
                     if f.step_s_mean and _key_of(f.plan, len(key)) == key]
            if rates:
                return math.exp(statistics.fmean(math.log(r) for r in rates))
        return self._prior_s_per_unit

    def expected_steps(self, plan: CellPlan) -> float:
        """Steps a unit will take: between the measured steps asked for and the stopping
        rule's maximum, placed where finished units of this run ended up."""
        if plan.steps_high == plan.steps_low:
            return float(plan.steps_low)
        spans = [(f.steps - f.plan.steps_low) / (f.plan.steps_high - f.plan.steps_low)
                 for f in self._timed() if f.plan.steps_high > f.plan.steps_low]
        where = statistics.fmean(min(max(s, 0.0), 1.0) for s in spans) if spans else 0.5
        return plan.steps_low + where * (plan.steps_high - plan.steps_low)

    # -- estimates ------------------------------------------------------------------------
    def unit_s(self, plan: CellPlan) -> float:
        """Expected wall seconds of one planned unit."""
        return self.startup_s() + self.expected_steps(plan) * plan.cost_units * \
            self.s_per_unit(plan)

    def current_left_s(self, plan: CellPlan, elapsed_s: float, steps_done: int,
                       step_s_mean: float | None) -> float:
        """Seconds left in the unit that is running."""
        if steps_done >= 3 and step_s_mean is not None:
            return max(self.expected_steps(plan) - steps_done, 0.0) * step_s_mean
        return max(self.unit_s(plan) - elapsed_s, 0.0)

    def remaining_s(self, next_index: int, current: tuple[CellPlan, float, int, float | None]
                    | None = None) -> float:
        """Seconds left: the running unit (plan, elapsed, steps done, mean step) and every
        planned unit from ``next_index`` on."""
        left = sum(self.unit_s(p) for p in self.plans[next_index:])
        if current is not None:
            left += self.current_left_s(*current)
        return left


def _key_of(plan: CellPlan, length: int) -> tuple[str, ...]:
    return (plan.model, plan.mode, plan.base)[:length]
