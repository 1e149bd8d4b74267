"""Seeded simulation: does the per-cell median CI cover 95% when steps are autocorrelated?

Cells of AR(1) log step times (tests/ar1_sim.py) at the quick profile's step
counts (30 and 60) and under its stopping rule (start at 30, stop once the
CI is within ±3%, at most 60). The noise level comes from the real cells in
tests/data/results/real_tiny. With 20,000 cells per fixed-n case and 10,000
per stopping-rule case, the coverage estimate's own binomial standard error
is 0.15 and 0.22 percentage points at 95%: the 92–98% band is more than 13
standard errors wide on either side of 95%. The full table (more cases, 50,000
cells each) is benchmarks/ci_coverage.py.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from ar1_sim import (
    MAX_STEPS,
    START_STEPS,
    TARGET_CI_REL,
    ar1_steps,
    autocorr_ci_rows,
    binomial_se,
    fixed_n_coverage,
    order_statistic_ci_rows,
    real_noise_levels,
    stopping_rule,
)

from harness import stats
from harness.timing import NS, time_steps
from harness.worker import _precision_rule

REPS = 20_000
STOP_REPS = 10_000  # each simulated cell is recomputed at every step from 30 to 60
PHIS = (0.0, 0.3, 0.5, 0.7)
BAND = (0.92, 0.98)


def _seed(*parts: float) -> int:
    return int(sum(round(p * 1000) * 7919 ** i for i, p in enumerate(parts))) % 2**32


@functools.cache
def _noise() -> tuple[float, float]:
    """(quietest, median) real cell: the stopping rule bites on the first, rarely on the second."""
    levels = real_noise_levels()
    return float(levels[0]), float(np.median(levels))


def test_noise_levels_come_from_the_real_cells() -> None:
    levels = real_noise_levels()
    assert len(levels) == 12
    quiet, typical = _noise()
    # 1.4826·MAD of ln(step time): the quietest real cell and the median cell.
    assert quiet == pytest.approx(0.046, abs=0.001)
    assert typical == pytest.approx(0.175, abs=0.001)


@pytest.mark.parametrize("phi", PHIS)
def test_autocorr_ci_covers_at_the_profiles_step_counts(phi: float) -> None:
    x = ar1_steps(np.random.default_rng(_seed(1, phi)), REPS, MAX_STEPS, phi, _noise()[1])
    for n in (START_STEPS, MAX_STEPS):
        cov = fixed_n_coverage(autocorr_ci_rows, x[:, :n])
        assert BAND[0] <= cov <= BAND[1], f"phi={phi} n={n}: coverage {cov:.4f}"
        assert binomial_se(cov, REPS) < 0.002


@pytest.mark.parametrize("phi", PHIS)
def test_autocorr_ci_covers_under_the_stopping_rule(phi: float) -> None:
    for which, sigma in zip(("quiet", "typical"), _noise(), strict=True):
        x = ar1_steps(np.random.default_rng(_seed(2, phi, sigma)), STOP_REPS, MAX_STEPS, phi,
                      sigma)
        n_stop, covered = stopping_rule(autocorr_ci_rows, x)
        cov = float(covered.mean())
        assert BAND[0] <= cov <= BAND[1], f"phi={phi} sigma={sigma} ({which}): {cov:.4f}"
        assert binomial_se(cov, STOP_REPS) < 0.0025
        if which == "quiet":  # the rule really decides here: cells stop before 60
            assert np.mean(n_stop < MAX_STEPS) > 0.05


def test_order_statistic_ci_under_covers_autocorrelated_steps() -> None:
    """The defect: the old CI (independent steps) misses the band at phi = 0.7."""
    phi = 0.7
    quiet, typical = _noise()
    x = ar1_steps(np.random.default_rng(_seed(3, phi)), REPS, MAX_STEPS, phi, typical)
    for n in (START_STEPS, MAX_STEPS):
        cov = fixed_n_coverage(order_statistic_ci_rows, x[:, :n])
        assert cov < 0.75, f"n={n}: {cov:.4f}"
        assert not BAND[0] <= cov <= BAND[1]
    x = ar1_steps(np.random.default_rng(_seed(4, phi)), STOP_REPS, MAX_STEPS, phi, quiet)
    _, covered = stopping_rule(order_statistic_ci_rows, x)
    assert covered.mean() < 0.75
    # ... and at phi = 0 it was fine, so the band check is not just hard to pass.
    x = ar1_steps(np.random.default_rng(_seed(5)), REPS, START_STEPS, 0.0, typical)
    assert BAND[0] <= fixed_n_coverage(order_statistic_ci_rows, x) <= BAND[1]


def test_simulated_stopping_matches_the_real_timing_loop() -> None:
    """The simulation's stop step is what `time_steps` with the worker's rule does."""
    quiet, _ = _noise()
    x = ar1_steps(np.random.default_rng(_seed(6)), 40, MAX_STEPS, 0.5, quiet)
    x_ns = np.round(x * 1e7).astype(int)  # ~10 ms steps in whole nanoseconds
    n_stop, _ = stopping_rule(autocorr_ci_rows, x_ns / NS)
    assert len(set(n_stop.tolist())) > 3  # a spread of stop steps, not all 30 or all 60
    rule = _precision_rule(TARGET_CI_REL)
    for durations_ns, expected in zip(x_ns, n_stop, strict=True):
        ticks, t = [0, 1], 1
        for d in durations_ns:
            ticks += [t, t, t + int(d)]
            t += int(d)
        result = time_steps(lambda b: b, lambda r: None, lambda: 0, images_per_step=1,
                            warmup_steps=0, measured_steps=START_STEPS,
                            max_measured_steps=MAX_STEPS, precise_enough=rule,
                            clock=functools.partial(next, iter(ticks)))
        assert len(result.measured) == expected
        assert [s.duration_s for s in result.measured] == pytest.approx(
            (durations_ns[:expected] / NS).tolist())


def test_summarize_and_halfwidth_use_the_autocorr_ci() -> None:
    x = ar1_steps(np.random.default_rng(_seed(7)), 1, MAX_STEPS, 0.7, 0.1)[0]
    s = stats.summarize(x)
    assert (s["median_ci_low"], s["median_ci_high"]) == stats.autocorr_median_ci(x)
    old_low, old_high = stats.median_ci(x)
    assert s["median_ci_high"] - s["median_ci_low"] > 1.3 * (old_high - old_low)
    assert stats.relative_ci_halfwidth(x) == pytest.approx(
        (s["median_ci_high"] - s["median_ci_low"]) / 2 / s["median"])
    assert s["lag1_autocorr"] == pytest.approx(stats.lag1_autocorr(x))
