"""Statistics against hand-worked values, and seeded simulations of noisy runs.

The simulations draw runs with a known run-to-run machine factor and AR(1)
autocorrelated steps, the two things that make naive per-step tests raise
false alarms, and check the verdict rates the method promises.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats as sps

from harness import stats
from harness.stats import RatioCI, RunSummary

# --- existing helpers used by the orchestrator -------------------------------------------------


def test_median_ci_order_statistics_hand_worked() -> None:
    # n = 10, Binomial(10, 1/2): P(B <= 1) = 11/1024 <= 0.025 < P(B <= 2) = 56/1024,
    # so the 95% CI is [x_(2), x_(9)].
    values = [float(v) for v in range(1, 11)]
    assert stats.median_ci(values) == (2.0, 9.0)
    assert stats.median_ci([3.0]) == (3.0, 3.0)
    # Too few values for 95% coverage: the full range.
    assert stats.median_ci([1.0, 5.0, 2.0]) == (1.0, 5.0)


def test_lag1_autocorr_hand_worked() -> None:
    e = math.e
    # ln values 0, 1, 0, 1: deviations ±1/2, three products of -1/4 over a sum of squares 1.
    assert stats.lag1_autocorr([1.0, e, 1.0, e]) == pytest.approx(-0.75)
    # Values <= 0 cannot be logged: the values themselves.
    assert stats.lag1_autocorr([0.0, 1.0, 0.0, 1.0]) == pytest.approx(-0.75)
    assert stats.lag1_autocorr([2.0, 2.0, 2.0]) is None  # constant: undefined
    assert stats.lag1_autocorr([1.0, 2.0]) is None


def test_median_variance_factor_hand_worked() -> None:
    assert stats.median_variance_factor(0.0, 30) == 1.0
    # n = 2: g = 1 + 2·(1 − 1/2)·(2/π)·arcsin(1/2) = 1 + (2/π)(π/6) = 4/3.
    assert stats.median_variance_factor(0.5, 2) == pytest.approx(4 / 3)
    assert stats.median_variance_factor(0.7, 60) > stats.median_variance_factor(0.3, 60) > 1
    assert stats.median_variance_factor(-0.3, 60) < 1
    with pytest.raises(ValueError):
        stats.median_variance_factor(1.0, 10)


_PERM = [7, 9, 6, 5, 2, 4, 10, 1, 3, 8]  # lag-1 autocorrelation exactly -1/10


def _blom_scores(values: list[float]) -> list[float]:
    n = len(values)
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0] * n
    for r, i in enumerate(order, start=1):
        ranks[i] = r
    return [float(sps.norm.ppf((r - 0.375) / (n + 0.25))) for r in ranks]


def _lag1(z: list[float]) -> float:
    m = sum(z) / len(z)
    d = [v - m for v in z]
    return sum(d[i] * d[i + 1] for i in range(len(d) - 1)) / sum(v * v for v in d)


def test_autocorr_estimate_is_rank_based_and_bias_corrected() -> None:
    values = [math.exp(v) for v in _PERM]
    r1 = _lag1(_blom_scores(values))
    assert stats.autocorr_estimate(values) == pytest.approx((10 * r1 + 1) / 6)
    # Ranks only: any increasing transform gives the same estimate.
    assert stats.autocorr_estimate([float(v) for v in _PERM]) == pytest.approx((10 * r1 + 1) / 6)
    # Clipped to [-0.5, 0.99]: strict alternation, a strict trend; constant → 0.
    assert stats.autocorr_estimate([1.0, 3.0] * 6) == -0.5
    assert stats.autocorr_estimate([float(v) for v in range(12)]) == 0.99
    assert stats.autocorr_estimate([2.0] * 8) == pytest.approx(1 / 4)  # r1 = 0: (0 + 1)/(8 - 4)
    with pytest.raises(ValueError, match="at least 6"):
        stats.autocorr_estimate([1.0, 2.0, 3.0])


def test_one_spike_does_not_erase_the_rank_estimate() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        z = np.zeros(40)
        for t in range(1, 40):
            z[t] = 0.6 * z[t - 1] + 0.8 * rng.standard_normal()
        x = np.exp(0.05 * z)
        spiked = x.copy()
        spiked[20] *= 10  # one 10x step (garbage collection, a co-tenant)
        # Ranks: the spike is one high rank; most of the autocorrelation survives ...
        assert stats.autocorr_estimate(spiked) >= 0.6 * stats.autocorr_estimate(x)
        # ... while the plain estimate on ln x is wiped out by the spike's variance.
        plain = stats.lag1_autocorr(spiked)
        assert plain is not None and abs(plain) < 0.05


def test_autocorr_median_ci_worked_step_by_step() -> None:
    values = [math.exp(v) for v in _PERM]
    n = 10
    rho = stats.autocorr_estimate(values)
    k = range(1, n)
    g = 1 + 2 * sum((1 - j / n) * 2 / math.pi * math.asin(rho ** j) for j in k)
    dg = 2 * sum((1 - j / n) * 2 / math.pi * j * rho ** (j - 1) / math.sqrt(1 - rho ** (2 * j))
                 for j in k)
    assert g == pytest.approx(stats.median_variance_factor(rho, n))
    # 1/df = 1/(n/g − 1) + Var(ln g(ρ̂))/2 with Var ρ̂ = (1 − ρ²)/n; ranks (n+1)/2 ± t·sqrt(n·g)/2.
    df = 1 / (1 / (n / g - 1) + (dg / g) ** 2 * (1 - rho ** 2) / n / 2)
    half = float(sps.t.ppf(0.975, df)) * math.sqrt(n * g) / 2
    xs = sorted(values)

    def at(rank: float) -> float:
        i = math.floor(rank)
        return xs[i - 1] + (rank - i) * (xs[i] - xs[i - 1])

    low, high = stats.autocorr_median_ci(values)
    assert low == pytest.approx(at(5.5 - half), rel=1e-12)
    assert high == pytest.approx(at(5.5 + half), rel=1e-12)


def test_autocorr_median_ci_edges() -> None:
    assert stats.autocorr_median_ci([3.0]) == (3.0, 3.0)
    # Fewer than six values: no usable autocorrelation estimate, the full range.
    assert stats.autocorr_median_ci([4.0, 1.0, 5.0, 2.0, 3.0]) == (1.0, 5.0)
    assert stats.autocorr_median_ci([2.0] * 12) == (2.0, 2.0)
    with pytest.raises(ValueError, match="at least one"):
        stats.autocorr_median_ci([])
    with pytest.raises(ValueError, match="finite"):
        stats.autocorr_median_ci([1.0, float("nan")] * 5)
    # Scale equivariant (it depends on ranks and on the lag-1 correlation of ln x only).
    values = [math.exp(v / 10) for v in _PERM * 3]
    low, high = stats.autocorr_median_ci(values)
    assert stats.autocorr_median_ci([7 * v for v in values]) == pytest.approx((7 * low, 7 * high))


def test_autocorr_median_ci_widens_with_positive_autocorrelation() -> None:
    rng = np.random.default_rng(11)
    z = np.zeros(60)
    for t in range(1, 60):
        z[t] = 0.8 * z[t - 1] + rng.standard_normal()
    x = np.exp(0.05 * z)
    old_low, old_high = stats.median_ci(x)
    low, high = stats.autocorr_median_ci(x)
    assert low < old_low and high > old_high


def test_summarize_and_relative_halfwidth() -> None:
    values = [math.exp(v) for v in _PERM]
    s = stats.summarize(values)
    assert s["median"] == pytest.approx((math.exp(5) + math.exp(6)) / 2)
    assert (s["median_ci_low"], s["median_ci_high"]) == stats.autocorr_median_ci(values)
    assert s["lag1_autocorr"] == pytest.approx(-0.1)
    assert stats.relative_ci_halfwidth(values) == pytest.approx(
        (s["median_ci_high"] - s["median_ci_low"]) / 2 / s["median"])
    assert stats.summarize([5.0])["lag1_autocorr"] is None


# --- chunk medians and batch means -----------------------------------------------------------


def test_chunk_medians_contiguous_chunks() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert stats.chunk_medians(values, n_chunks=4).tolist() == [1.5, 3.5, 5.5, 7.5]
    # At most len // 2 chunks, so every chunk has two values or more.
    assert stats.chunk_medians(values, n_chunks=16).tolist() == [1.5, 3.5, 5.5, 7.5]
    # Uneven: 9 values in 3 chunks of 3, time order kept.
    assert stats.chunk_medians([9, 1, 5, 2, 8, 3, 7, 4, 6], n_chunks=3).tolist() == [5, 3, 6]


def test_chunk_medians_needs_two_chunks() -> None:
    with pytest.raises(ValueError, match="at least 4 values"):
        stats.chunk_medians([1.0, 2.0, 3.0])


def test_summarize_run_batch_means_se_hand_worked() -> None:
    e = math.e
    # Two chunks with medians 1 and e: ln c = [0, 1], sd = 1/sqrt(2), se = sd/sqrt(2) = 0.5.
    run = stats.summarize_run([1.0, 1.0, e, e], n_chunks=2)
    assert run.median == pytest.approx((1 + e) / 2)
    assert run.log_se == pytest.approx(0.5)
    assert run.n_chunks == 2


def test_summarize_run_rejects_nonpositive() -> None:
    with pytest.raises(ValueError, match="> 0"):
        stats.summarize_run([0.1, 0.0, 0.1, 0.1])


# --- between-run spread ------------------------------------------------------------------------


def _run(log_median: float, se: float = 0.0, chunks: int = 16) -> RunSummary:
    return RunSummary(median=math.exp(log_median), log_se=se, n_chunks=chunks)


def test_between_run_spread_hand_worked() -> None:
    # ln medians 0, 0.1, 0.2: Var = 0.01; no within-run noise → sigma = 0.1 with 2 dof.
    spread = stats.between_run_spread([_run(0.0), _run(0.1), _run(0.2)])
    assert spread.sigma == pytest.approx(0.1)
    assert (spread.dof, spread.runs, spread.estimated) == (2.0, 3, True)
    # Within-run se 0.05 explains 0.0025 of it: sigma² = 0.0075.
    spread = stats.between_run_spread([_run(0.0, 0.05), _run(0.1, 0.05), _run(0.2, 0.05)])
    assert spread.sigma == pytest.approx(math.sqrt(0.0075))
    # Within-run noise larger than the scatter of medians: truncated at zero.
    spread = stats.between_run_spread([_run(0.0, 0.5), _run(0.01, 0.5)])
    assert spread.sigma == 0.0


def test_between_run_spread_needs_two_runs_and_assumed_spread() -> None:
    with pytest.raises(ValueError):
        stats.between_run_spread([_run(0.0)])
    assumed = stats.assumed_spread(0.02)
    assert (assumed.sigma, assumed.dof, assumed.estimated) == (0.02, math.inf, False)
    with pytest.raises(ValueError):
        stats.assumed_spread(-0.01)


def test_welch_satterthwaite() -> None:
    assert stats.welch_satterthwaite([1.0, 1.0], [4, 4]) == pytest.approx(8.0)
    assert stats.welch_satterthwaite([1.0, 0.0], [3, 1]) == pytest.approx(3.0)
    assert stats.welch_satterthwaite([1.0, 1.0], [math.inf, 2]) == pytest.approx(8.0)
    assert stats.welch_satterthwaite([1.0], [math.inf]) == math.inf
    assert stats.welch_satterthwaite([0.0, 0.0], [3, 3]) == math.inf


# --- ratio CIs ---------------------------------------------------------------------------------


def test_ratio_ci_single_baseline_assumed_spread_hand_worked() -> None:
    # se = 0.02·sqrt(1 + 1/1) = 0.0282843, infinite dof → z = 1.959964.
    ci = stats.ratio_ci(_run(math.log(1.1)), [_run(0.0)], stats.assumed_spread(0.02))
    assert ci.ratio == pytest.approx(1.1)
    assert ci.log_se == pytest.approx(0.0282843, abs=1e-7)
    assert ci.dof == math.inf
    assert ci.low == pytest.approx(1.040679, abs=1e-6)
    assert ci.high == pytest.approx(1.162702, abs=1e-6)


def test_ratio_ci_two_baselines_estimated_spread_hand_worked() -> None:
    # Baselines ln 0 and 0.02: sigma² = 0.0002 (1 dof); candidate ln 0.11 → ln r = 0.10.
    # se² = 0.0002·1.5 = 0.0003, t(0.975, 1) = 12.7062 → a very wide CI.
    base = [_run(0.0), _run(0.02)]
    ci = stats.ratio_ci(_run(0.11), base, stats.between_run_spread(base))
    assert ci.ratio == pytest.approx(math.exp(0.1))
    assert ci.log_se == pytest.approx(math.sqrt(0.0003))
    assert ci.dof == pytest.approx(1.0)
    assert ci.low == pytest.approx(0.886849, abs=1e-5)
    assert ci.high == pytest.approx(1.377236, abs=1e-5)
    assert stats.verdict(ci, 0.05) == "INCONCLUSIVE"


def test_ratio_ci_combines_within_run_errors() -> None:
    # Candidate se 0.03 (15 dof), one baseline se 0.04 (15 dof), no spread:
    # se² = 0.0009 + 0.0016 = 0.0025; dof = 0.0025² / (0.0009²/15 + 0.0016²/15) = 27.03.
    cand = RunSummary(median=1.0, log_se=0.03, n_chunks=16)
    base = RunSummary(median=1.0, log_se=0.04, n_chunks=16)
    ci = stats.ratio_ci(cand, [base], stats.assumed_spread(0.0))
    assert ci.log_se == pytest.approx(0.05)
    assert ci.dof == pytest.approx(0.0025 ** 2 / ((0.0009 ** 2 + 0.0016 ** 2) / 15))


# --- verdicts, p-values, BH --------------------------------------------------------------------


def _ci(low: float, high: float) -> RatioCI:
    return RatioCI(ratio=math.sqrt(low * high), low=low, high=high, log_se=0.01, dof=10)


@pytest.mark.parametrize(("low", "high", "lower_better", "higher_better"), [
    (1.06, 1.10, "REGRESSION", "IMPROVEMENT"),
    (0.90, 0.94, "IMPROVEMENT", "REGRESSION"),
    (0.97, 1.03, "NO CHANGE", "NO CHANGE"),
    (1 / 1.05, 1.05, "NO CHANGE", "NO CHANGE"),  # the band is closed
    (1.00, 1.10, "INCONCLUSIVE", "INCONCLUSIVE"),
    (0.90, 1.00, "INCONCLUSIVE", "INCONCLUSIVE"),
    (0.90, 1.10, "INCONCLUSIVE", "INCONCLUSIVE"),
])
def test_verdict_three_way(low: float, high: float, lower_better: str,
                           higher_better: str) -> None:
    assert stats.verdict(_ci(low, high), 0.05) == lower_better
    assert stats.verdict(_ci(low, high), 0.05, higher_is_better=True) == higher_better


def test_min_effect_p_value_matches_ci_decision() -> None:
    band = math.log(1.05)
    z = 1.959963984540054
    # CI low exactly on 1+δ → p = 0.05 (two-sided).
    assert stats.min_effect_p_value(band + z * 0.02, 0.02, math.inf, 0.05) == pytest.approx(0.05)
    assert stats.min_effect_p_value(-(band + z * 0.02), 0.02, math.inf, 0.05) == \
        pytest.approx(0.05)
    assert stats.min_effect_p_value(0.0, 0.02, 10, 0.05) == 1.0
    assert stats.min_effect_p_value(0.2, 0.0, 10, 0.05) == 0.0
    rng = np.random.default_rng(1)
    for _ in range(200):
        log_r, se, dof = rng.normal(0, 0.1), rng.uniform(0.005, 0.05), rng.uniform(1, 30)
        ci = stats.log_ratio_ci(log_r, se, dof)
        p = stats.min_effect_p_value(log_r, se, dof, 0.05)
        assert (p < 0.05) == (stats.verdict(ci, 0.05) in ("REGRESSION", "IMPROVEMENT"))


def test_bh_adjust_hand_worked() -> None:
    # Sorted p·m/rank: 0.01·4/1 = 0.04, 0.02·4/2 = 0.04, 0.03·4/3 = 0.04, 0.5.
    assert stats.bh_adjust([0.5, 0.02, 0.01, 0.03]) == pytest.approx([0.5, 0.04, 0.04, 0.04])
    assert stats.bh_adjust([]) == []


def test_fdr_verdicts_downgrades_lone_marginal_discovery() -> None:
    # One cell barely clears δ (p ≈ 0.04); among 10 null cells its q is 0.4 → INCONCLUSIVE.
    band, z = math.log(1.05), 2.054  # two-sided p ≈ 0.04
    marginal = stats.log_ratio_ci(band + z * 0.02, 0.02, math.inf)
    nulls = [stats.log_ratio_ci(0.0, 0.02, math.inf)] * 9
    alone = stats.fdr_verdicts([marginal], 0.05)
    assert alone[0][0] == "REGRESSION" and alone[0][1] == pytest.approx(0.04, abs=1e-3)
    many = stats.fdr_verdicts([marginal, *nulls], 0.05)
    assert many[0][0] == "INCONCLUSIVE"
    assert many[0][2] == pytest.approx(0.4, abs=0.01)
    strong = stats.log_ratio_ci(0.3, 0.02, math.inf)
    assert stats.fdr_verdicts([strong, *nulls], 0.05)[0][0] == "REGRESSION"


# --- paired block ratios -----------------------------------------------------------------------


def test_paired_block_ratio_ci_hand_worked() -> None:
    # Block log-ratios ln2 + (0, 0.1, −0.1): mean ln 2, sd 0.1, se 0.1/sqrt(3), t(0.975, 2).
    a = [[1.0, 1.0, 1.0]] * 3
    b = [[2.0] * 3, [2 * math.exp(0.1)] * 3, [2 * math.exp(-0.1)] * 3]
    ci = stats.paired_block_ratio_ci(a, b)
    assert ci.ratio == pytest.approx(2.0)
    assert ci.dof == 2
    assert ci.low == pytest.approx(1.560074, abs=1e-5)
    assert ci.high == pytest.approx(2.563981, abs=1e-5)


def test_paired_block_ratio_ci_cancels_common_drift() -> None:
    # Both cells slow down together by up to 2× between blocks: the ratio is exact.
    drift = [1.0, 1.5, 0.7, 2.0]
    a = [[0.01 * d] * 5 for d in drift]
    b = [[0.015 * d] * 5 for d in drift]
    ci = stats.paired_block_ratio_ci(a, b)
    assert (ci.ratio, ci.low, ci.high) == pytest.approx((1.5, 1.5, 1.5))


def test_paired_block_ratio_ci_input_checks() -> None:
    with pytest.raises(ValueError):
        stats.paired_block_ratio_ci([[1.0]], [[1.0]])
    with pytest.raises(ValueError):
        stats.paired_block_ratio_ci([[1.0], [1.0]], [[1.0]])


# --- seeded simulations ------------------------------------------------------------------------

PHI, STEP_SD, STEPS = 0.7, 0.05, 40


def _steps(rng: np.random.Generator, n: int, level: float) -> np.ndarray:
    """AR(1) log-noise steps (marginal sd STEP_SD, lag-1 correlation PHI) around level."""
    innov = rng.normal(0, STEP_SD * math.sqrt(1 - PHI ** 2), n)
    e = np.empty(n)
    e[0] = rng.normal(0, STEP_SD)
    for i in range(1, n):
        e[i] = PHI * e[i - 1] + innov[i]
    return level * np.exp(e)


def _stored_baseline_verdicts(shift: float, k: int, run_factor: float, seeds: int,
                              assumed: float | None = None) -> Counter[str]:
    verdicts: Counter[str] = Counter()
    for seed in range(seeds):
        rng = np.random.default_rng(seed)

        def run(level: float, rng: np.random.Generator = rng) -> RunSummary:
            factor = math.exp(rng.normal(0, run_factor))
            return stats.summarize_run(_steps(rng, STEPS, level * factor))

        base = [run(0.1) for _ in range(k)]
        cand = run(0.1 * shift)
        spread = stats.between_run_spread(base) if k >= 2 else stats.assumed_spread(assumed or 0)
        verdicts[stats.verdict(stats.ratio_ci(cand, base, spread), 0.05)] += 1
    return verdicts


def test_simulated_aa_stored_baselines_rarely_regress() -> None:
    """A/A with a 3% run-to-run factor: REGRESSION in at most 5% of seeds."""
    v = _stored_baseline_verdicts(1.0, k=5, run_factor=0.03, seeds=300)
    assert v["REGRESSION"] <= 0.05 * 300
    assert v["IMPROVEMENT"] <= 0.05 * 300


def test_simulated_aa_single_baseline_with_assumed_spread() -> None:
    """One stored baseline, the machine's 3% spread assumed: still no false alarms, and
    mostly INCONCLUSIVE, because the CI cannot fit inside ±5%."""
    v = _stored_baseline_verdicts(1.0, k=1, run_factor=0.03, seeds=300, assumed=0.03)
    assert v["REGRESSION"] <= 0.05 * 300
    assert v["INCONCLUSIVE"] >= 0.9 * 300


def test_simulated_plus_20_percent_is_flagged() -> None:
    """+20% with eight stored baselines and a 2% run factor: REGRESSION in >= 95% of seeds."""
    v = _stored_baseline_verdicts(1.2, k=8, run_factor=0.02, seeds=300)
    assert v["REGRESSION"] >= 0.95 * 300
    assert v["IMPROVEMENT"] == 0


def _interleaved_verdicts(ratio: float, blocks: int, drift: float, seeds: int,
                          steps: int = 20) -> Counter[str]:
    """Two cells alternated in blocks; each block shares a machine factor (sd `drift`)."""
    verdicts: Counter[str] = Counter()
    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        a_blocks, b_blocks = [], []
        for _ in range(blocks):
            factor = math.exp(rng.normal(0, drift))
            a_blocks.append(_steps(rng, steps, 0.1 * factor))
            b_blocks.append(_steps(rng, steps, 0.1 * ratio * factor))
        ci = stats.paired_block_ratio_ci(a_blocks, b_blocks)
        verdicts[stats.verdict(ci, 0.05)] += 1
    return verdicts


def test_simulated_interleaving_aa_and_plus_20() -> None:
    """3% machine drift between blocks, 8 blocks: A/A rarely regresses and often reaches
    NO CHANGE (stored baselines almost never can); +20% is flagged in >= 95% of seeds."""
    aa = _interleaved_verdicts(1.0, blocks=8, drift=0.03, seeds=200)
    assert aa["REGRESSION"] <= 0.05 * 200
    assert aa["NO CHANGE"] >= 0.6 * 200
    up = _interleaved_verdicts(1.2, blocks=8, drift=0.03, seeds=200)
    assert up["REGRESSION"] >= 0.95 * 200


def test_simulated_interleaving_beats_stored_baselines_at_10_percent() -> None:
    """+10% under a 3% machine factor: interleaving flags it far more often than eight
    stored baselines do (measured 85% vs 20% with these seeds)."""
    paired = _interleaved_verdicts(1.1, blocks=8, drift=0.03, seeds=200)
    stored = _stored_baseline_verdicts(1.1, k=8, run_factor=0.03, seeds=200)
    assert paired["REGRESSION"] >= 0.75 * 200
    assert stored["REGRESSION"] <= 0.5 * 200
    assert stored["IMPROVEMENT"] == 0 and paired["IMPROVEMENT"] == 0


def test_simulated_ratio_ci_coverage_is_near_nominal() -> None:
    """The 95% CI holds the true ratio in most seeds (few baselines: a little below 95%)."""
    hits = 0
    for seed in range(300):
        rng = np.random.default_rng(50_000 + seed)
        runs = [stats.summarize_run(_steps(rng, STEPS, 0.1 * math.exp(rng.normal(0, 0.03))))
                for _ in range(6)]
        ci = stats.ratio_ci(runs[-1], runs[:-1], stats.between_run_spread(runs[:-1]))
        hits += ci.low <= 1.0 <= ci.high
    assert hits >= 0.88 * 300
