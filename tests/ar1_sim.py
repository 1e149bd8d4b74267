"""Seeded AR(1) step-time simulations for the per-cell median CI (shared by tests and benchmarks).

Step times are x_t = exp(sigma * z_t) with z a stationary Gaussian AR(1) of unit
variance and lag-1 correlation phi, so the true median of every step is 1 and
sigma is the spread of ln(step time). One row of a matrix is one simulated cell.
A CI method is a function from such a matrix to per-row (low, high) arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness import stats
from harness.records import STEPS_FILE, read_table

CiRows = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
REAL_TINY = Path(__file__).parent / "data" / "results" / "real_tiny"

# The quick profile's stopping rule (benchmarks/profiles/quick.toml).
START_STEPS, MAX_STEPS, TARGET_CI_REL = 30, 60, 0.03


def ar1_steps(rng: np.random.Generator, reps: int, n: int, phi: float,
              sigma: float) -> np.ndarray:
    """``reps`` cells of ``n`` step times each: exp(sigma · stationary unit-variance AR(1))."""
    e = rng.standard_normal((reps, n))
    z = np.empty((reps, n))
    z[:, 0] = e[:, 0]
    scale = np.sqrt(1 - phi * phi)
    for t in range(1, n):
        z[:, t] = phi * z[:, t - 1] + scale * e[:, t]
    return np.exp(sigma * z)


def autocorr_ci_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The new per-cell CI (what `stats.summarize` reports)."""
    return stats.autocorr_median_ci_rows(x)


def order_statistic_ci_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The old per-cell CI, `stats.median_ci`, per row (its ranks depend on n only)."""
    n = x.shape[1]
    lo_rank, hi_rank = stats.median_ci(np.arange(n, dtype=float))
    xs = np.sort(x, axis=1)
    return xs[:, int(lo_rank)], xs[:, int(hi_rank)]


def covers(ci: CiRows, x: np.ndarray) -> np.ndarray:
    """Per row: does the CI contain the true median (1)?"""
    low, high = ci(x)
    return (low <= 1.0) & (high >= 1.0)


def fixed_n_coverage(ci: CiRows, x: np.ndarray) -> float:
    return float(np.mean(covers(ci, x)))


def stopping_rule(ci: CiRows, x: np.ndarray, start: int = START_STEPS,
                  target: float = TARGET_CI_REL) -> tuple[np.ndarray, np.ndarray]:
    """Sequential stopping as `timing.time_steps` does it with the worker's precision rule.

    Each cell measures ``start`` steps, then stops at the first n (start <= n <=
    x.shape[1]) whose CI half-width relative to the median is <= target, or at
    the last step. Returns (steps measured, CI covers the true median) per row.
    """
    reps, cap = x.shape
    n_stop = np.full(reps, cap)
    covered = np.zeros(reps, dtype=bool)
    active = np.arange(reps)
    for n in range(start, cap + 1):
        part = x[active, :n]
        low, high = ci(part)
        half = (high - low) / 2 / np.median(part, axis=1)
        stop = (half <= target) | (n == cap)
        done = active[stop]
        n_stop[done] = n
        covered[done] = (low[stop] <= 1.0) & (high[stop] >= 1.0)
        active = active[~stop]
        if len(active) == 0:
            break
    return n_stop, covered


def binomial_se(p: float, reps: int) -> float:
    """Standard error of a coverage estimate from ``reps`` independent cells."""
    return float(np.sqrt(p * (1 - p) / reps))


def real_noise_levels(run_dir: Path = REAL_TINY) -> np.ndarray:
    """Robust spread of ln(step time) per real cell: 1.4826 · MAD of its measured steps.

    MAD rather than sd because real cells have a few spikes (a 10x step) that
    a Gaussian AR(1) does not have and that would inflate the sd of the bulk.
    """
    steps = read_table(run_dir, STEPS_FILE)
    measured = steps[steps["phase"] == "measure"]
    levels = []
    for _, cell in measured.groupby(["run_id", "config_id", "block"]):
        z = np.log(cell["duration_s"].to_numpy(dtype=float))
        levels.append(1.4826 * float(np.median(np.abs(z - np.median(z)))))
    return np.sort(np.array(levels))
