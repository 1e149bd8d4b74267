"""Pure statistics over sequences of floats: no I/O, no TensorFlow.

Per-step timings are autocorrelated, so confidence intervals here never treat
steps as independent normal draws: the median's CI comes from order statistics
(distribution-free) and standard errors from chunk (batch) medians.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

# Step durations or block medians: a list, tuple or 1-D NumPy array of floats.
Floats = Sequence[float] | np.ndarray


def median_ci(values: Floats, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics.

    The number of values below the median is Binomial(n, 1/2); the interval is
    ``[x_(j), x_(k)]`` with j, k chosen from its quantiles so that coverage is at
    least ``confidence``. With too few values for that coverage the CI is the
    full range.
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


def summarize(values: Floats, confidence: float = 0.95) -> dict[str, float]:
    """Median, p90, p99, mean, std and the median's CI of step durations (seconds)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        raise ValueError("summarize needs at least one value")
    low, high = median_ci(values, confidence)
    return {
        "median": float(np.median(x)),
        "p90": float(np.percentile(x, 90)),
        "p99": float(np.percentile(x, 99)),
        "mean": float(np.mean(x)),
        "std": float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
        "median_ci_low": low,
        "median_ci_high": high,
    }


def relative_ci_halfwidth(values: Floats, confidence: float = 0.95) -> float:
    """Half the median CI's width relative to the median (0.03 = ±3%)."""
    low, high = median_ci(values, confidence)
    med = float(np.median(np.asarray(values, dtype=float)))
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
