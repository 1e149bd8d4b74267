"""The per-cell charts: step-time distributions, throughput, speed-ups, energy, memory, batch size.

Each function returns a `Chart` (the figure, or the reason it was not made) so
that tests can inspect axes and artists before anything is saved. Statistics
use the ``measure`` steps of cells whose status is ``ok``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.lines import Line2D

from harness.chartkit import (
    FLAG_PARITY,
    KNOWN,
    LOG_SPREAD,
    MIB,
    Chart,
    axes_style,
    cell_ticks,
    chart_title,
    dot_panel,
    finish_cell_panel,
    fmt_number,
    hue_legend,
    log_axis,
    mode_title,
    modes_of,
    new_figure,
    ordered_cells,
    palette,
    rows_figure,
    spread_of,
    wrap_label,
)
from harness.records import FACTOR_COLUMNS, text
from harness.runset import RunSet, cell_label, cell_table, measured
from harness.speedups import Ratio, speedups


def step_time_chart(rs: RunSet) -> Chart:
    """Box plots of measured step times per cell, one facet per mode."""
    name = "step_times"
    m = measured(rs)
    if m.empty:
        return Chart(name, "step-time distributions", reason="no measured steps in steps.csv")
    modes = modes_of(m)
    counts = [m[m["mode"] == mode]["cell"].nunique() for mode in modes]
    fig, grid = rows_figure(modes, counts)
    hue = rs.hue
    colours = palette(hue, rs.configs[hue])
    log = spread_of(m.groupby("key")["duration_ms"].median()) > LOG_SPREAD
    flagged = set(cell_table(rs).query("parity_flag")["cell"])
    waits = 0
    real_input = set(rs.configs[rs.configs["data"].map(text) != "synthetic"]["key"])
    for (ax,), mode in zip(grid, modes, strict=True):
        rows = m[m["mode"] == mode]
        cells = ordered_cells(rows)
        with warnings.catch_warnings():  # seaborn 0.13 still passes bxp(vert=...)
            warnings.filterwarnings("ignore", message=".*vert: bool was deprecated")
            sns.boxplot(data=rows, x="duration_ms", y="cell", hue=hue, order=cells,
                        palette=colours, ax=ax, orient="h", fliersize=2, linewidth=0.8,
                        width=0.7, log_scale=log, legend=False, saturation=1.0)
        cell_ticks(ax, cells, flagged)
        cell_waits = _input_waits(rows, cells, real_input)
        _median_labels(ax, rows, cells, hue, cell_waits)
        waits += _input_wait_marks(ax, cells, cell_waits)
        if log:
            log_axis(ax.xaxis)
        ax.set_ylabel("")
        ax.set_xlabel("step time (ms, log scale)" if log else "step time (ms)")
        ax.margins(x=0.12)
        ax.set_title(mode_title(mode, rows), fontsize=10, loc="left")
    title = chart_title(fig, "Step-time distribution of measured steps, per cell", rs)
    extra = [Line2D([], [], marker="x", linestyle="", color="black",
                    label="median input wait (image-folder input), beside the compute time")
             ] if waits else []
    hue_legend(fig, rs, m[hue].astype(str), extra, kind="bar")
    return Chart(name, title, fig)


def _median_labels(ax: Any, rows: pd.DataFrame, cells: Sequence[str], hue: str,
                   waits: dict[str, float]) -> None:
    """The median of each cell's box (runs joined by /), and its input wait where one is
    drawn, written right of the whisker and the cross."""
    for y, cell in enumerate(cells):
        d = rows[rows["cell"] == cell]
        medians = d.groupby(hue, sort=False)["duration_ms"].median()
        label = "median " + " / ".join(fmt_number(float(v)) for v in medians) + " ms"
        q1, q3 = d["duration_ms"].quantile([0.25, 0.75])
        right = min(float(d["duration_ms"].max()), float(q3 + 1.5 * (q3 - q1)))
        if cell in waits:
            label += f"; input wait {fmt_number(waits[cell])} ms"
            right = max(right, waits[cell])
        ax.annotate(label, (right, y), xytext=(7, 0), textcoords="offset points",
                    va="center", fontsize=7, color="0.15")


def _input_waits(rows: pd.DataFrame, cells: Sequence[str], real_input: set[str]
                 ) -> dict[str, float]:
    """Median input wait (ms) of each cell reading real input."""
    out = {}
    for cell in cells:
        d = rows[(rows["cell"] == cell) & rows["key"].isin(real_input)]
        if len(d):
            out[cell] = float(d["input_wait_s"].median()) * 1000.0
    return out


def _input_wait_marks(ax: Any, cells: Sequence[str], waits: dict[str, float]) -> int:
    """A cross at the median input wait of each cell reading real input: compute (the box)
    against input (the cross) on one axis. Returns how many were drawn."""
    drawn = 0
    for y, cell in enumerate(cells):
        if waits.get(cell, 0.0) > 0:
            ax.plot([waits[cell]], [y], marker="x", color="black", markersize=7, zorder=5)
            drawn += 1
    return drawn


def throughput_chart(rs: RunSet, table: pd.DataFrame | None = None) -> Chart:
    """Images/s per cell with the 95% CI, one facet per mode."""
    name = "throughput"
    t = cell_table(rs) if table is None else table
    ok = t[(t["status"] == "ok") & t["images_per_s"].notna()]
    if ok.empty:
        return Chart(name, "throughput", reason="no cell with status ok and measured steps")
    modes = modes_of(ok)
    counts = [ok[ok["mode"] == mode]["cell"].nunique() for mode in modes]
    fig, grid = rows_figure(modes, counts)
    log = spread_of(ok["images_per_s"]) > LOG_SPREAD
    flagged = set(ok[ok["parity_flag"]]["cell"])
    bars = 0
    for (ax,), mode in zip(grid, modes, strict=True):
        rows = ok[ok["mode"] == mode]
        cells = ordered_cells(rows)
        bars += dot_panel(ax, rows, cells, rs, "images_per_s", "images_per_s_ci_low",
                           "images_per_s_ci_high", fmt_number)
        finish_cell_panel(ax, cells, flagged, log, "throughput", "images/s",
                           mode_title(mode, rows))
        ax.margins(x=0.15)
    title = chart_title(fig, "Throughput per cell (median, 95% CI)", rs)
    hue_legend(fig, rs, ok[rs.hue].astype(str))
    return Chart(name, title, fig, notes=[f"{bars} points"])


def speedup_chart(rs: RunSet, ratios: Sequence[Ratio] | None = None) -> Chart:
    """Forest plot of speed-ups with 95% CIs, grouped by the comparison asked."""
    name = "speedups"
    rr = list(speedups(rs) if ratios is None else ratios)
    if not rr:
        return Chart(name, "speed-ups", reason="no two ok cells differ in only the device, "
                     "base, engine, model or run")
    kinds = [k for k in KNOWN["comparison"] if any(r.kind == k for r in rr)]
    colours = palette("comparison", kinds)
    markers = dict(zip(KNOWN["comparison"], "sD^vP", strict=True))
    ordered = [r for k in kinds for r in rr if r.kind == k]
    fig = new_figure(9.5, 0.34 * len(ordered) + 2.4)
    with axes_style():
        ax = fig.subplots()
    labels = []
    for y, r in enumerate(ordered):
        c = colours[r.kind]
        ax.errorbar([r.value], [y], xerr=[[r.value - r.low], [r.high - r.value]],
                    fmt=markers.get(r.kind, "o"), color=c, capsize=3, markersize=5)
        ax.annotate(f"{r.value:.2f}× ({r.low:.2f}–{r.high:.2f})", (r.high, y), xytext=(5, 0),
                    textcoords="offset points", va="center", fontsize=7, color="0.2")
        where = " · ".join(p for p in (r.context, r.run if rs.several else "") if p)
        labels.append(f"{r.a} over {r.b}" + (f"  [{where}]" if where else "")
                      + (FLAG_PARITY if r.parity_fail else ""))
    ax.set_yticks(range(len(ordered)))
    ax.set_yticklabels(labels, fontsize=7.5)
    for tick, r in zip(ax.get_yticklabels(), ordered, strict=True):
        if r.parity_fail:
            tick.set_color("firebrick")
    ax.set_ylim(len(ordered) - 0.5, -0.5)
    ax.axvline(1.0, color="0.3", linewidth=1, linestyle="--", zorder=1)
    ax.set_xscale("log")
    log_axis(ax.xaxis, "×")
    lo = min(min(r.low for r in ordered), 1.0)
    hi = max(max(r.high for r in ordered), 1.0)
    ax.set_xlim(lo / 1.3, hi * 2.2)
    ax.set_xlabel("speed-up of A over B (×, log scale)\n"
                  "median step time of B ÷ median step time of A; > 1 means A is faster")
    handles = [Line2D([], [], marker=markers.get(k, "o"), linestyle="", color=colours[k],
                      label=k) for k in kinds]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5),
               fontsize=8, frameon=False)
    title = chart_title(fig, "Speed-ups with 95% CI", rs)
    return Chart(name, title, fig, notes=[f"{len(ordered)} ratios"])


def energy_chart(rs: RunSet, table: pd.DataFrame | None = None) -> Chart:
    """Energy per image per cell; low-confidence values drawn hollow and labelled."""
    name = "energy"
    t = cell_table(rs) if table is None else table
    ok = t[(t["status"] == "ok") & t["energy_j_per_image"].notna()]
    ok = ok.assign(energy_mj_per_image=ok["energy_j_per_image"] * 1000.0)
    if ok.empty:
        return Chart(name, "energy per image",
                     reason="configs.csv has no energy_j_per_image (no power samples)")
    modes = modes_of(ok)
    counts = [ok[ok["mode"] == mode]["cell"].nunique() for mode in modes]
    fig, grid = rows_figure(modes, counts)
    log = spread_of(ok["energy_mj_per_image"]) > LOG_SPREAD
    flagged = set(ok[ok["parity_flag"]]["cell"])

    def low(r: pd.Series) -> bool:
        return str(r.get("energy_confidence", "")).lower() == "low"

    for (ax,), mode in zip(grid, modes, strict=True):
        rows = ok[ok["mode"] == mode]
        cells = ordered_cells(rows)
        dot_panel(ax, rows, cells, rs, "energy_mj_per_image", None, None,
                   lambda v: f"{fmt_number(v)} mJ", hollow=low)
        finish_cell_panel(ax, cells, flagged, log, "energy per image", "mJ",
                           mode_title(mode, rows))
        ax.margins(x=0.25)
    extra = [Line2D([], [], marker="o", linestyle="", color="0.3", markerfacecolor="white",
                    label="low confidence: window spans few power samples")]
    hue_legend(fig, rs, ok[rs.hue].astype(str), extra)
    title = chart_title(fig, "Energy per image over each cell's measured window", rs)
    return Chart(name, title, fig)


MEMORY_PANELS = (
    ("host_rss_peak_bytes", "peak host RSS, timed phase (MiB)"),
    ("host_rss_lifetime_peak_bytes", "peak host RSS, worker lifetime (MiB)"),
    ("device_mem_peak_bytes", "peak device memory (MiB)"),
)


def memory_chart(rs: RunSet, table: pd.DataFrame | None = None) -> Chart:
    """Peak host RSS and peak device memory per cell (MiB), when recorded."""
    name = "memory"
    t = cell_table(rs) if table is None else table
    ok = t[t["status"] == "ok"]
    # The timed phase's RSS peak comes from samples and is empty where no sample fell in
    # the measured window; the worker's lifetime peak (model build, parity reference
    # included) is always recorded. Each gets its own panel: they measure different things.
    metrics = [(c, label) for c, label in MEMORY_PANELS if c in ok and ok[c].notna().any()]
    if not metrics:
        return Chart(name, "peak memory", reason="configs.csv has no "
                     f"{', '.join(c for c, _ in MEMORY_PANELS)} values")
    cells = ordered_cells(ok)
    fig = new_figure(5.0 + 3.2 * len(metrics), 0.32 * len(cells) * (1.4 if rs.several else 1)
                  + 2.4)
    with axes_style():
        axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    hue = rs.hue
    colours = palette(hue, rs.configs[hue])
    flagged = set(ok[ok["parity_flag"]]["cell"])
    for ax, (col, label) in zip(axes, metrics, strict=True):
        rows = ok[ok[col].notna()].assign(mib=lambda f, c=col: f[c] / MIB)
        sns.barplot(data=rows, x="mib", y="cell", hue=hue, order=cells, palette=colours,
                    ax=ax, orient="h", legend=False, errorbar=None, saturation=1.0)
        for container in ax.containers:  # the value at each bar's end
            ax.bar_label(container, fmt="{:,.0f}", padding=2, fontsize=6.5, color="0.2")
        ax.margins(x=0.18)
        if ax is axes[0]:
            cell_ticks(ax, cells, flagged)
        ax.set_ylabel("")
        ax.set_xlabel(label)
        missing = sorted(set(cells) - set(rows["cell"]))
        if missing and col == "device_mem_peak_bytes":
            ax.set_title("no value for CPU cells (not recorded there)", fontsize=8, loc="left",
                         color="0.4")
    hue_legend(fig, rs, ok[hue].astype(str), kind="bar")
    title = chart_title(fig, "Peak memory per cell", rs)
    return Chart(name, title, fig)


ENGINE_MARKERS = {"tf": "o", "xla": "s", "tftrt": "D", "litert": "^", "onnxruntime": "v",
                  "keras-jax": "P", "keras-torch": "X"}
SERIES_MARKERS = "osD^v<>ph"


def _batch_series(ok: pd.DataFrame) -> list[pd.DataFrame]:
    keep = [c for c in (*FACTOR_COLUMNS, "run") if c != "batch_size"]
    return [g.sort_values("batch_size") for _, g in ok.groupby(keep, sort=False, dropna=False)
            if g["batch_size"].nunique() >= 2]


def _batch_chart(rs: RunSet, series: list[pd.DataFrame], name: str, what: str, value: str,
                 low: str | None, high: str | None, unit: str,
                 hollow: str | None = None) -> Chart:
    """One line per series against batch size. Engines differ by colour and marker (the
    run by line style when several runs are shown); each line's end carries its label."""
    fig = new_figure(11.5, 5.2)
    with axes_style():
        ax = fig.subplots()
    varying = [f for f in rs.varying if f != "batch_size"]
    engines = list(dict.fromkeys(str(g.iloc[0]["engine"]) for g in series))
    by_engine = len(engines) > 1
    engine_colours = palette("engine", engines)
    series_colours = palette("series", [str(n) for n in range(len(series))])
    runs = list(dict.fromkeys(str(g.iloc[0]["run"]) for g in series))
    styles = dict(zip(runs, ("-", "--", ":", "-."), strict=False))
    sizes: set[int] = set()
    for n, g in enumerate(series):
        first = g.iloc[0]
        engine = str(first["engine"])
        colour = engine_colours[engine] if by_engine else series_colours[str(n)]
        marker = (ENGINE_MARKERS.get(engine, SERIES_MARKERS[n % len(SERIES_MARKERS)])
                  if by_engine else SERIES_MARKERS[n % len(SERIES_MARKERS)])
        label = cell_label(first, varying)
        if rs.several:
            label = f"{label} [{first['run']}]"
        y = g[value]
        yerr = None if low is None or high is None else [y - g[low], g[high] - y]
        ax.errorbar(g["batch_size"], y, yerr=yerr, color=colour, marker=marker, capsize=3,
                    label=label, linestyle=styles.get(str(first["run"]), "-"))
        if hollow is not None:  # low-confidence points drawn hollow over the line
            rough = g[g[hollow].map(lambda v: str(v).lower() == "low")]
            ax.plot(rough["batch_size"], rough[value], linestyle="", marker=marker,
                    markerfacecolor="white", markeredgecolor=colour, zorder=4)
        end = g.iloc[-1]
        ax.annotate(f"{wrap_label(label, 28)}\n{fmt_number(float(end[value]))} {unit}",
                    (float(end["batch_size"]), float(end[value])), xytext=(8, 0),
                    textcoords="offset points", va="center", fontsize=7, color=colour)
        sizes.update(int(b) for b in g["batch_size"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(sizes))
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlim(min(sizes) / 1.3, max(sizes) * 2.6)  # room for the line-end labels
    ax.set_xlabel("batch size (images per step, log scale)")
    if spread_of(pd.concat([g[value] for g in series])) > LOG_SPREAD:
        ax.set_yscale("log")
        log_axis(ax.yaxis)
        ax.set_ylabel(f"{what} ({unit}, log scale)")
    else:
        ax.set_ylabel(f"{what} ({unit})")
        ax.set_ylim(bottom=0)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return Chart(name, "", fig, notes=[f"{len(series)} series"])


def batch_size_chart(rs: RunSet, table: pd.DataFrame | None = None) -> Chart:
    """Throughput against batch size for every series measured at several batch sizes."""
    name = "batch_size"
    t = cell_table(rs) if table is None else table
    ok = t[(t["status"] == "ok") & t["images_per_s"].notna()].copy()
    series = _batch_series(ok)
    if not series:
        return Chart(name, "throughput vs batch size",
                     reason="no cell was measured at more than one batch size")
    chart = _batch_chart(rs, series, name, "throughput", "images_per_s", "images_per_s_ci_low",
                         "images_per_s_ci_high", "images/s")
    assert chart.figure is not None
    chart.title = chart_title(chart.figure, "Throughput against batch size (median, 95% CI)",
                              rs)
    return chart


def energy_batch_size_chart(rs: RunSet, table: pd.DataFrame | None = None) -> Chart:
    """Energy per image against batch size, where energy was measured at several sizes."""
    name = "energy_batch_size"
    t = cell_table(rs) if table is None else table
    ok = t[(t["status"] == "ok") & t["energy_j_per_image"].notna()].copy()
    ok["energy_mj_per_image"] = ok["energy_j_per_image"] * 1000.0
    series = _batch_series(ok)
    if not series:
        return Chart(name, "energy per image vs batch size",
                     reason="energy per image was not measured at more than one batch size "
                            "(needs a power sampler: jtop, tegrastats or NVML)")
    chart = _batch_chart(rs, series, name, "energy per image", "energy_mj_per_image", None,
                         None, "mJ/image", hollow="energy_confidence")
    assert chart.figure is not None
    chart.figure.axes[0].plot([], [], linestyle="", marker="o", markerfacecolor="white",
                              markeredgecolor="0.3",
                              label="hollow: low confidence (few power samples)")
    chart.figure.axes[0].legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                                frameon=False)
    chart.title = chart_title(chart.figure, "Energy per image against batch size", rs)
    return chart
