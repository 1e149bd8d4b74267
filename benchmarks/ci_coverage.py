"""Benchmark: coverage of the per-cell median CI on autocorrelated steps, old vs new.

Seeded AR(1) simulation of ln(step time) (tests/ar1_sim.py): coverage of the
nominal 95% CI of the median at fixed n and under the quick profile's stopping
rule, for the old order-statistic CI (`stats.median_ci`), plain batch means and
the new `stats.autocorr_median_ci`; the new CI's cost per call at n = 60; and
old vs new half-widths on the real cells of tests/data/results/real_tiny.
Prints Markdown (the tables in docs/statistics.md).

    python benchmarks/ci_coverage.py [--reps 50000] [--seed 2026]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import special as spspecial
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ar1_sim import (
    MAX_STEPS,
    REAL_TINY,
    START_STEPS,
    CiRows,
    ar1_steps,
    autocorr_ci_rows,
    binomial_se,
    fixed_n_coverage,
    order_statistic_ci_rows,
    real_noise_levels,
    stopping_rule,
)

from harness import stats
from harness.records import STEPS_FILE, read_table

FIXED_PHIS = (-0.3, 0.0, 0.3, 0.5, 0.7, 0.8, 0.9)
STOP_PHIS = (0.0, 0.3, 0.5, 0.7)
STOP_SIGMAS = (0.02, 0.046, 0.07, 0.1, 0.175)


def batch_means_ci_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """exp(ln median ± t_{m−1}·se_w): `stats.summarize_run`'s batch-means SE as a CI."""
    n = x.shape[1]
    m = min(stats.DEFAULT_CHUNKS, n // stats.MIN_CHUNK_LEN)
    chunks = np.stack([np.median(c, axis=1) for c in np.array_split(x, m, axis=1)], axis=1)
    se = np.std(np.log(chunks), axis=1, ddof=1) / math.sqrt(m)
    centre = np.log(np.median(x, axis=1))
    q = float(sps.t.ppf(0.975, m - 1))
    return np.exp(centre - q * se), np.exp(centre + q * se)


METHODS: dict[str, CiRows] = {
    "order statistics (old)": order_statistic_ci_rows,
    "batch means, 16 chunks": batch_means_ci_rows,
    "autocorr (new)": autocorr_ci_rows,
}


def fixed_table(reps: int, seed: int) -> list[str]:
    head = "| method | n | " + " | ".join(f"φ={p:g}" for p in FIXED_PHIS) + " |"
    lines = [head, "|---|---|" + "---|" * len(FIXED_PHIS)]
    samples = {phi: ar1_steps(np.random.default_rng([seed, 1, i]), reps, MAX_STEPS, phi, 0.1)
               for i, phi in enumerate(FIXED_PHIS)}
    for name, ci in METHODS.items():
        for n in (START_STEPS, MAX_STEPS):
            cells = [f"{100 * fixed_n_coverage(ci, samples[phi][:, :n]):.1f}"
                     for phi in FIXED_PHIS]
            lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return lines


def stopping_table(reps: int, seed: int) -> list[str]:
    head = "| method | σ of ln step | " + " | ".join(f"φ={p:g}" for p in STOP_PHIS) + " |"
    lines = [head, "|---|---|" + "---|" * len(STOP_PHIS)]
    for name, ci in METHODS.items():
        if name.startswith("batch"):
            continue
        for j, sigma in enumerate(STOP_SIGMAS):
            cells = []
            for i, phi in enumerate(STOP_PHIS):
                x = ar1_steps(np.random.default_rng([seed, 2, i, j]), reps, MAX_STEPS, phi, sigma)
                n_stop, covered = stopping_rule(ci, x)
                cells.append(f"{100 * covered.mean():.1f} (n̄ {n_stop.mean():.0f}, "
                             f"{100 * np.mean(n_stop == START_STEPS):.0f}% at 30)")
            lines.append(f"| {name} | {sigma:g} | " + " | ".join(cells) + " |")
    return lines


def pearson_log_ci_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The design alternative: ρ̂ from the plain lag-1 autocorrelation of ln x (not ranks)."""
    n = x.shape[1]
    r1 = stats._lag1_rows(np.log(x))
    rho = np.clip((n * r1 + 1) / (n - 4), stats.RHO_FLOOR, stats.RHO_CEIL)
    rank_based = stats._rho_hat_rows
    stats._rho_hat_rows = lambda ranks: rho
    try:
        return stats.autocorr_median_ci_rows(x)
    finally:
        stats._rho_hat_rows = rank_based


def spike_table(reps: int, seed: int) -> list[str]:
    """AR(1) steps (σ = 0.1) with independent spikes: a share p of steps is 2–10x slower."""
    methods = {"order statistics (old)": order_statistic_ci_rows,
               "autocorr, ρ̂ from ln x (rejected)": pearson_log_ci_rows,
               "autocorr (new, ρ̂ from ranks)": autocorr_ci_rows}
    cases = [(p, phi) for p in (0.03, 0.1) for phi in (0.0, 0.5, 0.7)]
    lines = ["| method | n | " + " | ".join(f"p={p:g} φ={phi:g}" for p, phi in cases) + " |",
             "|---|---|" + "---|" * len(cases)]
    rng = np.random.default_rng([seed, 3])
    data = []
    for p, phi in cases:
        base = np.exp(0.1 * rng.standard_normal(2_000_000))
        truth = float(np.median(base * _spikes(rng, base.shape, p)))  # median of the marginal
        x = ar1_steps(rng, reps, MAX_STEPS, phi, 0.1)
        data.append((truth, x * _spikes(rng, x.shape, p)))
    for name, ci in methods.items():
        for n in (START_STEPS, MAX_STEPS):
            cells = []
            for truth, x in data:
                low, high = ci(x[:, :n])
                cells.append(f"{100 * np.mean((low <= truth) & (high >= truth)):.1f}")
            lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return lines


def bias_table(reps: int, seed: int) -> list[str]:
    """Mean of the bias-corrected, unclipped lag-1 estimates: from ranks (used) and from ln x."""
    lines = ["| n | estimate | " + " | ".join(f"φ={p:g}" for p in STOP_PHIS) + " |",
             "|---|---|" + "---|" * len(STOP_PHIS)]
    for n in (START_STEPS, MAX_STEPS):
        ranks_row: list[str] = []
        log_row: list[str] = []
        for i, phi in enumerate(STOP_PHIS):
            x = ar1_steps(np.random.default_rng([seed, 4, n, i]), reps, n, phi, 0.1)
            _, ranks = stats._sorted_and_ranks(x)
            scores = np.asarray(spspecial.ndtri((ranks - 0.375) / (n + 0.25)))
            for row, z in ((ranks_row, scores), (log_row, np.log(x))):
                row.append(f"{float(np.mean((n * stats._lag1_rows(z) + 1) / (n - 4))):.3f}")
        lines.append(f"| {n} | ranks (used) | " + " | ".join(ranks_row) + " |")
        lines.append(f"| {n} | ln x | " + " | ".join(log_row) + " |")
    return lines


def _spikes(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> np.ndarray:
    return np.where(rng.random(shape) < p, rng.uniform(2, 10, shape), 1.0)


def cost_per_call(n: int = MAX_STEPS, calls: int = 20_000) -> list[str]:
    """Wall and CPU time per call (best of 5 rounds; CPU time is less disturbed by co-tenants)."""
    x = ar1_steps(np.random.default_rng(0), 1, n, 0.5, 0.1)[0].tolist()
    out = []
    for name, fn in (("stats.relative_ci_halfwidth (new)", stats.relative_ci_halfwidth),
                     ("stats.median_ci (old)", stats.median_ci)):
        fn(x)
        wall, cpu = math.inf, math.inf
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(calls // 5):
                fn(x)
            wall = min(wall, (time.perf_counter() - t0) / (calls // 5))
            cpu = min(cpu, (time.process_time() - c0) / (calls // 5))
        out.append(f"| {name} | {n} | {wall * 1e6:.0f} µs | {cpu * 1e6:.0f} µs |")
    return ["| function | n | wall per call | CPU per call |", "|---|---|---|---|", *out]


def real_cells() -> list[str]:
    steps = read_table(REAL_TINY, STEPS_FILE)
    measured = steps[steps["phase"] == "measure"]
    lines = ["| cell | n | r1 of ln step | ρ̂ (ranks, corrected) | old ± | new ± | new / old |",
             "|---|---|---|---|---|---|---|"]
    ratios = []
    for cid, cell in measured.groupby("config_id"):
        x = cell.sort_values("step")["duration_s"].to_numpy(dtype=float)
        n, med = len(x), float(np.median(x))
        r1 = stats.lag1_autocorr(x)
        assert r1 is not None
        rho = stats.autocorr_estimate(x)
        lo, hi = stats.median_ci(x)
        old = (hi - lo) / 2 / med
        new = stats.relative_ci_halfwidth(x)
        ratios.append(new / old)
        lines.append(f"| {cid} | {n} | {r1:.2f} | {rho:.2f} | {100 * old:.1f}% | "
                     f"{100 * new:.1f}% | {new / old:.2f} |")
    lines.append(f"| median over cells | | | | | | {float(np.median(ratios)):.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50_000, help="simulated cells per case")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    se = 100 * binomial_se(0.95, args.reps)
    t0 = time.perf_counter()
    print(f"Coverage (%) of the nominal 95% CI, {args.reps} cells per case "
          f"(binomial SE {se:.2f} points at 95%), seed {args.seed}.\n")
    print("Fixed number of measured steps (coverage does not depend on σ here):\n")
    print("\n".join(fixed_table(args.reps, args.seed)))
    print("\nUnder the quick profile's stopping rule (30 steps, then stop once ±3%, "
          "at most 60): coverage, mean steps, share stopped at 30:\n")
    print("\n".join(stopping_table(args.reps, args.seed)))
    print("\nMean lag-1 estimate, (n·r1 + 1)/(n − 4) before clipping:\n")
    print("\n".join(bias_table(args.reps, args.seed)))
    print("\nWith spikes (not in the tests: the AR(1) model has none):\n")
    print("\n".join(spike_table(args.reps, args.seed)))
    levels = real_noise_levels()
    print(f"\nReal noise levels (1.4826·MAD of ln step time, {len(levels)} cells): "
          + ", ".join(f"{v:.3f}" for v in levels) + "\n")
    print("\n".join(real_cells()))
    print()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:\n")
    print("\n".join(cost_per_call()))
    print(f"\n(simulation took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
