"""Verdicts of a `tfbench ab` run, from its results directory alone (no TensorFlow).

A `tfbench ab` run holds both sides' rows (``side`` = baseline / candidate) in
configs.csv and steps.csv, and one row per block in blocks.csv. For each cell
and gate metric (harness/gates.py) the candidate/baseline ratio comes from the
paired block log-ratios: block k of the baseline and block k of the
candidate ran next to each other (order A B B A A B …), so the machine's
state of that moment cancels in their ratio, and a t interval over the K pairs
gives the CI (`paired_ci`, the one ratio-CI function of harness/stats.py).
Verdicts follow `tfbench compare`: the three-way rule against each metric's δ,
Benjamini–Hochberg across cells, exit 1 on a REGRESSION. A candidate that did
not finish (failed, oom, timeout) is INCONCLUSIVE and exits 1 as well.

One guard against a disturbed block: when a REGRESSION or IMPROVEMENT rests
on a single block pair whose two blocks saw very different load from other
processes (by at least `harness.load.BUSY_FRACTION` of the cores), and
dropping that pair changes the verdict, the verdict becomes INCONCLUSIVE
with the reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import stats
from harness.errors import UserError
from harness.gates import GATE_METRICS, GateMetric
from harness.load import BUSY_FRACTION
from harness.records import BLOCKS_FILE, Results, load_results, read_table

SIDES = ("baseline", "candidate")
BROKEN = ("failed", "oom", "timeout")


def paired_ci(a_blocks: Sequence[Sequence[float]], b_blocks: Sequence[Sequence[float]],
              confidence: float = 0.95) -> stats.RatioCI:
    """CI of B/A from paired blocks (the lead re-wires this to stats' one ratio-CI function)."""
    return stats.paired_block_ratio_ci(a_blocks, b_blocks, confidence)


@dataclass
class MetricVerdict:
    """One gate metric of one cell."""

    metric: str
    unit: str
    threshold: float
    verdict: str = ""
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    pairs: int = 0
    baseline_median: float | None = None
    candidate_median: float | None = None
    block_ratios: list[float] = field(default_factory=list)
    note: str = ""


@dataclass
class CellVerdict:
    """All metrics of one cell, both sides' status and load."""

    config_id: str
    label: str
    baseline_status: str
    candidate_status: str
    reason: str
    metrics: list[MetricVerdict] = field(default_factory=list)
    other_cores: dict[str, float | None] = field(default_factory=dict)

    @property
    def candidate_broken(self) -> bool:
        return self.candidate_status in BROKEN


@dataclass
class ABResult:
    """The verdicts of one ab run."""

    run_id: str
    root: str
    interleave: int
    thresholds: dict[str, float]
    cells: list[CellVerdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> int:
        return sum(m.verdict == "REGRESSION" for c in self.cells for m in c.metrics)

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions or any(c.candidate_broken for c in self.cells) else 0


def is_ab_run(results: Results) -> bool:
    return results.environment.ab is not None


def _label(row: Mapping[str, Any]) -> str:
    from harness.comparison import cell_key, cell_label

    return cell_label(cell_key(row))


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _step_blocks(steps: pd.DataFrame, config_id: str, side: str, metric: GateMetric
                 ) -> dict[int, list[float]]:
    rows = steps[(steps["config_id"].astype(str) == config_id) & (steps["side"] == side)
                 & (steps["phase"] == "measure")]
    out: dict[int, list[float]] = {}
    for block, g in rows.groupby("block", sort=True):
        g = g.sort_values("step", kind="stable")
        dur = g["duration_s"].to_numpy(dtype=float)
        vals = g["images"].to_numpy(dtype=float) / dur if metric.name == "images_per_s" else dur
        out[int(block)] = [float(v) for v in vals]
    return out


def _pairs(blocks: pd.DataFrame, config_id: str, steps: pd.DataFrame, metric: GateMetric
           ) -> tuple[list[tuple[int, list[float], list[float]]], str]:
    """Ok block pairs (pair index, baseline values, candidate values) and why any are missing."""
    mine = blocks[blocks["config_id"].astype(str) == config_id]
    by_side = {s: {int(r["pair"]): r for r in mine[mine["side"] == s].to_dict("records")}
               for s in SIDES}
    step_vals = {s: _step_blocks(steps, config_id, s, metric) for s in SIDES} \
        if metric.per_step else {}
    pairs: list[tuple[int, list[float], list[float]]] = []
    missing = ""
    for k in sorted(set(by_side["baseline"]) & set(by_side["candidate"])):
        a, b = by_side["baseline"][k], by_side["candidate"][k]
        if a["status"] != "ok" or b["status"] != "ok":
            continue
        if metric.per_step:
            va = step_vals["baseline"].get(int(a["block"]), [])
            vb = step_vals["candidate"].get(int(b["block"]), [])
        else:
            x, y = _finite(a.get(metric.name)), _finite(b.get(metric.name))
            va, vb = ([x] if x and x > 0 else []), ([y] if y and y > 0 else [])
        if not va or not vb:
            missing = (f"no {metric.name} recorded"
                       + (" (no power sensor sampled)" if metric.name == "energy_j_per_image"
                          else ""))
            continue
        pairs.append((k, va, vb))
    return pairs, missing


def _pair_load_gap(blocks: pd.DataFrame, config_id: str) -> dict[int, tuple[float, float]]:
    mine = blocks[blocks["config_id"].astype(str) == config_id]
    out: dict[int, tuple[float, float]] = {}
    for k, g in mine.groupby("pair"):
        loads = {r["side"]: _finite(r.get("other_cpu_cores")) for r in g.to_dict("records")}
        a, b = loads.get("baseline"), loads.get("candidate")
        if a is not None and b is not None:
            out[int(k)] = (a, b)
    return out


def analyse(run_dir: Path | str, thresholds: Mapping[str, float] | None = None,
            confidence: float = 0.95) -> ABResult:
    """Per-cell, per-metric verdicts of an ab run directory."""
    results = load_results(run_dir)
    if not is_ab_run(results):
        raise UserError(f"results directory: {str(run_dir)!r} is not a tfbench ab run "
                        "(environment.json has no 'ab' entry)")
    ab = results.environment.ab
    assert ab is not None  # is_ab_run
    thresholds = dict(thresholds or ab.thresholds or
                      {m.name: m.default_threshold for m in GATE_METRICS.values()})
    blocks = read_table(results.root, BLOCKS_FILE)
    cpu_count = results.environment.cpu_count or 1
    out = ABResult(run_id=results.run_id, root=str(results.root),
                   interleave=ab.interleave, thresholds=thresholds)
    configs = results.configs
    per_metric: dict[str, list[tuple[MetricVerdict, stats.RatioCI, CellVerdict]]] = {}
    for config_id in dict.fromkeys(configs["config_id"].astype(str)):
        rows = {r["side"]: r for r in configs[configs["config_id"].astype(str) == config_id]
                .to_dict("records")}
        first = next(iter(rows.values()))
        status = {s: str(rows[s]["status"]) if s in rows else "missing" for s in SIDES}
        reasons = [f"{s}: {rows[s]['reason']}" for s in SIDES
                   if s in rows and isinstance(rows[s].get("reason"), str) and rows[s]["reason"]]
        cell = CellVerdict(config_id, _label(first), status["baseline"], status["candidate"],
                           "; ".join(reasons),
                           other_cores={s: _finite(rows[s].get("other_cpu_cores"))
                                        if s in rows else None for s in SIDES})
        out.cells.append(cell)
        loads = _pair_load_gap(blocks, config_id)
        for name, metric in GATE_METRICS.items():
            mv = MetricVerdict(name, metric.unit, thresholds[name])
            cell.metrics.append(mv)
            if status["baseline"] == "skipped" and status["candidate"] == "skipped":
                mv.note = "skipped on both sides"
                continue
            pairs, missing = _pairs(blocks, config_id, results.steps, metric)
            if len(pairs) < 2:
                mv.verdict = "INCONCLUSIVE" if status["candidate"] in BROKEN or \
                    status["baseline"] in BROKEN or metric.per_step else ""
                mv.note = missing or (f"{len(pairs)} ok block pair(s); need 2 "
                                      f"(baseline {status['baseline']}, candidate "
                                      f"{status['candidate']})")
                continue
            a = [p[1] for p in pairs]
            b = [p[2] for p in pairs]
            ci = paired_ci(a, b, confidence)
            mv.pairs = len(pairs)
            mv.ratio, mv.ci_low, mv.ci_high = ci.ratio, ci.low, ci.high
            mv.baseline_median = float(np.median([v for x in a for v in x]))
            mv.candidate_median = float(np.median([v for x in b for v in x]))
            mv.block_ratios = [float(np.median(y) / np.median(x)) for x, y in zip(a, b,
                                                                                  strict=True)]
            per_metric.setdefault(name, []).append((mv, ci, cell))
            mv.note = _guard_note(pairs, loads, metric, thresholds[name], float(cpu_count),
                                  confidence)
    for name, items in per_metric.items():
        metric = GATE_METRICS[name]
        verdicts = stats.fdr_verdicts([ci for _, ci, _ in items], thresholds[name],
                                      metric.higher_is_better, confidence)
        for (mv, _ci, _cell), (verdict, p, q) in zip(items, verdicts, strict=True):
            mv.verdict, mv.p_value, mv.q_value = verdict, p, q
            if mv.note and verdict in ("REGRESSION", "IMPROVEMENT"):
                mv.verdict = "INCONCLUSIVE"
                mv.note = f"{verdict} withheld: {mv.note}"
            elif mv.note:
                mv.note = ""
    for cell in out.cells:
        if cell.candidate_broken:
            for mv in cell.metrics:
                mv.verdict = "INCONCLUSIVE"
                mv.note = mv.note or f"candidate {cell.candidate_status}"
    out.notes.append(f"ratio = candidate / baseline from {out.interleave} interleaved block "
                     "pairs (order A B B A …); the machine's state cancels within each pair")
    return out


def _guard_note(pairs: Sequence[tuple[int, list[float], list[float]]],
                loads: Mapping[int, tuple[float, float]], metric: GateMetric, threshold: float,
                cpu_count: float, confidence: float) -> str:
    """The reason a firm verdict rests on one disturbed pair, or '' (see the module doc)."""
    gaps = {k: abs(loads[k][1] - loads[k][0]) for k, _, _ in pairs if k in loads}
    if not gaps or len(pairs) < 3:
        return ""
    worst = max(gaps, key=lambda k: gaps[k])
    if gaps[worst] < BUSY_FRACTION * cpu_count:
        return ""
    full = paired_ci([p[1] for p in pairs], [p[2] for p in pairs], confidence)
    rest = [p for p in pairs if p[0] != worst]
    without = paired_ci([p[1] for p in rest], [p[2] for p in rest], confidence)
    firm = stats.verdict(full, threshold, metric.higher_is_better)
    if firm not in ("REGRESSION", "IMPROVEMENT") or \
            stats.verdict(without, threshold, metric.higher_is_better) == firm:
        return ""
    base, cand = loads[worst]
    busier = "candidate" if cand > base else "baseline"
    return (f"machine busy: other processes used {max(base, cand):.2g} of {cpu_count:.0f} "
            f"cores during the {busier} block of pair {worst + 1} "
            f"({min(base, cand):.2g} during the other), and without that pair the verdict "
            "does not hold")


# --- output ---------------------------------------------------------------------------------


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "" if value is None else format(value, fmt)


def render_table(result: ABResult) -> str:
    """One line per cell and metric with a ratio, then cells not compared."""
    out = [f"ab run: {result.root}", *[f"note: {n}" for n in result.notes], ""]
    for cell in result.cells:
        loads = ", ".join(f"{s} {v:.2g}" for s, v in cell.other_cores.items() if v is not None)
        out.append(f"[{cell.label}] baseline {cell.baseline_status}, candidate "
                   f"{cell.candidate_status}" + (f"; other processes' cores: {loads}"
                                                 if loads else "")
                   + (f"; {cell.reason}" if cell.reason else ""))
        for m in cell.metrics:
            if m.ratio is None:
                if m.note:
                    out.append(f"  {m.metric}: {m.verdict or 'not compared'} ({m.note})")
                continue
            out.append(f"  {m.metric} ratio {m.ratio:.3f}× (95% CI {m.ci_low:.3f}–"
                       f"{m.ci_high:.3f}) {m.verdict} (δ={m.threshold * 100:.3g}%)"
                       f"; {m.pairs} pairs; baseline {_num(m.baseline_median)} → candidate "
                       f"{_num(m.candidate_median)} {m.unit}; BH q={_num(m.q_value, '.3g')}"
                       + (f"; {m.note}" if m.note else ""))
    counts = {v: sum(m.verdict == v for c in result.cells for m in c.metrics)
              for v in stats.VERDICTS}
    out += ["", "summary: " + ", ".join(f"{n} {v}" for v, n in counts.items())
            + f"; candidate broken in {sum(c.candidate_broken for c in result.cells)} cell(s)"]
    return "\n".join(out) + "\n"


def render_json(result: ABResult) -> str:
    data = asdict(result)
    data["regressions"] = result.regressions
    data["exit_code"] = result.exit_code
    return json.dumps(data, indent=2) + "\n"
