"""Pure statistics over sequences of floats: no I/O, no TensorFlow.

Per-step timings are autocorrelated, so confidence intervals here never treat
steps as independent normal draws: the median's CI comes from order statistics
(distribution-free) and standard errors from chunk (batch) medians.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps


def median_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
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


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Median, p90, p99, mean, std and the median's CI of step durations (seconds)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        raise ValueError("summarize needs at least one value")
    low, high = median_ci(x, confidence)
    return {
        "median": float(np.median(x)),
        "p90": float(np.percentile(x, 90)),
        "p99": float(np.percentile(x, 99)),
        "mean": float(np.mean(x)),
        "std": float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
        "median_ci_low": low,
        "median_ci_high": high,
    }


def relative_ci_halfwidth(values: Sequence[float], confidence: float = 0.95) -> float:
    """Half the median CI's width relative to the median (0.03 = ±3%)."""
    low, high = median_ci(values, confidence)
    med = float(np.median(np.asarray(values, dtype=float)))
    if med <= 0 or not math.isfinite(med):
        return math.inf
    return (high - low) / 2 / med
