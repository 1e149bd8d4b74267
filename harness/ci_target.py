"""Whether a cell reached its confidence target, and the likely reason when it did not.

The timing loop keeps measuring until the median's 95% CI half-width is within
``target_ci_rel`` of the median, but never past ``max_measured_steps``. A cell that
stops at the cap has a wider CI than asked for; this module says so (``ci_target_met``
in configs.csv, a console line, a report finding) with the likely cause:

- **drift**: a level shift in the measured steps (`harness.drift.level_shift`:
  thermal throttling, clocks changing, another process starting or stopping
  part-way);
- **load**: other processes busy during the cell (`harness.load`'s
  ``other_cpu_cores``, at least `load.BUSY_FRACTION` of the cores), or, where no
  load figures were recorded, slowly varying steps (lag-1 autocorrelation of the
  log step times >= `AUTOCORR_LOAD`) — what sharing the cores produces — said with
  "load figures not recorded".

No TensorFlow, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.drift import level_shift
from harness.load import BUSY_FRACTION

AUTOCORR_LOAD = 0.3  # lag-1 autocorrelation above which steps vary slowly (runs of slow steps)
LOAD_FIGURES = "load figures not recorded"


@dataclass(frozen=True)
class LoadFigures:
    """What `harness.load` recorded for the cell (configs.csv columns)."""

    other_cpu_cores: float
    load_avg_1m: float | None
    cpu_count: int | None


def ci_target_met(median: float | None, low: float | None, high: float | None,
                  target_ci_rel: float | None) -> bool | None:
    """True/False when a target was set (``target_ci_rel`` not None) and the CI is known;
    None when no target was asked for or the cell has no CI."""
    if target_ci_rel is None or median is None or low is None or high is None:
        return None
    if not (median > 0 and math.isfinite(low) and math.isfinite(high)):
        return False
    return (high - low) / 2 / median <= target_ci_rel


def miss_cause(durations: Sequence[float], lag1: float | None,
               load: LoadFigures | None = None) -> str:
    """The likely cause of a missed target, one phrase with its numbers."""
    causes = []
    shift = level_shift(durations)
    if shift is not None and shift.detected:
        direction = "slower" if shift.shift > 0 else "faster"
        causes.append(f"drift: a level shift at measured step {shift.at_step}, "
                      f"{abs(shift.shift):.0%} {direction} after it")
    if load is not None:
        cores = load.cpu_count or 1
        avg = "" if load.load_avg_1m is None else f", load average {load.load_avg_1m:.1f}"
        busy = load.other_cpu_cores / cores >= BUSY_FRACTION
        causes.append(
            (f"load: other processes kept {load.other_cpu_cores:.2f} of {cores} cores "
             f"busy{avg}") if busy else
            (f"not load: other processes used only {load.other_cpu_cores:.2f} of {cores} "
             f"cores{avg}"))
    if causes and not causes[-1].startswith("not load"):
        return "; ".join(causes)
    if lag1 is not None and lag1 >= AUTOCORR_LOAD:
        causes.append(f"slowly varying steps (lag-1 autocorrelation {lag1:.2f}), as other "
                      "processes sharing the cores cause")
    else:
        x = np.asarray(durations, dtype=float)
        spread = (float(np.percentile(x, 90)) / float(np.median(x)) - 1) if len(x) \
            else math.nan
        causes.append(f"noisy steps (p90 {spread:.0%} above the median) with no level shift")
    if load is None:
        causes.append(LOAD_FIGURES)
    return "; ".join(causes)


def describe_miss(median: float, low: float, high: float, target_ci_rel: float,
                  steps: int, cause: str) -> str:
    """``CI -4%/+9% missed the ±3% target after 1000 steps (cause)``."""
    return (f"CI {low / median - 1:+.0%}/{high / median - 1:+.0%} missed the "
            f"±{target_ci_rel:.0%} target after {steps} measured steps ({cause})")


def load_figures(row: Mapping[str, Any], cpu_count: int | None) -> LoadFigures | None:
    """The cell's load figures from its configs row (None where `harness.load` recorded
    none)."""
    from harness.records import number

    cores = number(row.get("other_cpu_cores"))
    if cores is None:
        return None
    return LoadFigures(cores, number(row.get("load_avg_1m")), cpu_count)
