"""The report's checks: what was unavailable, the best batch size, missed confidence
targets, input-bound cells, and results that are implausible on their face.

Each function returns sentences with their numbers for `harness.report`. Ratios and
their 95% CIs come from `speedups.speedup_ci` (the one ratio rule); a plausibility
finding is stated only when the CI excludes the plausible side, so run-to-run noise
is not flagged (docs/plausibility.md has the reasoning and a measured case).
No TensorFlow.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness import stats
from harness.chartkit import fmt_number
from harness.ci_target import describe_miss, load_figures, miss_cause
from harness.records import FACTOR_COLUMNS, flag, number, text
from harness.runset import RunSet, cell_label, measured
from harness.speedups import Ratio, interleaved, speedup_ci

INPUT_BOUND_SHARE = 0.2  # input wait at least this share of step + wait: input-bound
BASELINE_FACTOR = 2.0  # a speed-up whose CI lies beyond 2x (or 1/2x) the baseline's is far

# Stored baseline: engine speed-ups over tf fp32 measured by benchmarks/engines_cpu.py
# (docs/engines.md, "Benchmark: MobileNetV2, batch 1, CPU": 2-core Intel Xeon VM,
# TensorFlow 2.21, 4 interleaved blocks). Key: model, device, mode, batch, engine, precision.
BASELINE_SOURCE = "docs/engines.md (MobileNetV2, batch 1, 2-core Xeon CPU)"
BASELINE_SPEEDUPS: Mapping[tuple[str, str, str, int, str, str], float] = {
    ("mobilenet_v2", "cpu", "infer", 1, "litert", "int8"): 9.05,
    ("mobilenet_v2", "cpu", "infer", 1, "litert", "fp32"): 6.90,
    ("mobilenet_v2", "cpu", "infer", 1, "litert", "fp16"): 6.60,
    ("mobilenet_v2", "cpu", "infer", 1, "onnxruntime", "fp32"): 5.61,
    ("mobilenet_v2", "cpu", "infer", 1, "xla", "fp32"): 0.22,
}


def _where(row: Mapping[str, Any], several: bool) -> str:
    return f" on {row['run']}" if several else ""


# --------------------------------------------------------------------------- availability

def unavailable_lines(rs: RunSet) -> list[str]:
    """Every requested sampler, engine and device a run could not have, with its reason.
    Runs recorded before the orchestrator decided availability list their samplers only."""
    out: list[str] = []
    for label, result in zip(rs.labels, rs.results, strict=True):
        env = result.environment
        prefix = f"{label}: " if rs.several else ""
        if env.unavailable is not None:
            out.extend(prefix + u.describe() for u in env.unavailable)
        else:
            out.extend(f"{prefix}sampler {name} unavailable: {status}"
                       for name, status in env.samplers.items() if status != "active")
    return out


# --------------------------------------------------------------------------- batch size

def _groups_except(ok: pd.DataFrame, factors: Sequence[str]) -> list[pd.DataFrame]:
    keep = [c for c in (*FACTOR_COLUMNS, "run") if c not in factors and c in ok.columns]
    return [g for _, g in ok.groupby(keep, sort=False, dropna=False)]


def best_batch_sizes(rs: RunSet, table: pd.DataFrame) -> list[str]:
    """For each configuration measured at several batch sizes: the best batch size by
    throughput and, where energy was measured, by energy per image."""
    ok = table[(table["status"] == "ok") & table["images_per_s"].notna()]
    out = []
    for group in _groups_except(ok, ("batch_size",)):
        if group["batch_size"].nunique() < 2:
            continue
        first = group.iloc[0]
        varying = [f for f in rs.varying if f != "batch_size"]
        name = cell_label({**first.to_dict(), "batch_size": ""}, varying) or str(first["model"])
        best = group.sort_values("images_per_s").iloc[-1]
        rest = group[group.index != best.name]
        ties = rest[rest["images_per_s_ci_high"] >= best["images_per_s_ci_low"]]
        tie = ("" if ties.empty else "; its CI overlaps batch "
               + ", ".join(str(int(b)) for b in sorted(ties["batch_size"])))
        text_ = (f"Best batch size for {name}{_where(first, rs.several)}: "
                 f"{int(best['batch_size'])} by throughput "
                 f"({fmt_number(best['images_per_s'])} images/s, 95% CI "
                 f"{fmt_number(best['images_per_s_ci_low'])}–"
                 f"{fmt_number(best['images_per_s_ci_high'])}{tie})")
        energy = group[group["energy_j_per_image"].notna()]
        if len(energy) >= 2:
            low_e = energy.sort_values("energy_j_per_image").iloc[0]
            rough = " (low confidence: few power samples)" \
                if text(low_e.get("energy_confidence")) == "low" else ""
            text_ += (f", and {int(low_e['batch_size'])} by energy per image "
                      f"({fmt_number(low_e['energy_j_per_image'] * 1000)} mJ/image{rough})")
        else:
            text_ += "; energy per image not measured at several batch sizes"
        out.append(text_ + ".")
    return out


# --------------------------------------------------------------------------- CI target

def ci_target_misses(rs: RunSet, table: pd.DataFrame) -> list[str]:
    """Cells whose median CI missed the run's target_ci_rel, with the likely cause."""
    steps = measured(rs)
    by_key = {k: g for k, g in steps.groupby("key", sort=False)}
    out = []
    for r in table[(table["status"] == "ok")].to_dict("records"):
        if flag(r.get("ci_target_met")) is not False:
            continue
        target = _target_of(rs, r)
        g = by_key.get(r["key"])
        if target is None or g is None or g.empty:
            continue
        durations = g["duration_s"].to_numpy(dtype=float)
        env = rs.results[rs.labels.index(str(r["run"]))].environment
        cause = miss_cause(durations, number(r.get("step_s_lag1_autocorr")),
                           load_figures(r, env.cpu_count))
        out.append(f"{r['cell']}{_where(r, rs.several)}: "
                   + describe_miss(float(r["step_s_median"]), float(r["step_s_median_ci_low"]),
                                   float(r["step_s_median_ci_high"]), target, len(durations),
                                   cause) + ".")
    return out


def _target_of(rs: RunSet, row: Mapping[str, Any]) -> float | None:
    """The target the cell was measured against (configs.csv ``target_ci_rel``)."""
    target = number(row.get("target_ci_rel"))
    return target if target is not None and target > 0 else None


# --------------------------------------------------------------------------- input wait

def input_wait_findings(rs: RunSet, table: pd.DataFrame) -> list[str]:
    """Cells reading real input whose input wait is a large share of step + wait."""
    out = []
    ok = table[(table["status"] == "ok") & (table["data"].map(text) != "synthetic")]
    for r in ok.to_dict("records"):
        wait, step = number(r.get("input_wait_s_median")), number(r.get("step_s_median"))
        if wait is None or not step:
            continue
        share = wait / (wait + step)
        verdict = "input-bound: the pipeline, not the model, limits throughput" \
            if share >= INPUT_BOUND_SHARE else "compute-bound"
        out.append(f"{r['cell']}{_where(r, rs.several)} waits {fmt_number(wait * 1e3)} ms "
                   f"for input per step against {fmt_number(step * 1e3)} ms of compute "
                   f"({share:.0%} of the time): {verdict}.")
    return out


# --------------------------------------------------------------------------- plausibility

def _ratio(by_key: Mapping[str, pd.DataFrame], a: Mapping[str, Any], b: Mapping[str, Any]
           ) -> tuple[float, float, float] | None:
    """median(B) / median(A) with its 95% CI, or None with too few steps."""
    ga, gb = by_key.get(a["key"]), by_key.get(b["key"])
    if ga is None or gb is None or ga.empty or gb.empty:
        return None
    paired = a["run"] == b["run"] and interleaved(a) and interleaved(b)
    try:
        value, low, high, _ = speedup_ci(
            ga["duration_s"].to_numpy(), gb["duration_s"].to_numpy(),
            ga["block"].to_numpy() if paired else None,
            gb["block"].to_numpy() if paired else None)
    except stats.TooFewSteps:
        return None
    return value, low, high


def train_faster_than_inference(rs: RunSet, table: pd.DataFrame) -> list[str]:
    """A training step whose CI says it is faster than the same model's inference step."""
    ok = table[(table["status"] == "ok") & table["step_s_median"].notna()]
    by_key = {k: g for k, g in measured(rs).groupby("key", sort=False)}
    out = []
    # learning_rate is a training factor: inference cells have none
    for group in _groups_except(ok, ("mode", "base", "learning_rate")):
        infer = group[group["mode"] == "infer"]
        train = group[group["mode"] == "train"]
        for a in infer.to_dict("records"):
            for b in train.to_dict("records"):
                r = _ratio(by_key, a, b)
                if r is None or r[2] >= 1.0:
                    continue  # CI reaches 1 or above: plausible, or noise
                value, low, high = r
                expect = "about 1.0×" if b["base"] == "frozen" else "2–3×"
                out.append(
                    f"Implausible: {b['cell']}{_where(b, rs.several)} steps take "
                    f"{value:.2f}× ({low:.2f}–{high:.2f}) the time of its inference steps. A "
                    f"training step runs the same forward pass plus a backward pass and an "
                    f"update, so expect {expect} ({b['base']} base; docs/plausibility.md). "
                    "Suspect load or drift between the two cells; rerun with --interleave.")
    return out


def throughput_falling_with_batch(rs: RunSet, table: pd.DataFrame) -> list[str]:
    """A larger batch with throughput below a smaller batch's, CIs apart."""
    ok = table[(table["status"] == "ok") & table["images_per_s"].notna()]
    out = []
    for group in _groups_except(ok, ("batch_size",)):
        g = group.sort_values("batch_size").to_dict("records")
        for small, big in itertools.pairwise(g):
            if big["images_per_s_ci_high"] < small["images_per_s_ci_low"]:
                out.append(
                    f"Implausible: throughput of {big['cell']}{_where(big, rs.several)} "
                    f"falls to {fmt_number(big['images_per_s'])} images/s from "
                    f"{fmt_number(small['images_per_s'])} at batch {int(small['batch_size'])} "
                    "(CIs apart). A larger batch normally keeps or raises throughput; suspect "
                    "load during the later cell, a thread-pool or engine setting that changes "
                    "with the batch, or memory pressure.")
    return out


def far_from_baseline(rs: RunSet, table: pd.DataFrame, ratios: Sequence[Ratio]) -> list[str]:
    """Engine speed-ups whose CI lies beyond `BASELINE_FACTOR` of the stored baseline's."""
    rows = {str(r["key"]): r for r in table.to_dict("records")}
    out = []
    for ratio in ratios:
        if ratio.kind != "engine over tf fp32":
            continue
        a = rows[ratio.a_key]
        key = (str(a["model"]), str(a["device"]), str(a["mode"]), int(a["batch_size"]),
               str(a["engine"]), str(a["precision"]))
        base = BASELINE_SPEEDUPS.get(key)
        if base is None:
            continue
        if ratio.low > base * BASELINE_FACTOR or ratio.high < base / BASELINE_FACTOR:
            out.append(
                f"Far from the stored baseline: {ratio.a} over {ratio.b} for "
                f"{a['cell']}{_where(a, rs.several)} is {ratio.value:.2f}× "
                f"({ratio.low:.2f}–{ratio.high:.2f}) against {base:.2f}× in {BASELINE_SOURCE}. "
                "A different CPU, thread count or load can explain it; if the machine is "
                "the same, suspect the engine's options or versions.")
    return out


def plausibility(rs: RunSet, table: pd.DataFrame, ratios: Sequence[Ratio]) -> list[str]:
    """Every plausibility finding, or an empty list when nothing looks wrong."""
    return (train_faster_than_inference(rs, table) + throughput_falling_with_batch(rs, table)
            + far_from_baseline(rs, table, ratios))


def input_wait_share(table: pd.DataFrame) -> pd.Series:
    """Input wait as a share of step + wait per cell (NaN where not recorded)."""
    wait = table["input_wait_s_median"].map(number).astype(float)
    step = table["step_s_median"].astype(float)
    return pd.Series(np.where(step > 0, wait / (wait + step), np.nan), index=table.index)
