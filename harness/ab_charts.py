"""Charts and the report section of a `tfbench ab` run (matplotlib/seaborn, no TensorFlow).

Two charts, returned as the `harness.plots.Chart` objects the other charts use:

* ``ab_ratios``: per cell and gate metric, the candidate/baseline ratio with
  its 95% CI from the paired blocks, the ±δ band shaded, coloured by verdict;
* ``ab_blocks``: the block-by-block ratios of step time per cell (pair 1…K),
  each point marked with the other processes' load during its two blocks, so
  a single disturbed pair shows at a glance.

`tfbench plot` and `tfbench report` call `build` / `report` for an ab run (hooks
in plots.build_charts and report.build_report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from harness.ab_verdict import ABResult, analyse, is_ab_run
from harness.records import BLOCKS_FILE, read_table

if TYPE_CHECKING:
    from harness.plots import Chart, RunSet

COLOURS = {"REGRESSION": "#c0392b", "IMPROVEMENT": "#1e8449", "NO CHANGE": "#2e86c1",
           "INCONCLUSIVE": "#7f8c8d", "": "#7f8c8d"}


def is_ab(rs: RunSet) -> bool:
    return len(rs.results) == 1 and is_ab_run(rs.results[0])


def ratio_chart(result: ABResult) -> Chart:
    from harness.plots import Chart

    rows = [(c.label, m) for c in result.cells for m in c.metrics if m.ratio is not None]
    if not rows:
        return Chart("ab_ratios", "A/B ratios", reason="no cell has two ok block pairs")
    fig = Figure(figsize=(8.5, 1.2 + 0.42 * len(rows)), dpi=110, layout="constrained")
    ax = fig.subplots()
    for i, (_label, m) in enumerate(rows):
        assert m.ratio is not None and m.ci_low is not None and m.ci_high is not None
        colour = COLOURS.get(m.verdict, "#7f8c8d")
        ax.errorbar([m.ratio], [i], xerr=[[m.ratio - m.ci_low], [m.ci_high - m.ratio]],
                    fmt="o", color=colour, capsize=3)
        ax.fill_betweenx([i - 0.4, i + 0.4], 1 / (1 + m.threshold), 1 + m.threshold,
                         color="#d5dbdb", alpha=0.6, lw=0)
        ax.annotate(f"{m.ratio:.3f}× {m.verdict}", (m.ci_high, i), xytext=(6, -3),
                    textcoords="offset points", fontsize=7.5, color=colour)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{label}\n{m.metric}" for label, m in rows], fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlabel("candidate / baseline (95% CI, paired blocks; grey band: ±δ)")
    title = f"A/B ratios per cell and metric ({result.interleave} block pairs)"
    fig.suptitle(title, fontsize=10.5)
    return Chart("ab_ratios", title, fig, notes=[f"{len(rows)} metric rows"])


def block_chart(result: ABResult, blocks: Any) -> Chart:
    from harness.plots import Chart

    cells = [c for c in result.cells
             if any(m.metric == "step_s" and m.block_ratios for m in c.metrics)]
    if not cells:
        return Chart("ab_blocks", "A/B block ratios", reason="no cell has ok block pairs")
    fig = Figure(figsize=(8.5, 2.4 * len(cells)), dpi=110, layout="constrained")
    axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
    for ax, cell in zip(axes, cells, strict=True):
        m = next(m for m in cell.metrics if m.metric == "step_s")
        mine = blocks[blocks["config_id"].astype(str) == cell.config_id]
        ok = sorted({int(p) for p, g in mine.groupby("pair") if (g["status"] == "ok").all()
                     and len(g) == 2})
        loads = [_pair_load(mine, p) for p in ok]
        ax.axhspan(1 / (1 + m.threshold), 1 + m.threshold, color="#d5dbdb", alpha=0.6, lw=0)
        ax.axhline(1.0, color="black", lw=0.8)
        if m.ratio is not None:
            ax.axhline(m.ratio, color=COLOURS.get(m.verdict, "grey"), lw=1, ls="--",
                       label=f"overall {m.ratio:.3f}× ({m.verdict})")
        xs = [p + 1 for p in ok][:len(m.block_ratios)]
        sc = ax.scatter(xs, m.block_ratios[:len(xs)], c=loads[:len(xs)], cmap="viridis",
                        vmin=0, vmax=max([*loads, 0.5]), zorder=3, edgecolor="black")
        fig.colorbar(sc, ax=ax, label="other procs' cores\n(max of the pair)")
        ax.set_xticks(xs)
        ax.set_xlabel("block pair")
        ax.set_ylabel("step time ratio")
        ax.set_title(cell.label, fontsize=9)
        ax.legend(fontsize=7.5, loc="upper left", frameon=False)
    title = "A/B step-time ratio per block pair (colour: other processes' load)"
    fig.suptitle(title, fontsize=10.5)
    return Chart("ab_blocks", title, fig, notes=[f"{len(cells)} cells"])


def _pair_load(rows: Any, pair: int) -> float:
    values = rows[rows["pair"] == pair]["other_cpu_cores"].dropna()
    return float(values.max()) if len(values) else 0.0


def build(rs: RunSet) -> list[Chart]:
    """The ab charts of one ab run."""
    root = rs.results[0].root
    result = analyse(root)
    blocks = read_table(root, BLOCKS_FILE)
    return [ratio_chart(result), block_chart(result, blocks)]


def report(rs: RunSet) -> tuple[Any, list[Chart], str]:
    """The report of an ab run: verdict table, both sides' environments, the charts."""
    from harness.report import Doc

    result = analyse(rs.results[0].root)
    env = rs.results[0].environment
    title = f"tfbench ab report: {rs.machine()}"
    doc = Doc()
    doc.heading(1, title)
    doc.para(f"Made from `{result.root}`: {result.interleave} interleaved block pairs per cell "
             "(order A B B A …), each block its own worker process. Ratios are candidate / "
             "baseline with 95% CIs from the paired block log-ratios (t interval over pairs).")
    doc.heading(2, "Sides")
    sides = env.ab.sides if env.ab is not None else {}
    keys = ("python", "executable", "harness_version", "harness_path", "rev", "env", "flags")
    doc.table(["", *sides], [[k, *[_text(getattr(sides[s], k)) for s in sides]] for k in keys])
    pkgs = sorted({p for s in sides.values() for p in s.packages})
    doc.table(["package", *sides], [[p, *[_text(sides[s].packages.get(p)) for s in sides]]
                                    for p in pkgs])
    doc.heading(2, "Verdicts")
    doc.table(["cell", "metric", "ratio", "95% CI", "verdict", "δ", "pairs", "note"],
              [[c.label, m.metric, f"{m.ratio:.3f}×" if m.ratio else "—",
                f"{m.ci_low:.3f}–{m.ci_high:.3f}" if m.ci_low and m.ci_high else "—",
                m.verdict or "not compared", f"{m.threshold:.0%}", str(m.pairs), m.note]
               for c in result.cells for m in c.metrics])
    broken = [f"{c.label}: candidate {c.candidate_status} ({c.reason})" for c in result.cells
              if c.candidate_broken]
    doc.bullets(broken)
    charts = build(rs)
    doc.heading(2, "Charts")
    for chart in charts:
        if chart.made:
            doc.heading(3, chart.title)
            doc.image(chart)
        else:
            doc.para(f"{chart.name}: not made — {chart.reason}")
    return doc, charts, title


def _text(value: Any) -> str:
    if value is None or value == {}:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, Sequence) and not isinstance(value, str):
        return " ".join(str(v) for v in value)
    return str(value)
