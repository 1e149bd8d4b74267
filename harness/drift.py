"""Drift within a cell: a level shift in its step times (pure; no I/O).

A neighbour that starts a job halfway through a cell moves the cell's step
times from one level to another (the step in the timeline chart). The
median of such a run sits between the two levels, so a comparison against
it is biased by however much of the run fell on each side.

Method: the measured steps are cut into contiguous chunks (batch means, as in
`harness.stats.chunk_medians`, so autocorrelation is tamed) and every split of
the chunk series into a before and an after part (at least `MIN_SIDE` chunks
each) is scored by a two-sample t statistic on the chunk log medians with a
pooled residual spread. The best split is a detected shift when its statistic
is at least `Z_CRIT` (high, because the best of many splits is taken) *and*
the shift is at least `MIN_SHIFT` (3%): small real shifts are left to the CI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.stats import Floats, chunk_medians

MIN_SIDE = 3
Z_CRIT = 5.0
MIN_SHIFT = 0.03
N_CHUNKS = 16


@dataclass(frozen=True)
class LevelShift:
    """The strongest level shift in a sequence of step times."""

    detected: bool
    shift: float  # later level / earlier level − 1 (0.18 = steps got 18% slower)
    at_step: int  # index (in the measured steps) where the later level begins
    n_steps: int
    z: float

    def describe(self, where: str) -> str:
        return (f"drift: step times shifted {self.shift:+.0%} at step {self.at_step} of "
                f"{self.n_steps} in {where}")

    @property
    def log_shift(self) -> float:
        return math.log1p(self.shift)


def level_shift(values: Floats, n_chunks: int = N_CHUNKS, z_crit: float = Z_CRIT,
                min_shift: float = MIN_SHIFT) -> LevelShift | None:
    """The best level shift in ``values`` (time-ordered, > 0), or None with too few values.

    Needs at least ``2 * MIN_SIDE`` chunks of two steps (12 steps).
    """
    x = np.asarray(values, dtype=float)
    if len(x) < 4 * MIN_SIDE or np.any(~np.isfinite(x)) or np.any(x <= 0):
        return None
    chunks = chunk_medians(x, n_chunks)
    m = len(chunks)
    if m < 2 * MIN_SIDE:
        return None
    logc = np.log(chunks)
    bounds = np.cumsum([len(c) for c in np.array_split(x, m)])
    best_z, best_s, best_d = -1.0, MIN_SIDE, 0.0
    for s in range(MIN_SIDE, m - MIN_SIDE + 1):
        left, right = logc[:s], logc[s:]
        resid = float(np.sum((left - left.mean()) ** 2) + np.sum((right - right.mean()) ** 2))
        sd = math.sqrt(resid / (m - 2))
        d = float(np.median(right) - np.median(left))
        se = sd * math.sqrt(1 / s + 1 / (m - s))
        z = abs(float(right.mean() - left.mean())) / se if se > 0 else (
            math.inf if d != 0 else 0.0)
        if z > best_z:
            best_z, best_s, best_d = z, s, d
    shift = math.expm1(best_d)
    detected = best_z >= z_crit and abs(best_d) >= math.log1p(min_shift)
    return LevelShift(detected=detected, shift=shift, at_step=int(bounds[best_s - 1]),
                      n_steps=len(x), z=best_z)


def drift_columns(durations: Floats) -> dict[str, object]:
    """configs.csv ``step_s_level_shift`` (the strongest shift found) and ``step_s_drift``
    (whether it counts as detected); empty when there are too few steps to tell."""
    found = level_shift(durations)
    if found is None:
        return {}
    return {"step_s_level_shift": round(found.shift, 5), "step_s_drift": found.detected}
