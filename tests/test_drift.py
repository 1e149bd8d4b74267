"""Level shifts within a cell's step times (harness/drift.py), on seeded AR(1) steps."""

from __future__ import annotations

import numpy as np
import pytest

from harness.drift import drift_columns, level_shift


def ar1(seed: int, n: int, rho: float = 0.7, sd: float = 0.03) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(0, sd * np.sqrt(1 - rho ** 2), n)
    x = np.zeros(n)
    x[0] = rng.normal(0, sd)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + e[i]
    return 0.03 * np.exp(x)


def test_a_clear_shift_is_found_where_it_happened() -> None:
    steps = ar1(1, 60)
    steps[36:] *= 1.25
    found = level_shift(steps)
    assert found is not None and found.detected
    assert found.shift == pytest.approx(0.25, abs=0.06)
    assert 30 <= found.at_step <= 42
    assert found.describe("the candidate").startswith("drift: step times shifted +2")


def test_stationary_autocorrelated_steps_rarely_count_as_drift() -> None:
    false = sum(level_shift(ar1(seed, 40)).detected for seed in range(300))  # type: ignore[union-attr]
    assert false / 300 <= 0.08  # measured 5% at 40 steps, 0.4% at 100


def test_shifts_of_20_percent_are_detected_in_most_runs() -> None:
    def shifted(seed: int) -> np.ndarray:
        v = ar1(seed, 40)
        v[20:] *= 1.2
        return v
    hits = sum(level_shift(shifted(seed)).detected for seed in range(200))  # type: ignore[union-attr]
    assert hits / 200 >= 0.95


def test_a_small_shift_is_left_to_the_ci() -> None:
    steps = np.full(40, 0.03)
    steps[20:] *= 1.02  # noiseless, so infinitely "significant", but below MIN_SHIFT
    found = level_shift(steps)
    assert found is not None and not found.detected


def test_too_few_steps_and_the_columns() -> None:
    assert level_shift([0.01] * 11) is None
    assert drift_columns([0.01] * 5) == {}
    steps = ar1(3, 40)
    steps[20:] *= 1.5
    cols = drift_columns(steps)
    assert cols["step_s_drift"] is True and cols["step_s_level_shift"] > 0.3
