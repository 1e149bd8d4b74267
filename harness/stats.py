"""Pure statistics over sequences of floats: no I/O, no TensorFlow.

Per-step timings are autocorrelated, so confidence intervals here never treat
steps as independent normal draws: the median's CI comes from order statistics
widened for the measured lag-1 autocorrelation (docs/statistics.md), and
standard errors from chunk (batch) medians.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
from scipy import special as spspecial
from scipy import stats as sps

# Step durations or block medians: a list, tuple or 1-D NumPy array of floats.
Floats = Sequence[float] | np.ndarray


def median_ci(values: Floats, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics, for INDEPENDENT values.

    The number of values below the median is Binomial(n, 1/2); the interval is
    ``[x_(j), x_(k)]`` with j, k chosen from its quantiles so that coverage is at
    least ``confidence``. With too few values for that coverage the CI is the
    full range. Step times are autocorrelated, which this ignores (95% nominal
    covers about 70% at lag-1 autocorrelation 0.7); per-cell step statistics use
    `autocorr_median_ci` instead.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        raise ValueError("median_ci needs at least one value")
    if n == 1:
        return float(x[0]), float(x[0])
    alpha = 1.0 - confidence
    # Largest j with P(B <= j-1) <= alpha/2, where B ~ Binomial(n, 0.5).
    j = int(sps.binom.ppf(alpha / 2, n, 0.5))
    if sps.binom.cdf(j - 1, n, 0.5) > alpha / 2:  # pragma: no cover - ppf guarantees this
        j -= 1
    j = max(j, 0)
    lo_idx = j - 1 if j >= 1 else 0
    hi_idx = n - j if j >= 1 else n - 1
    if j < 1:
        return float(x[0]), float(x[-1])
    return float(x[lo_idx]), float(x[hi_idx])


# --- The median's CI under autocorrelation (see docs/statistics.md) ---------------------------

MIN_AUTOCORR_VALUES = 6  # below this, no usable lag-1 estimate: the CI is the full range
RHO_FLOOR, RHO_CEIL = -0.5, 0.99  # the bias-corrected lag-1 estimate is kept inside these


def _lag1_rows(z: np.ndarray) -> np.ndarray:
    """Standard lag-1 sample autocorrelation of each row; 0 for a constant row."""
    d = z - z.mean(axis=1, keepdims=True)
    den = (d * d).sum(axis=1)
    num = (d[:, :-1] * d[:, 1:]).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _log_if_positive(x: np.ndarray) -> np.ndarray:
    """ln(x) for rows whose values are all > 0; the values themselves otherwise."""
    positive = (x > 0).all(axis=1, keepdims=True)
    return np.where(positive, np.log(np.where(x > 0, x, 1.0)), x)


def _sorted_and_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row sorted, and each value's rank in its row (1..n; ties share their mean rank)."""
    n = x.shape[1]
    order = np.argsort(x, axis=1, kind="stable")
    xs = np.take_along_axis(x, order, axis=1)
    ranks = np.empty_like(x)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(1.0, n + 1), x.shape), axis=1)
    tied = (xs[:, 1:] == xs[:, :-1]).any(axis=1)
    if tied.any():
        ranks[tied] = sps.rankdata(x[tied], axis=1)
    return xs, ranks


def _rho_hat_rows(ranks: np.ndarray) -> np.ndarray:
    """The CI's lag-1 estimate per row from ranks: Blom normal scores, bias-corrected, clipped."""
    n = ranks.shape[1]
    scores = spspecial.ndtri((ranks - 0.375) / (n + 0.25))
    r1 = _lag1_rows(np.asarray(scores))
    return np.clip((n * r1 + 1) / (n - 4), RHO_FLOOR, RHO_CEIL)


def autocorr_estimate(values: Floats) -> float:
    """The lag-1 autocorrelation `autocorr_median_ci` uses (needs >= 6 values).

    The lag-1 sample autocorrelation r1 of the values' normal scores (their
    ranks mapped through the normal quantile function, so that one 10x spike
    counts as one high rank, not as most of the variance), bias-corrected for
    small n as ρ̂ = (n·r1 + 1)/(n − 4) (E r1 ≈ ρ − (1 + 4ρ)/n for AR(1)) and
    kept in [−0.5, 0.99]. Constant values have r1 = 0 (and a point CI).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) < MIN_AUTOCORR_VALUES or not np.all(np.isfinite(x)):
        raise ValueError(f"autocorr_estimate needs at least {MIN_AUTOCORR_VALUES} finite values")
    return float(_rho_hat_rows(_sorted_and_ranks(x[None, :])[1])[0])


def lag1_autocorr(values: Floats) -> float | None:
    """Lag-1 autocorrelation of ln(values), the plain sample estimate (not bias-corrected).

    r1 = sum_t (z_t − z̄)(z_{t+1} − z̄) / sum_t (z_t − z̄)², z = ln(values); of
    the values themselves if any is <= 0. None when it is undefined (fewer than
    three values, or all equal). It is biased low at small n (about
    −(1+4ρ)/n) and pulled towards 0 by spikes; the CI uses `autocorr_estimate`,
    which is bias-corrected and rank-based.
    """
    x = np.asarray(values, dtype=float)
    if len(x) < 3 or not np.all(np.isfinite(x)):
        return None
    z = _log_if_positive(x[None, :])[0]
    if np.ptp(z) == 0:
        return None
    return float(_lag1_rows(z[None, :])[0])


def _variance_factor_rows(rho: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """g(ρ) and dg/dρ per row: Var(sample median) / Var under independence for AR(1).

    For a stationary Gaussian AR(1) (or any monotone transform of one) the
    indicators 1{x_t <= median} have lag-k correlation (2/π)·arcsin(ρ^k), so
    g(ρ) = 1 + 2·Σ_{k<n} (1 − k/n)·(2/π)·arcsin(ρ^k).
    """
    k = np.arange(1, n, dtype=float)
    w = (1 - k / n) * (2 / math.pi)
    p = np.cumprod(np.broadcast_to(rho[:, None], (len(rho), n - 1)), axis=1)  # ρ^k
    g = 1 + 2 * (w * np.arcsin(p)).sum(axis=1)
    dp = k * np.concatenate([np.ones((len(rho), 1)), p[:, :-1]], axis=1)  # k·ρ^(k−1)
    dg = 2 * (w * dp / np.sqrt(1 - p * p)).sum(axis=1)
    return g, dg


def median_variance_factor(rho: float, n: int) -> float:
    """g(ρ): how many times the sample median's variance exceeds the independent case (AR(1))."""
    if not -1 < rho < 1:
        raise ValueError(f"rho must be in (-1, 1), got {rho}")
    return float(_variance_factor_rows(np.array([float(rho)]), n)[0][0])


def autocorr_median_ci_rows(x: np.ndarray, confidence: float = 0.95
                            ) -> tuple[np.ndarray, np.ndarray]:
    """`autocorr_median_ci` of each row of a 2-D array (one series per row), vectorised.

    The simulations in tests/ and benchmarks/ call this directly; the per-cell
    function is this with one row.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError("autocorr_median_ci_rows needs a 2-D array with at least one column")
    if not np.all(np.isfinite(x)):
        raise ValueError("autocorr_median_ci needs finite values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = x.shape[1]
    if n < MIN_AUTOCORR_VALUES:
        return x.min(axis=1), x.max(axis=1)
    xs, ranks = _sorted_and_ranks(x)
    rho = _rho_hat_rows(ranks)
    g, dg = _variance_factor_rows(rho, n)
    # Degrees of freedom: the order statistics' spread from n/g effective values,
    # and the uncertainty of g(ρ̂) (Var ρ̂ ≈ (1 − ρ²)/n, delta method), combined
    # as for a product of two independent variance estimates (Satterthwaite).
    df_spread = np.maximum(n / g - 1, 1.0)
    var_log_g = (dg / g) ** 2 * (1 - rho * rho) / n
    inv_df = 1 / df_spread + var_log_g / 2
    q = spspecial.stdtrit(1 / inv_df, 0.5 + confidence / 2)
    half = q * np.sqrt(n * g) / 2  # half-width in ranks
    centre = (n + 1) / 2

    def at_rank(rank: np.ndarray) -> np.ndarray:
        rank = np.clip(rank, 1, n)
        i = np.minimum(np.floor(rank).astype(int), n - 1)  # 1-based lower neighbour
        frac = rank - i
        lo = np.take_along_axis(xs, (i - 1)[:, None], axis=1)[:, 0]
        hi = np.take_along_axis(xs, i[:, None], axis=1)[:, 0]
        return lo + frac * (hi - lo)

    return at_rank(centre - half), at_rank(centre + half)


def autocorr_median_ci(values: Floats, confidence: float = 0.95) -> tuple[float, float]:
    """CI of the median of autocorrelated step times (order statistics, AR(1)-widened).

    Assumes the values are a stationary series that some increasing transform
    (ln, say) turns into a Gaussian AR(1). Its lag-1 correlation ρ is estimated
    from the values' ranks and bias-corrected (`autocorr_estimate`). Under that
    model the count of values below the true median has variance n·g(ρ)/4
    (`median_variance_factor`); the interval is the pair of interpolated order
    statistics at ranks (n+1)/2 ± t·sqrt(n·g)/2, with a Student-t quantile whose
    degrees of freedom count both the effective sample size n/g and the
    uncertainty of ρ̂. Which ranks are chosen depends on the ranks alone.
    Not assumed: normality, independence. Not modelled: drift (a trend, a step
    change inside the cell), dependence beyond AR(1). Fewer than 6 values give
    the full range. Seeded simulation coverage is in docs/statistics.md
    (95–97% for ρ from 0 to 0.7 at n = 30 and 60, 93–97% under the quick
    profile's stopping rule).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("autocorr_median_ci needs at least one value")
    lo, hi = autocorr_median_ci_rows(x[None, :], confidence)
    return float(lo[0]), float(hi[0])


class StepSummary(TypedDict):
    """What `summarize` returns: seconds, except the (unitless) lag-1 autocorrelation."""

    median: float
    p90: float
    p99: float
    mean: float
    std: float
    median_ci_low: float
    median_ci_high: float
    lag1_autocorr: float | None


def summarize(values: Floats, confidence: float = 0.95) -> StepSummary:
    """Median, p90, p99, mean, std, the median's CI and lag-1 autocorrelation of step times.

    The CI is `autocorr_median_ci` (robust to autocorrelated steps);
    ``lag1_autocorr`` is `lag1_autocorr` of the values (None if undefined).
    """
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        raise ValueError("summarize needs at least one value")
    low, high = autocorr_median_ci(x, confidence)
    return {
        "median": float(np.median(x)),
        "p90": float(np.percentile(x, 90)),
        "p99": float(np.percentile(x, 99)),
        "mean": float(np.mean(x)),
        "std": float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
        "median_ci_low": low,
        "median_ci_high": high,
        "lag1_autocorr": lag1_autocorr(x),
    }


def relative_ci_halfwidth(values: Floats, confidence: float = 0.95) -> float:
    """Half the median's `autocorr_median_ci` width relative to the median (0.03 = ±3%)."""
    x = np.asarray(values, dtype=float)
    low, high = autocorr_median_ci(x, confidence)
    med = float(np.median(x))
    if med <= 0 or not math.isfinite(med):
        return math.inf
    return (high - low) / 2 / med


# --- Regression statistics (see docs/regression.md) -------------------------------------------

DEFAULT_CHUNKS = 16
MIN_CHUNK_LEN = 2
VERDICTS = ("REGRESSION", "IMPROVEMENT", "NO CHANGE", "INCONCLUSIVE")


def chunk_medians(values: Floats, n_chunks: int = DEFAULT_CHUNKS,
                  min_chunk_len: int = MIN_CHUNK_LEN) -> np.ndarray:
    """Medians of contiguous chunks of a run's steps, in time order.

    Uses ``min(n_chunks, len(values) // min_chunk_len)`` chunks of (nearly)
    equal length; chunk medians are much less autocorrelated than steps, which
    is what makes the batch-means standard error honest.
    """
    x = np.asarray(values, dtype=float)
    m = min(n_chunks, len(x) // min_chunk_len)
    if m < 2:
        raise ValueError(
            f"chunk_medians needs at least {2 * min_chunk_len} values, got {len(x)}"
        )
    return np.array([float(np.median(c)) for c in np.array_split(x, m)])


@dataclass(frozen=True)
class RunSummary:
    """One run of one cell on the log scale: ln(median), its batch-means SE and chunk count."""

    median: float
    log_se: float
    n_chunks: int

    @property
    def log_median(self) -> float:
        return math.log(self.median)


def summarize_run(values: Floats, n_chunks: int = DEFAULT_CHUNKS) -> RunSummary:
    """Median of a run's measured steps and the batch-means SE of its logarithm.

    se_w = sd(ln c_j) / sqrt(m) over m chunk medians c_j. Values must be > 0.
    """
    x = np.asarray(values, dtype=float)
    if len(x) and (not np.all(np.isfinite(x)) or np.any(x <= 0)):
        raise ValueError("summarize_run needs finite values > 0")
    chunks = chunk_medians(values, n_chunks)
    log_c = np.log(chunks)
    se = float(np.std(log_c, ddof=1) / math.sqrt(len(chunks)))
    return RunSummary(median=float(np.median(x)), log_se=se, n_chunks=len(chunks))


@dataclass(frozen=True)
class RunSpread:
    """Between-run spread on the log scale (0.02 ≈ 2% run-to-run factor).

    ``dof`` is ``inf`` when the spread is an assumed default rather than an
    estimate; ``runs`` is how many runs it was estimated from (0 if assumed).
    """

    sigma: float
    dof: float
    runs: int

    @property
    def estimated(self) -> bool:
        return self.runs >= 2


def assumed_spread(sigma: float) -> RunSpread:
    """A configured between-run spread (used with a single baseline run)."""
    if not sigma >= 0 or not math.isfinite(sigma):
        raise ValueError(f"assumed spread must be finite and >= 0, got {sigma}")
    return RunSpread(sigma=sigma, dof=math.inf, runs=0)


def between_run_spread(runs: Sequence[RunSummary]) -> RunSpread:
    """Run-to-run spread from K >= 2 repeated runs of one cell.

    sigma_run² = max(0, Var_k[ln median_k] − mean_k se_w(k)²): the variance of
    run medians beyond what each run's own within-run noise explains.
    """
    if len(runs) < 2:
        raise ValueError("between_run_spread needs at least two runs")
    log_meds = np.array([r.log_median for r in runs])
    within = float(np.mean([r.log_se ** 2 for r in runs]))
    var = float(np.var(log_meds, ddof=1))
    return RunSpread(sigma=math.sqrt(max(0.0, var - within)), dof=float(len(runs) - 1),
                     runs=len(runs))


def welch_satterthwaite(variances: Sequence[float], dofs: Sequence[float]) -> float:
    """Effective degrees of freedom of a sum of variance estimates (inf if all exact)."""
    total = float(sum(variances))
    if total <= 0:
        return math.inf
    denom = sum(v * v / d for v, d in zip(variances, dofs, strict=True)
                if v > 0 and math.isfinite(d))
    if denom == 0:
        return math.inf
    return total * total / denom


@dataclass(frozen=True)
class RatioCI:
    """A ratio (candidate / baseline) with its CI, from a t interval on the log scale."""

    ratio: float
    low: float
    high: float
    log_se: float
    dof: float
    confidence: float = 0.95

    @property
    def log_ratio(self) -> float:
        return math.log(self.ratio)

    @property
    def relative_width(self) -> float:
        """(high − low) / ratio: 0.04 means the CI spans about 4% of the ratio."""
        return (self.high - self.low) / self.ratio


def _t_quantile(confidence: float, dof: float) -> float:
    q = 0.5 + confidence / 2
    return float(sps.norm.ppf(q)) if math.isinf(dof) else float(sps.t.ppf(q, dof))


def log_ratio_ci(log_ratio: float, log_se: float, dof: float,
                 confidence: float = 0.95) -> RatioCI:
    """exp(ln r ± t_{(1+c)/2, ν} · se): the ratio CI from a log-scale estimate."""
    half = _t_quantile(confidence, dof) * log_se if log_se > 0 else 0.0
    return RatioCI(ratio=math.exp(log_ratio), low=math.exp(log_ratio - half),
                   high=math.exp(log_ratio + half), log_se=log_se, dof=dof,
                   confidence=confidence)


def ratio_ci(candidate: RunSummary, baselines: Sequence[RunSummary], spread: RunSpread,
             confidence: float = 0.95) -> RatioCI:
    """CI of median(candidate) / median(baseline) with K baseline runs.

    ln r = ln median(N) − mean_k ln median(B_k);
    se² = se_w(N)² + mean_k se_w(B_k)²/K + sigma_run²·(1 + 1/K), with
    Welch–Satterthwaite degrees of freedom (the spread term has K−1, or
    infinitely many when it is an assumed default).
    """
    k = len(baselines)
    if k == 0:
        raise ValueError("ratio_ci needs at least one baseline run")
    log_r = candidate.log_median - float(np.mean([b.log_median for b in baselines]))
    variances = [
        candidate.log_se ** 2,
        float(np.mean([b.log_se ** 2 for b in baselines])) / k,
        spread.sigma ** 2 * (1 + 1 / k),
    ]
    dofs = [candidate.n_chunks - 1, float(sum(b.n_chunks - 1 for b in baselines)), spread.dof]
    se = math.sqrt(sum(variances))
    return log_ratio_ci(log_r, se, welch_satterthwaite(variances, dofs), confidence)


def verdict(ci: RatioCI, threshold: float, higher_is_better: bool = False) -> str:
    """Three-way verdict (plus INCONCLUSIVE) of a ratio CI against a practical threshold δ.

    Worse beyond 1+δ with the whole CI → REGRESSION; better beyond 1/(1+δ) →
    IMPROVEMENT; whole CI inside [1/(1+δ), 1+δ] → NO CHANGE; otherwise the data
    cannot tell → INCONCLUSIVE. For throughput (higher is better) the
    directions swap.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    up, down = 1 + threshold, 1 / (1 + threshold)
    if ci.low > up:
        return "IMPROVEMENT" if higher_is_better else "REGRESSION"
    if ci.high < down:
        return "REGRESSION" if higher_is_better else "IMPROVEMENT"
    if ci.low >= down and ci.high <= up:
        return "NO CHANGE"
    return "INCONCLUSIVE"


def min_effect_p_value(log_ratio: float, log_se: float, dof: float, threshold: float) -> float:
    """Two-sided p-value against "the change is at most δ" (minimum-effect test).

    p = 2·min(P[T ≥ (ln r − ln(1+δ))/se], P[T ≤ (ln r + ln(1+δ))/se]), capped at 1;
    p < 1 − confidence exactly when the CI lies wholly outside the δ band.
    """
    band = math.log1p(threshold)
    if log_se <= 0:
        return 0.0 if abs(log_ratio) > band else 1.0
    dist = sps.norm if math.isinf(dof) else sps.t(dof)
    p_up = float(dist.sf((log_ratio - band) / log_se))
    p_down = float(dist.cdf((log_ratio + band) / log_se))
    return min(1.0, 2 * min(p_up, p_down))


def bh_adjust(p_values: Floats) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q-values) across cells."""
    if len(p_values) == 0:
        return []
    return [float(q) for q in sps.false_discovery_control(np.asarray(p_values, dtype=float),
                                                          method="bh")]


def paired_block_ratio_ci(a_blocks: Sequence[Floats],
                          b_blocks: Sequence[Floats],
                          confidence: float = 0.95) -> RatioCI:
    """CI of B/A from interleaved blocks: one-sample t on ln(median B_k / median A_k).

    Block k of A and block k of B ran next to each other, so the machine factor
    of that moment cancels in their ratio; the spread of the K paired log
    ratios is all the uncertainty there is. Needs K >= 2 pairs.
    """
    if len(a_blocks) != len(b_blocks):
        raise ValueError("paired_block_ratio_ci needs the same number of blocks on both sides")
    if len(a_blocks) < 2:
        raise ValueError("paired_block_ratio_ci needs at least two blocks per side")
    d = np.array([math.log(float(np.median(b)) / float(np.median(a)))
                  for a, b in zip(a_blocks, b_blocks, strict=True)])
    k = len(d)
    se = float(np.std(d, ddof=1) / math.sqrt(k))
    return log_ratio_ci(float(np.mean(d)), se, float(k - 1), confidence)


def fdr_verdicts(cis: Sequence[RatioCI], threshold: float, higher_is_better: bool = False,
                 confidence: float = 0.95) -> list[tuple[str, float, float]]:
    """Verdicts for many cells with false discoveries controlled across them.

    Returns ``(verdict, p, q)`` per CI: p is the minimum-effect p-value, q its
    Benjamini–Hochberg adjustment. A cell whose CI clears the δ band but whose
    q is not below 1 − confidence becomes INCONCLUSIVE, so that with many
    cells a few lucky ones are not reported as discoveries.
    """
    ps = [min_effect_p_value(ci.log_ratio, ci.log_se, ci.dof, threshold) for ci in cis]
    qs = bh_adjust(ps)
    out = []
    for ci, p, q in zip(cis, ps, qs, strict=True):
        v = verdict(ci, threshold, higher_is_better)
        if v in ("REGRESSION", "IMPROVEMENT") and q >= 1 - confidence:
            v = "INCONCLUSIVE"
        out.append((v, p, q))
    return out


# --- The one ratio CI between two sets of step times (plots, compare, benchmarks) ----------
# It lives in harness/ratio_ci.py (built on the functions above) and is part of this
# module's interface (stats.step_ratio_ci, stats.StepRatioCI, stats.TooFewSteps, ...),
# resolved on first use so that either module can be imported first.
_RATIO_CI_NAMES = ("MIN_PAIRED_BLOCKS", "RATIO_CHUNKS", "RATIO_CHUNK_LEN", "StepRatioCI",
                   "TooFewSteps", "step_ratio_ci")


def __getattr__(name: str) -> Any:
    if name in _RATIO_CI_NAMES:
        from harness import ratio_ci

        return getattr(ratio_ci, name)
    raise AttributeError(f"module 'harness.stats' has no attribute {name!r}")
