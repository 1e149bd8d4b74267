"""`stats.step_ratio_ci`: the one ratio CI behind chart speed-ups, compare and the benchmarks.

Hand-worked values for the paired and the unpaired rule, the edges between
them, and a seeded coverage simulation with autocorrelated steps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness import stats
from harness.speedups import speedup_ci


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float = 0.05) -> np.ndarray:
    e = np.empty(n)
    e[0] = rng.normal(0, sd)
    innovation = sd * math.sqrt(1 - phi ** 2)
    for i in range(1, n):
        e[i] = phi * e[i - 1] + rng.normal(0, innovation)
    return np.exp(e)


def test_paired_blocks_hand_worked() -> None:
    # Four interleaved blocks; the numerator is 2.0, 2.2, 1.8, 2.0 times the denominator.
    den = [1.0] * 5 + [1.1] * 5 + [0.9] * 5 + [1.0] * 5
    factors = [2.0, 2.2, 1.8, 2.0]
    num = [x * factors[i // 5] for i, x in enumerate(den)]
    ids = [i // 5 for i in range(20)]
    r = stats.step_ratio_ci(num, [den], blocks=(ids, ids))
    d = np.log(factors)
    half = 3.182446305284263 * np.std(d, ddof=1) / 2  # t(0.975, 3) · sd / sqrt(4)
    assert r.paired and r.blocks == 4 and r.spread is None
    assert r.ratio == pytest.approx(math.exp(d.mean()))
    assert (r.low, r.high) == (pytest.approx(math.exp(d.mean() - half)),
                               pytest.approx(math.exp(d.mean() + half)))
    assert r.method == "paired blocks (n=4)"


def test_unpaired_hand_worked() -> None:
    # 8 steps -> 2 chunks of 4 (RATIO_CHUNK_LEN); chunk medians 2.1 and 1.9 for the
    # numerator, a constant denominator: se = sd(ln 2.1, ln 1.9) / sqrt(2), 1 dof.
    num = [2.1] * 4 + [1.9] * 4
    den = [1.0] * 8
    r = stats.step_ratio_ci(num, [den])
    se = np.std(np.log([2.1, 1.9]), ddof=1) / math.sqrt(2)
    t = sps.t.ppf(0.975, 1)
    assert not r.paired and r.ci.dof == pytest.approx(1.0)
    assert r.ratio == pytest.approx(2.0)  # median(num) = (1.9 + 2.1) / 2
    assert r.low == pytest.approx(2.0 * math.exp(-t * se))
    assert r.high == pytest.approx(2.0 * math.exp(t * se))
    assert r.method == "chunk medians (ν≈1)"


def test_assumed_run_spread_is_a_fraction_on_the_log_scale() -> None:
    # Constant steps: the whole CI is the between-run term, ln(1.02)·sqrt(1 + 1/1), normal.
    r = stats.step_ratio_ci([1.5] * 30, [[0.5] * 30], run_spread=0.02)
    half = 1.959963984540054 * math.log1p(0.02) * math.sqrt(2)
    assert r.ratio == pytest.approx(3.0)
    assert (r.low, r.high) == (pytest.approx(3.0 * math.exp(-half)),
                               pytest.approx(3.0 * math.exp(half)))
    assert r.method.endswith("run spread 2% assumed")
    exact = stats.step_ratio_ci([1.5] * 30, [[0.5] * 30])
    assert (exact.low, exact.high) == (pytest.approx(3.0), pytest.approx(3.0))


def test_several_denominator_runs_estimate_the_spread() -> None:
    rng = np.random.default_rng(1)
    runs = [0.1 * math.exp(rng.normal(0, 0.03)) * _ar1(rng, 40, 0.3) for _ in range(4)]
    r = stats.step_ratio_ci(0.11 * _ar1(rng, 40, 0.3), runs)
    assert r.spread is not None and r.spread.runs == 4
    assert r.method.endswith("run spread estimated from 4 runs")


def test_blocks_shared_by_fewer_than_two_pairs_fall_back_to_unpaired() -> None:
    rng = np.random.default_rng(2)
    a, b = 0.1 * _ar1(rng, 20, 0.3), 0.2 * _ar1(rng, 20, 0.3)
    r = stats.step_ratio_ci(b, [a], blocks=([0] * 20, [1] * 20))
    assert not r.paired


def test_too_few_steps_is_its_own_error() -> None:
    with pytest.raises(stats.TooFewSteps) as info:
        stats.step_ratio_ci([0.1] * 7, [[0.2] * 30])
    assert info.value.n_steps == 7 and info.value.needed == 8
    assert "7 measured steps; need at least 8" in str(info.value)


def test_chart_speedup_is_the_same_function_turned_around() -> None:
    rng = np.random.default_rng(3)
    a, b = 0.1 * _ar1(rng, 40, 0.3), 0.25 * _ar1(rng, 40, 0.3)
    value, low, high, method = speedup_ci(a, b)
    r = stats.step_ratio_ci(b, [a])
    assert (value, low, high, method) == (r.ratio, r.low, r.high, r.method)


@pytest.mark.parametrize("phi", [0.0, 0.3])
def test_unpaired_coverage_with_autocorrelated_steps(phi: float) -> None:
    # 60 measured steps per cell (the quick profile measures 30-200), true ratio 1.8.
    rng = np.random.default_rng(14)
    hits = 0
    reps = 400
    for _ in range(reps):
        r = stats.step_ratio_ci(0.18 * _ar1(rng, 60, phi), [0.1 * _ar1(rng, 60, phi)])
        hits += r.low <= 1.8 <= r.high
    assert 0.91 <= hits / reps <= 0.98


def test_paired_coverage_with_drift_between_blocks() -> None:
    # Six interleaved blocks of 10 steps; each block shares a 5% machine factor.
    rng = np.random.default_rng(15)
    hits = 0
    reps = 400
    for _ in range(reps):
        num: list[float] = []
        den: list[float] = []
        ids: list[int] = []
        for k in range(6):
            drift = math.exp(rng.normal(0, 0.05))
            den += list(0.1 * drift * _ar1(rng, 10, 0.5))
            num += list(0.18 * drift * _ar1(rng, 10, 0.5))
            ids += [k] * 10
        r = stats.step_ratio_ci(num, [den], blocks=(ids, ids))
        hits += r.low <= 1.8 <= r.high
    assert 0.92 <= hits / reps <= 0.98
