"""The charts along the run's clock: step time per step (warm-up, drift) and power over time."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.chartkit import (
    LOG_SPREAD,
    Chart,
    axes_style,
    chart_title,
    hue_legend,
    log_axis,
    new_figure,
    ordered_cells,
    palette,
    runs_of,
    spread_of,
    wrap_label,
)
from harness.runset import RunSet, cell_table


def step_timeline_chart(rs: RunSet, max_panels: int = 36) -> Chart:
    """Step time against step number per cell, warm-up shaded: warm-up and drift."""
    name = "step_timeline"
    st = rs.steps.copy()
    if st.empty:
        return Chart(name, "step time along the run", reason="no steps in steps.csv")
    st["duration_ms"] = st["duration_s"] * 1000.0
    cells = ordered_cells(st)
    shown = cells[:max_panels]
    ncols = min(4, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig = new_figure(3.0 * ncols + 0.6, 2.3 * nrows + 1.6)
    with axes_style():
        axes = fig.subplots(nrows, ncols, squeeze=False)
    hue = rs.hue
    colours = palette(hue, rs.configs[hue])
    for ax, cell in zip(axes.flat, shown, strict=False):
        rows = st[st["cell"] == cell].sort_values(["run", "block", "step"])
        spans: set[tuple[int, int]] = set()
        for _key, g in rows.groupby("key", sort=False):
            x = np.arange(len(g))
            ax.plot(x, g["duration_ms"], color=colours[str(g[hue].iloc[0])], linewidth=0.9,
                    marker="." if len(g) <= 80 else None, markersize=2.5)
            spans.update(runs_of(g["phase"].to_numpy() == "warmup"))
        for start, stop in sorted(spans):  # interleaved cells warm up once per block
            ax.axvspan(start - 0.5, stop - 0.5, color="0.85", zorder=0, linewidth=0)
        if spread_of(rows["duration_ms"]) > LOG_SPREAD:
            ax.set_yscale("log")
            log_axis(ax.yaxis)
        ax.set_title(wrap_label(cell), fontsize=7.5)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("step (warm-up and measured)", fontsize=7)
        ax.set_ylabel("step time (ms)", fontsize=7)
    for ax in list(axes.flat)[len(shown):]:
        ax.remove()
    extra = [Patch(color="0.85", label="warm-up steps (not in statistics)")]
    hue_legend(fig, rs, st[hue].astype(str), extra, kind="line")
    what = "Step time along each cell's run (warm-up shaded)"
    if len(cells) > len(shown):
        what += f"; first {len(shown)} of {len(cells)} cells"
    title = chart_title(fig, what, rs)
    return Chart(name, title, fig, notes=[f"{len(shown)} panels"])


def _power(rs: RunSet) -> pd.DataFrame:
    s = rs.samples
    return s[s["metric"] == "power_total"].copy()


def power_chart(rs: RunSet) -> Chart:
    """Total power over time per run, each cell's measured window shaded and numbered."""
    name = "power"
    p = _power(rs)
    if p.empty:
        return Chart(name, "power over time",
                     reason="samples.csv has no power_total readings (no jtop, tegrastats or "
                            "NVML sampler on this machine)")
    runs = [r for r in rs.labels if r in set(p["run"])]
    t = cell_table(rs)
    windows = t[(t["status"] == "ok") & t["measure_start_s"].notna()
                & t["measure_end_s"].notna()]
    fig = new_figure(13.0, 2.9 * len(runs) + 1.8)
    with axes_style():
        grid = fig.subplots(len(runs), 2, squeeze=False, gridspec_kw={"width_ratios": [3, 1]})
    axes = [[row[0]] for row in grid]
    key_ax = grid[0][1]
    for row in grid:
        row[1].set_axis_off()
    colours = palette("model", rs.configs["model"])
    key_lines: list[str] = []
    numbers: dict[str, int] = {}
    for cell in windows.sort_values(["run", "measure_start_s"])["cell"]:
        if cell in numbers:
            continue
        numbers[cell] = len(numbers) + 1
        key_lines.append(f"{numbers[cell]:>2}  {cell}")
    for (ax,), run in zip(axes, runs, strict=True):
        rows = p[p["run"] == run].sort_values("t_s")
        ax.plot(rows["t_s"], rows["value"], color="0.15", linewidth=0.9, label="power_total")
        top = float(rows["value"].max())
        for _, w in windows[windows["run"] == run].iterrows():
            ax.axvspan(w["measure_start_s"], w["measure_end_s"], alpha=0.25,
                       color=colours[str(w["model"])], linewidth=0)
            ax.text((w["measure_start_s"] + w["measure_end_s"]) / 2, top * 1.04,
                    str(numbers[w["cell"]]), ha="center", va="bottom", fontsize=6.5)
        ax.set_ylim(0, top * 1.15)
        ax.set_xlim(float(rows["t_s"].min()), float(rows["t_s"].max()))
        ax.set_ylabel("total power (W)")
        ax.set_xlabel("time since run start (s)")
        if rs.several:
            ax.set_title(rs.machine(run), fontsize=9, loc="left")
    key_ax.text(0.0, 1.0, "measured windows\n" + "\n".join(key_lines), fontsize=6.5,
                family="monospace", va="top", ha="left", transform=key_ax.transAxes)
    handles = [Patch(color=colours[m], alpha=0.35, label=f"{m} measured window")
               for m in dict.fromkeys(windows["model"].astype(str))]
    fig.legend(handles=[Line2D([], [], color="0.15", label="total power"), *handles],
               loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    title = chart_title(fig, "Total power over the run, measured window of each cell shaded",
                   rs, runs)
    return Chart(name, title, fig, notes=[f"{len(runs)} runs"])


