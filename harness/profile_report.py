"""The report's "Where the time goes" section, computed from ``ops.csv`` and configs.csv.

Findings are sentences with their numbers (the share of a train step in the
backward pass, the op type that dominates a model, achieved FLOP/s against the
peak probe, the profiler's FLOPs against the analytic count); the table gives
the per-cell split. Files only: no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.plots import RunSet
from harness.profile_charts import load_ops, peaks, readable_op_type, traced
from harness.records import OP_CATEGORIES

_MODEL_NAMES = {"mobilenet_v2": "MobileNetV2", "inception_v3": "InceptionV3",
                "mobilenet_v1": "MobileNetV1"}


@dataclass
class ProfileSection:
    findings: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _model(name: Any) -> str:
    return _MODEL_NAMES.get(str(name), str(name))


def _what(row: pd.Series) -> str:
    if row["mode"] != "train":
        return f"{_model(row['model'])} inference"
    if row["base"] == "frozen":
        return f"training {_model(row['model'])} with a frozen base"
    return f"fine-tuning {_model(row['model'])}"


def _cap(text: str) -> str:
    """Capitalise a sentence unless it starts with a model id (``tiny_cnn ...``)."""
    return text if "_" in text.split(" ", 1)[0] else text[:1].upper() + text[1:]


def _percent(part: float, total: float) -> str:
    share = 100 * part / total if total else 0.0
    return "<1%" if 0 < share < 0.5 or (part > 0 and share < 0.5) else f"{share:.0f}%"


def _number(value: Any) -> float | None:
    v = pd.to_numeric(value, errors="coerce")
    return None if pd.isna(v) else float(v)


def _analytic(row: pd.Series) -> float | None:
    try:
        detail = json.loads(str(row.get("engine_detail") or "{}"))
    except json.JSONDecodeError:
        return None
    value = detail.get("analytic_flops_per_step")
    return float(value) if isinstance(value, (int, float)) else None


def build_section(rs: RunSet) -> ProfileSection | None:
    """The section's content, or None when no run was traced."""
    if not traced(rs):
        return None
    section = ProfileSection()
    cfg = rs.configs.set_index("key")
    ops = load_ops(rs)
    skipped = cfg[cfg["trace"].astype(str).str.startswith("skipped")]
    for _, row in skipped.iterrows():
        section.notes.append(f"{row['cell']}: trace {row['trace']}")
    if ops.empty:
        section.findings.append("No cell has op statistics (see the trace notes below).")
        return section
    per = ops.groupby(["key", "category"])["self_s_per_step"].sum().unstack(fill_value=0.0)
    probe = peaks(rs)
    trace_steps = rs.steps[rs.steps["phase"] == "trace"]
    traced_medians = trace_steps.groupby("key")["duration_s"].median().to_dict()
    several = per.index.map(lambda k: str(cfg.loc[k, "batch_size"])).nunique() > 1
    section.header = ["cell", "op time/step (ms)", *[f"{c} %" for c in OP_CATEGORIES
                                                     if c in per.columns],
                      "op time / traced step", "GFLOP/step (profiler)", "vs analytic",
                      "achieved GFLOP/s", "% of peak"]
    order = cfg.loc[list(per.index)].assign(
        m=lambda f: f["mode"].map({"infer": 0, "train": 1}),
        b=lambda f: f["base"].map({"": 0, "frozen": 1, "unfrozen": 2}))
    for key in order.sort_values(["model", "m", "b", "batch_size"]).index:
        row = cfg.loc[key]
        split = per.loc[key]
        total = float(split.sum())
        median = traced_medians.get(key)
        flops = _number(row.get("flops_per_step"))
        achieved = _number(row.get("achieved_flops_per_s"))
        analytic = _analytic(row)
        peak = probe.get(str(row["device"]), {}).get("peak_flops_per_s")
        what = _what(row) + (f" at batch {row['batch_size']}" if several else "")
        if row["mode"] == "train" and total > 0:
            share = {c: _percent(float(split.get(c, 0.0)), total) for c in OP_CATEGORIES}
            section.findings.append(
                f"{_cap(what)} spends {share['backward']} of its step in the backward "
                f"pass, {share['optimizer']} in the optimizer and {share['forward']} "
                "forward (op self time over the traced steps).")
        kinds = ops[ops["key"] == key].assign(kind=lambda f: f["op_type"].map(readable_op_type))
        top = kinds.groupby("kind")["self_s_per_step"].sum().sort_values(ascending=False)
        if len(top) and total > 0 and row["mode"] != "train":
            section.findings.append(
                f"{_cap(what)}: {top.index[0]} takes {100 * top.iloc[0] / total:.0f}% of op "
                f"time, then {', '.join(top.index[1:3])}.")
        if achieved and peak and achieved > peak:
            section.findings.append(
                f"{_cap(what)} reaches {achieved / 1e9:.2f} GFLOP/s, above the peak probe's "
                f"{peak / 1e9:.1f} GFLOP/s: the probe ran at a busier moment than the cell "
                "(a loaded machine); the probe is a lower bound here (`tfbench env --peak`).")
        elif achieved and peak:
            section.findings.append(
                f"{_cap(what)} reaches {achieved / 1e9:.2f} GFLOP/s, "
                f"{100 * achieved / peak:.0f}% of this device's {peak / 1e9:.1f} GFLOP/s "
                "fp32 matmul peak.")
        section.rows.append([
            str(row["cell"]), f"{total * 1e3:,.0f}" if total >= 0.1 else f"{total * 1e3:.3g}",
            *[f"{100 * split[c] / total:.0f}" if total else "—" for c in OP_CATEGORIES
              if c in per.columns],
            f"{total / median:.2f}" if median else "—",
            f"{flops / 1e9:.3g}" if flops else "—",
            f"{flops / analytic:.2f}×" if flops and analytic else "—",
            f"{achieved / 1e9:.3g}" if achieved else "—",
            f"{100 * achieved / peak:.0f}" if achieved and peak else "—",
        ])
    section.findings += _train_faster_than_infer(cfg, per)
    return section


def _train_faster_than_infer(cfg: pd.DataFrame, per: pd.DataFrame) -> list[str]:
    """Where a train cell's median step beats the same model's inference, compare their
    forward op time: the profiler's view of the implausible-looking result."""
    out = []
    keys = list(per.index)
    for k_train in keys:
        t = cfg.loc[k_train]
        if t["mode"] != "train":
            continue
        for k_inf in keys:
            i = cfg.loc[k_inf]
            if i["mode"] != "infer" or i["model"] != t["model"] or i["batch_size"] != \
                    t["batch_size"] or i["run"] != t["run"] or i["device"] != t["device"]:
                continue
            mt, mi = _number(t["step_s_median"]), _number(i["step_s_median"])
            if mt is None or mi is None or mt >= mi:
                continue
            fwd_t = float(per.loc[k_train].get("forward", 0.0)) * 1e3
            fwd_i = float(per.loc[k_inf].get("forward", 0.0)) * 1e3
            flops_t, flops_i = _number(t.get("flops_per_step")), _number(i.get("flops_per_step"))
            work = (f"; the train step does at least the same work ({flops_t / 1e9:.1f} vs "
                    f"{flops_i / 1e9:.1f} GFLOP per step)" if flops_t and flops_i else "")
            out.append(
                f"{_cap(_what(t))} measured faster per step than "
                f"{_what(i)} ({mt * 1e3:,.0f} vs {mi * 1e3:,.0f} ms median){work}; in the "
                f"traces their forward ops take {fwd_t:,.0f} vs {fwd_i:,.0f} ms per step. "
                "Same work running at different speeds points at the machine (load, order), "
                "not the graph (docs/profiling.md).")
    return out


def add_section(doc: Any, rs: RunSet) -> None:
    """Append "Where the time goes" to a report document (the report's hook)."""
    section = build_section(rs)
    if section is None:
        return
    doc.heading(2, "Where the time goes")
    doc.para("From the profiler traces (`--trace`): op self times per step over the traced "
             "steps, which run after the measured ones and are never in the step statistics. "
             "FLOPs are TensorFlow's graph counts for the ops that ran; the analytic count "
             "covers conv/dense layers only. The peak is this run's probe (environment.json).")
    doc.bullets(section.findings)
    if section.rows:
        doc.table(section.header, section.rows)
    if section.notes:
        doc.para("Cells without op statistics:")
        doc.bullets(section.notes)
