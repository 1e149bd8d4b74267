"""Drawing helpers shared by the charts: the `Chart` record, colours, axes, labels, legends.

Figures are created without pyplot (no global state, no GUI backend), drawn with
seaborn and matplotlib only. Known factor values keep one colour in every chart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.runset import RunSet

FORMATS = ("png", "svg")
DPI = 160
LOG_SPREAD = 10.0  # use a log axis when the largest value is this many times the smallest
MIB = 1024.0 * 1024.0
FLAG_PARITY = " [parity FAIL]"

# Fixed colour order per factor, so a model (device, engine, run...) keeps its colour
# in every chart of every report.
KNOWN = {
    "model": ("mobilenet_v2", "inception_v3", "mobilenet_v1", "tiny_cnn", "tiny_mobilenet_v2"),
    "device": ("cpu", "gpu"),
    "engine": ("tf", "xla", "tftrt", "litert", "onnxruntime"),
    "comparison": ("GPU over CPU", "frozen over unfrozen", "engine over tf fp32",
                   "model over model", "run over run"),
}
PALETTES = {"model": "tab10", "device": "Set1", "engine": "Dark2", "comparison": "Set1",
             "run": "Set2"}


@dataclass
class Chart:
    """One chart: the figure, or the reason it was not made."""

    name: str
    title: str
    figure: Figure | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def made(self) -> bool:
        return self.figure is not None


def palette(factor: str, values: Iterable[Any]) -> dict[str, Any]:
    """Colours for one factor: known values keep a fixed colour everywhere."""
    vals = [str(v) for v in dict.fromkeys(values)]
    known = list(KNOWN.get(factor, ()))
    order = known + sorted(v for v in vals if v not in known)
    colours = sns.color_palette(PALETTES.get(factor, "tab10"), max(len(order), 3))
    if factor == "model":
        colours = sns.color_palette("tab10", 10)
    if factor == "comparison":
        # Comparison types are not models: earthy and grey tones no known model, device
        # or engine colour uses, so a ratio's colour is never read as a model.
        colours = ["#7f3b08", "#4d4d4d", "#b35806", "#542788", "#1b7837"]
    return {v: colours[order.index(v) % len(colours)] for v in vals}


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig


def axes_style() -> Any:
    return sns.axes_style("whitegrid")


def chart_title(fig: Figure, what: str, rs: RunSet, runs: Sequence[str] | None = None) -> str:
    machine = rs.machine() if runs is None or len(runs) != 1 else rs.machine(runs[0])
    title = f"{what}\n{machine}"
    const = constant_note(rs)
    fig.suptitle(title + (f"\n{const}" if const else ""), fontsize=10.5)
    return title.replace("\n", " — ")


def constant_note(rs: RunSet) -> str:
    shown = {k: v for k, v in rs.constant.items() if k not in ("input_size",)}
    if not shown:
        return ""
    return "all cells: " + ", ".join(f"{k} {v}" for k, v in shown.items())


def fmt_number(v: float) -> str:
    """Three significant figures without scientific notation for everyday sizes."""
    if not np.isfinite(v):
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


class _ReadableLogLocator(ticker.Locator):
    """Ticks at 1, 2, 5 × 10^k; on an axis spanning too little for that to give four
    ticks, at 1, 1.5, 2, 3, 4, 5, 6, 8 × 10^k instead (so 70–420 ms reads 80, 100,
    150, 200, 300, 400, not just 100 and 200)."""

    DENSE = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)

    def __call__(self) -> Any:
        lo, hi = sorted(self.axis.get_view_interval()) if self.axis else (1.0, 10.0)
        return self.tick_values(lo, hi)

    def tick_values(self, vmin: float, vmax: float) -> Any:
        vmin, vmax = max(min(vmin, vmax), 1e-12), max(vmin, vmax, 1e-12)
        for subs in ((1.0, 2.0, 5.0), self.DENSE):
            ticks = [m * 10.0 ** k
                     for k in range(int(np.floor(np.log10(vmin))) - 1,
                                    int(np.ceil(np.log10(vmax))) + 1)
                     for m in subs]
            inside = [t for t in ticks if vmin <= t <= vmax]
            if len(inside) >= 4:
                break
        return np.asarray(ticks)


def finish_cell_panel(ax: Any, cells: list[str], flagged: set[str], log: bool,
                       quantity: str, unit: str, title: str) -> None:
    """Cell tick labels (parity failures flagged), the value axis and the panel title."""
    cell_ticks(ax, cells, flagged)
    if log:
        ax.set_xscale("log")
        log_axis(ax.xaxis)
    ax.set_xlabel(f"{quantity} ({unit}, log scale)" if log else f"{quantity} ({unit})")
    ax.set_title(title, fontsize=10, loc="left")


def log_axis(axis: Any, suffix: str = "") -> None:
    """Log scale with plain-number ticks (1, 2, 5 × 10^k, denser on short ranges)."""
    axis.set_major_locator(_ReadableLogLocator())
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}{suffix}"))
    axis.set_minor_locator(ticker.NullLocator())


def spread_of(values: Iterable[float]) -> float:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], float)
    return float(v.max() / v.min()) if len(v) else 1.0


def ordered_cells(frame: pd.DataFrame) -> list[str]:
    """Cells in a stable reading order: by model, device, mode, base, engine, batch."""
    cols = [c for c in ("model", "device", "mode", "base", "engine", "precision", "batch_size")
            if c in frame.columns]
    first = frame.sort_values(cols, kind="stable").drop_duplicates("cell")
    return list(first["cell"])


def modes_of(frame: pd.DataFrame) -> list[str]:
    order = {"infer": 0, "train": 1}
    return sorted(frame["mode"].dropna().astype(str).unique(), key=lambda m: order.get(m, 9))


MODE_TITLE = {"infer": "inference", "train": "training"}


def mode_title(mode: str, rows: pd.DataFrame) -> str:
    return f"{MODE_TITLE.get(mode, mode)} ({rows['cell'].nunique()} cells)"


def cell_ticks(ax: Axes, cells: Sequence[str], flagged: set[str]) -> None:
    ax.set_yticks(range(len(cells)))
    ax.set_yticklabels([c + (FLAG_PARITY if c in flagged else "") for c in cells], fontsize=8)
    for tick, cell in zip(ax.get_yticklabels(), cells, strict=True):
        if cell in flagged:
            tick.set_color("firebrick")
    ax.set_ylim(len(cells) - 0.5, -0.5)


def dot_panel(ax: Axes, frame: pd.DataFrame, cells: Sequence[str], rs: RunSet, value: str,
               low: str | None, high: str | None, fmt: Callable[[float], str],
               hollow: Callable[[pd.Series], bool] | None = None) -> int:
    """Points with CI whiskers, one row per cell, runs dodged within a row."""
    hue = rs.hue
    colours = palette(hue, rs.configs[hue])
    hues = [h for h in dict.fromkeys(rs.configs[hue].astype(str)) if h in set(frame[hue])]
    n = max(len(hues), 1)
    offsets = {h: (i - (n - 1) / 2) * (0.6 / n) for i, h in enumerate(hues)} if rs.several \
        else dict.fromkeys(hues, 0.0)
    drawn = 0
    for _, r in frame.iterrows():
        v = float(r[value])
        if not np.isfinite(v):
            continue
        y = cells.index(r["cell"]) + offsets.get(str(r[hue]), 0.0)
        colour = colours[str(r[hue])]
        is_hollow = bool(hollow(r)) if hollow else False
        xerr = None
        if low and high and np.isfinite(r[low]) and np.isfinite(r[high]):
            xerr = [[max(v - float(r[low]), 0.0)], [max(float(r[high]) - v, 0.0)]]
        ax.errorbar([v], [y], xerr=xerr, fmt="o", color=colour, ecolor=colour, capsize=3,
                    markersize=6, markerfacecolor="white" if is_hollow else colour,
                    markeredgewidth=1.5, zorder=3)
        label = fmt(v) + (" (low confidence)" if is_hollow else "")
        ax.annotate(label, (float(r[high]) if xerr is not None else v, y),
                    xytext=(5, 0), textcoords="offset points", va="center", fontsize=7,
                    color="0.2")
        drawn += 1
    return drawn


def wrap_label(cell: str, width: int = 36) -> str:
    """A cell label broken at its separators so that small-panel titles do not collide."""
    lines: list[str] = []
    for part in cell.split(" · "):
        if lines and len(lines[-1]) + len(part) + 3 <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def hue_legend(fig: Figure, rs: RunSet, present: Iterable[str], extra: Sequence[Any] = (),
                kind: str = "point") -> None:
    hue = rs.hue
    colours = palette(hue, rs.configs[hue])
    present = [p for p in dict.fromkeys(present)]
    handles: list[Any] = []
    for p in present:
        if kind == "bar":
            handles.append(Patch(color=colours[p], label=p))
        elif kind == "line":
            handles.append(Line2D([], [], color=colours[p], marker=".", label=p))
        else:
            handles.append(Line2D([], [], marker="o", linestyle="", color=colours[p], label=p))
    handles.extend(extra)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
                   fontsize=8, title=hue if not extra else None, frameon=False)


def rows_figure(modes: Sequence[str], counts: Sequence[int], width: float = 9.0,
                 ncols: int = 1) -> tuple[Figure, list[list[Axes]]]:
    heights = [max(c, 1) * 0.42 + 0.9 for c in counts]
    fig = new_figure(width, sum(heights) + 1.8)
    with axes_style():
        grid = fig.subplots(len(modes), ncols, squeeze=False,
                            gridspec_kw={"height_ratios": heights})
    return fig, [list(row) for row in grid]


def runs_of(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where ``flags`` is true."""
    out: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(flags)))
    return out
