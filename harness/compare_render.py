"""Output of ``tfbench compare``: a plain table, Markdown, CSV or JSON of a `Comparison`."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

from harness import stats
from harness.comparison import CellResult, Comparison
from harness.mdtext import md_cell
from harness.records import FACTOR_COLUMNS


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "" if value is None else format(value, fmt)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _line(comp: Comparison, c: CellResult) -> str:
    pct = _pct(comp.threshold)
    return (f"{comp.metric} [{c.label}] ratio {c.ratio:.3f}× "
            f"({comp.confidence:.0%} CI {c.ci_low:.3f}–{c.ci_high:.3f}) {c.verdict} (δ={pct})")


def render_table(comp: Comparison) -> str:
    """Plain text: one line per compared cell, then the cells that were only listed."""
    out: list[str] = []
    if comp.mode == "runs":
        out.append(f"baseline: {', '.join(comp.baselines)} ({len(comp.baselines)} run(s))")
        out.append(f"candidate: {comp.candidate}")
    else:
        out.append(f"within run: {comp.candidate} (paired, interleaved blocks)")
    out += [f"warning: {w}" for w in comp.warnings]
    out += [f"note: {n}" for n in comp.notes]
    out.append("")
    for c in comp.cells:
        if c.status != "compared":
            continue
        out.append(_line(comp, c))
        extra = (f"    {'A' if comp.mode == 'within' else 'baseline'} "
                 f"{_num(c.baseline_median)} {comp.unit} → "
                 f"{'B' if comp.mode == 'within' else 'candidate'} "
                 f"{_num(c.candidate_median)} {comp.unit}; BH q={_num(c.q_value, '.3g')}; "
                 f"{c.run_spread_source}")
        if c.run_spread is not None:
            extra += f" ({c.run_spread:.1%})"
        if c.note:
            extra += f"; {c.note}"
        out.append(extra)
    listed = [c for c in comp.cells if c.status != "compared"]
    if listed:
        out.append("")
        out.append("listed, not compared:")
        out += [f"  {c.label}: {c.status}" + (f" ({c.note})" if c.note else "") for c in listed]
    out.append("")
    out.append(_summary(comp))
    return "\n".join(out) + "\n"


def _summary(comp: Comparison) -> str:
    counts = {v: sum(c.verdict == v for c in comp.cells) for v in stats.VERDICTS}
    listed = sum(c.status != "compared" for c in comp.cells)
    return ("summary: " + ", ".join(f"{n} {v}" for v, n in counts.items())
            + f", {listed} listed only")


def _code(text: str) -> str:
    """A code span (shown literally: no HTML inside can act); backticks in it become '."""
    return "`" + str(text).replace("`", "'").replace("|", "\\|") + "`"


def render_markdown(comp: Comparison) -> str:
    """A Markdown table with the same content as the plain table; values from the results
    files are escaped (`mdtext.md_cell`), so a run id or reason cannot inject HTML."""
    e = md_cell
    out = [f"**{e(comp.metric)}**: candidate {_code(comp.candidate)} vs baseline "
           f"{', '.join(_code(b) for b in comp.baselines)}; δ={_pct(comp.threshold)}, "
           f"{comp.confidence:.0%} CI", ""]
    out += [f"> warning: {e(w)}" for w in comp.warnings]
    out += [f"- {e(n)}" for n in comp.notes]
    out += ["", "| cell | baseline | candidate | ratio | CI | verdict | BH q | note |",
            "|---|---:|---:|---:|---|---|---:|---|"]
    for c in comp.cells:
        if c.status == "compared":
            out.append(f"| {e(c.label)} | {_num(c.baseline_median)} | "
                       f"{_num(c.candidate_median)} | "
                       f"{c.ratio:.3f}× | {c.ci_low:.3f}–{c.ci_high:.3f} | **{e(c.verdict)}** | "
                       f"{_num(c.q_value, '.3g')} | {e(c.note)} |")
        else:
            out.append(f"| {e(c.label)} | | | | | {e(c.status)} | | {e(c.note)} |")
    out += ["", _summary(comp)]
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("metric", "cell", *FACTOR_COLUMNS, "status", "verdict", "baseline_median",
               "candidate_median", "ratio", "ci_low", "ci_high", "p_value", "q_value",
               "baseline_runs", "run_spread", "run_spread_source", "threshold", "note")


def render_csv(comp: Comparison) -> str:
    """One row per cell; empty fields where a cell was not compared."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = CSV_COLUMNS if comp.mode == "runs" else tuple(
        c for c in CSV_COLUMNS if c not in FACTOR_COLUMNS)
    writer.writerow(columns)
    for c in comp.cells:
        row: dict[str, Any] = {**asdict(c), **(c.factors if comp.mode == "runs" else {}),
                               "metric": comp.metric, "cell": c.label,
                               "threshold": comp.threshold}
        writer.writerow(["" if row.get(k) is None else row.get(k) for k in columns])
    return buf.getvalue()


def render_json(comp: Comparison) -> str:
    data = asdict(comp)
    data["regressions"] = comp.regressions
    return json.dumps(data, indent=2) + "\n"


def render_many(comps: list[Comparison], fmt: str) -> str:
    """Several metrics' comparisons (``--metric all``): each one's section, then the gates'
    summary; CSV rows under one header; JSON ``{"comparisons": [...], "regressions": N}``."""
    if fmt == "json":
        return json.dumps({"comparisons": [asdict(c) for c in comps],
                           "regressions": sum(c.regressions for c in comps)}, indent=2) + "\n"
    if fmt == "csv":
        parts = [render_csv(c).splitlines() for c in comps]
        return "\n".join([parts[0][0], *[row for p in parts for row in p[1:]]]) + "\n"
    sections = [RENDERERS[fmt](c) for c in comps]
    head = "## " if fmt == "markdown" else "== "
    body = "\n".join(f"{head}{c.metric} (δ={_pct(c.threshold)})\n\n{text}"
                     for c, text in zip(comps, sections, strict=True))
    gates = "; ".join(f"{c.metric} {c.regressions} REGRESSION" for c in comps)
    failing = [c.metric for c in comps if c.regressions]
    verdict = (f"FAIL: REGRESSION in {', '.join(failing)}" if failing
               else "pass: no metric has a REGRESSION")
    return f"{body}\ngates: {gates}; {verdict}\n"


RENDERERS = {"table": render_table, "markdown": render_markdown, "csv": render_csv,
             "json": render_json}
