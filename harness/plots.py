"""Comparison charts from results directories: ``tfbench plot``.

Each chart is built by a function that returns a `Chart` holding a matplotlib
`Figure` (or the reason it was not made), so that tests can inspect axes,
labels and artists before anything is saved. Figures are created without
pyplot (no global state, no GUI backend) and drawn with seaborn and
matplotlib only; TensorFlow is never imported here. Statistics use the
``measure`` steps of cells whose status is ``ok``.
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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

from harness import stats
from harness.errors import UserError
from harness.records import FACTOR_COLUMNS, Results, load_results

FORMATS = ("png", "svg")
DPI = 160
LOG_SPREAD = 10.0  # use a log axis when the largest value is this many times the smallest
CHART_NAMES = ("step_times", "throughput", "speedups", "step_timeline", "power",
               "energy", "memory", "batch_size")
# Between-run factor assumed when comparing the same cell across two runs (see
# shared notes on regressions: one run cannot see its own machine factor).
RUN_SPREAD = 0.02
_MIB = 1024.0 * 1024.0
_FLAG_PARITY = " [parity FAIL]"

# Fixed colour order per factor, so a model (device, engine, run...) keeps its colour
# in every chart of every report.
_KNOWN = {
    "model": ("mobilenet_v2", "inception_v3", "mobilenet_v1", "tiny_cnn", "tiny_mobilenet_v2"),
    "device": ("cpu", "gpu"),
    "engine": ("tf", "xla", "tftrt", "litert", "onnxruntime"),
    "comparison": ("GPU over CPU", "frozen over unfrozen", "engine over tf fp32",
                   "model over model", "run over run"),
}
_PALETTES = {"model": "tab10", "device": "Set1", "engine": "Dark2", "comparison": "Set1",
             "run": "Set2"}


# --------------------------------------------------------------------------- data


@dataclass
class RunSet:
    """One or several results directories merged for plotting.

    ``configs`` has one row per cell with a ``run`` label (host, or run id when
    hosts repeat) and a readable ``cell`` label built from the factors that vary;
    ``steps`` and ``samples`` carry the same ``run`` and ``cell`` columns.
    """

    results: list[Results]
    labels: list[str]
    configs: pd.DataFrame
    steps: pd.DataFrame
    samples: pd.DataFrame
    varying: list[str]
    constant: dict[str, str]

    @property
    def several(self) -> bool:
        return len(self.results) > 1

    def machine(self, label: str | None = None) -> str:
        """A short description of the machine(s): host plus board or CPU."""
        if label is None:
            if self.several:
                return " vs ".join(self.labels)
            label = self.labels[0]
        env = self.results[self.labels.index(label)].environment
        return describe_machine(env, label)

    @property
    def hue(self) -> str:
        """The factor colours stand for: the run when several are compared, else the model."""
        return "run" if self.several else "model"


def env_get(env: Mapping[str, Any], *paths: str) -> Any:
    """First non-empty value among dotted key paths (tolerant of missing keys)."""
    for path in paths:
        node: Any = env
        for part in path.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                node = None
                break
        if node not in (None, "", [], {}):
            return node
    return None


def describe_machine(env: Mapping[str, Any], label: str) -> str:
    """``host (board or CPU, JetPack, power mode)`` for chart titles."""
    board = env_get(env, "jetson.model", "jetson.board.model", "jetson.hardware.Model",
                    "jetson_board.model", "board.model")
    detail: list[str] = []
    if board:
        detail.append(str(board))
        jetpack = env_get(env, "jetson.jetpack", "jetson.hardware.Jetpack", "jetpack")
        if jetpack:
            detail.append(f"JetPack {jetpack}")
        mode = env_get(env, "jetson.nvpmodel", "nvpmodel")
        if mode:
            detail.append(f"power mode {mode}")
    else:
        cpu = env_get(env, "cpu.model", "cpu_model", "cpu.brand", "processor")
        count = env_get(env, "cpu.count", "cpu_count")
        if cpu:
            detail.append(f"{cpu}, {count} cores" if count else str(cpu))
        gpus = env_get(env, "gpus")
        if isinstance(gpus, list) and gpus:
            names = [str(g.get("name", g)) if isinstance(g, Mapping) else str(g) for g in gpus]
            detail.append(", ".join(names))
    host = env_get(env, "host", "hostname", "machine.host") or label
    text = str(host) if host == label else f"{label}: {host}"
    return f"{text} ({'; '.join(detail)})" if detail else text


def _run_labels(results: Sequence[Results]) -> list[str]:
    """Host names when they tell runs apart, else run ids, else directory names."""
    hosts = [str(env_get(r.environment, "host", "hostname") or r.root.name) for r in results]
    if len(set(hosts)) == len(hosts):
        return hosts
    ids = [r.run_id for r in results]
    if len(set(ids)) == len(ids):
        return ids
    names = [str(r.root.resolve()) for r in results]
    return names


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def truthy(value: Any) -> bool | None:
    """A CSV boolean ("true"/"false", True/False, empty) as bool or None."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    return None


def _cell_label(row: Mapping[str, Any], varying: Sequence[str]) -> str:
    parts: list[str] = []
    if "model" in varying:
        parts.append(_text(row["model"]))
    if "device" in varying:
        parts.append(_text(row["device"]))
    if "mode" in varying or "base" in varying:
        parts.append(" ".join(p for p in (_text(row["mode"]), _text(row["base"])) if p))
    if "engine" in varying or "precision" in varying:
        parts.append(" ".join(p for p in (_text(row["engine"]), _text(row["precision"])) if p))
    if "batch_size" in varying:
        parts.append(f"bs{_text(row['batch_size'])}")
    for extra in ("weights", "data", "input_size"):
        if extra in varying:
            parts.append(f"{extra} {Path(_text(row[extra])).name}")
    return " · ".join(p for p in parts if p) or _text(row["model"])


def load_runs(dirs: Sequence[Path | str]) -> RunSet:
    """Load and merge results directories (UserError for anything that is not one)."""
    if not dirs:
        raise UserError("RESULTS_DIR: none given; allowed: one or more results directories")
    results = [load_results(Path(d)) for d in dirs]
    labels = _run_labels(results)
    configs, steps, samples = [], [], []
    for label, res in zip(labels, results, strict=True):
        configs.append(res.configs.assign(run=label))
        steps.append(res.steps.assign(run=label))
        samples.append(res.samples.assign(run=label))
    cfg = pd.concat(configs, ignore_index=True)
    cfg["base"] = cfg["base"].fillna("")
    cfg["reason"] = cfg["reason"].fillna("")
    cfg["config_id"] = cfg["config_id"].astype(str)
    varying = [f for f in FACTOR_COLUMNS if cfg[f].astype(str).nunique(dropna=False) > 1]
    if "input_size" in varying and cfg.groupby("model")["input_size"].nunique().max() <= 1:
        varying.remove("input_size")  # each model at its own size: the model says it
    constant = {f: _text(cfg[f].iloc[0]) for f in FACTOR_COLUMNS
                if f not in varying and f != "input_size" and len(cfg) and _text(cfg[f].iloc[0])}
    cfg["cell"] = [_cell_label(row, varying) for row in cfg.to_dict("records")]
    cfg["key"] = cfg["run"] + "/" + cfg["config_id"]
    st = pd.concat(steps, ignore_index=True)
    sa = pd.concat(samples, ignore_index=True)
    for frame in (st, sa):
        frame["config_id"] = frame["config_id"].astype("object").where(
            frame["config_id"].notna(), "").astype(str)
        frame["key"] = frame["run"] + "/" + frame["config_id"]
    st = st.merge(cfg[["key", "cell", "status"]], on="key", how="inner")
    st = st[st["status"] == "ok"].copy()
    return RunSet(results, labels, cfg, st, sa, varying, constant)


def measured(rs: RunSet) -> pd.DataFrame:
    """Measure-phase steps of ok cells, with step time in milliseconds."""
    m = rs.steps[rs.steps["phase"] == "measure"].copy()
    m["duration_ms"] = m["duration_s"] * 1000.0
    return m


def cell_table(rs: RunSet) -> pd.DataFrame:
    """One row per cell with statistics recomputed from ``steps.csv``.

    Median, p90 and the median's CI come from the measure steps; images/s is the
    median images per step over the median step time, its CI from the median's
    CI. Cells without steps fall back to the summary columns in ``configs.csv``.
    """
    m = measured(rs)
    groups = {k: g for k, g in m.groupby("key", sort=False)}
    rows = []
    for row in rs.configs.to_dict("records"):
        out = dict(row)
        out["n_steps"] = 0
        g = groups.get(row["key"])
        if row["status"] == "ok" and g is not None and len(g):
            d = g["duration_s"].to_numpy(dtype=float)
            s = stats.summarize(d)
            images = float(np.median(g["images"].to_numpy(dtype=float)))
            out.update(n_steps=len(d), step_s_median=s["median"], step_s_p90=s["p90"],
                       step_s_median_ci_low=s["median_ci_low"],
                       step_s_median_ci_high=s["median_ci_high"],
                       images_per_s=images / s["median"],
                       images_per_s_ci_low=images / s["median_ci_high"],
                       images_per_s_ci_high=images / s["median_ci_low"])
        out["parity_flag"] = truthy(row.get("parity_ok")) is False
        rows.append(out)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- ratios


@dataclass(frozen=True)
class Ratio:
    """A speed-up of cell A over cell B: median step time of B over that of A, with a CI."""

    kind: str
    a: str
    b: str
    context: str
    run: str
    value: float
    low: float
    high: float
    method: str
    a_key: str
    b_key: str
    parity_fail: bool = False


def speedup_ci(a: Sequence[float], b: Sequence[float], blocks_a: Sequence[int] | None = None,
               blocks_b: Sequence[int] | None = None, confidence: float = 0.95,
               run_spread: float = 0.0) -> tuple[float, float, float, str]:
    """Speed-up of A over B, median(B)/median(A), with a CI on the log scale.

    Interleaved cells (at least three shared blocks) use paired log-ratios of
    block medians (`stats.paired_block_ratio_ci`). Otherwise each cell's steps
    give a batch-means standard error from chunk medians (`stats.summarize_run`,
    robust to autocorrelated steps) and `stats.ratio_ci` combines them;
    ``run_spread`` is the between-run factor to add when A and B come from
    different runs (0 for two cells of one run). Cells with fewer than six
    steps fall back to the ratio of the ends of the two medians' CIs.
    """
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if blocks_a is not None and blocks_b is not None:
        ga = pd.Series(xa).groupby(np.asarray(blocks_a))
        gb = pd.Series(xb).groupby(np.asarray(blocks_b))
        shared = sorted(set(ga.groups) & set(gb.groups))
        if len(shared) >= 3:
            ci = stats.paired_block_ratio_ci([ga.get_group(k).to_numpy() for k in shared],
                                             [gb.get_group(k).to_numpy() for k in shared],
                                             confidence)
            return ci.ratio, ci.low, ci.high, f"paired blocks (n={len(shared)})"
    ratio = float(np.median(xb) / np.median(xa))
    if min(len(xa), len(xb)) < 6:
        la, ha = stats.median_ci(xa.tolist(), confidence)
        lb, hb = stats.median_ci(xb.tolist(), confidence)
        return ratio, lb / ha, hb / la, "median CIs (few steps)"
    spread = stats.assumed_spread(run_spread)
    ci = stats.ratio_ci(stats.summarize_run(xb), [stats.summarize_run(xa)], spread, confidence)
    method = f"chunk medians (ν≈{ci.dof:.0f})" if math.isfinite(ci.dof) else "chunk medians"
    if run_spread:
        method += f", run spread {run_spread:.0%} assumed"
    return ci.ratio, ci.low, ci.high, method


@dataclass(frozen=True)
class _Comparison:
    kind: str
    varies: tuple[str, ...]
    pick: Callable[[pd.DataFrame], list[tuple[int, int]]]


def _pairs_where(a: Callable[[pd.Series], bool], b: Callable[[pd.Series], bool]
                 ) -> Callable[[pd.DataFrame], list[tuple[int, int]]]:
    def pick(group: pd.DataFrame) -> list[tuple[int, int]]:
        rows_a = [i for i, r in group.iterrows() if a(r)]
        rows_b = [i for i, r in group.iterrows() if b(r)]
        return [(i, j) for i in rows_a for j in rows_b if i != j]
    return pick


def _faster_first(group: pd.DataFrame) -> list[tuple[int, int]]:
    idx = list(group.sort_values("step_s_median").index)
    return [(idx[i], idx[j]) for i in range(len(idx)) for j in range(i + 1, len(idx))]


def _later_over_first(order: Sequence[str]) -> Callable[[pd.DataFrame], list[tuple[int, int]]]:
    def pick(group: pd.DataFrame) -> list[tuple[int, int]]:
        by_run = {r["run"]: i for i, r in group.iterrows()}
        runs = [r for r in order if r in by_run]
        return [(by_run[r], by_run[runs[0]]) for r in runs[1:]]
    return pick


def speedups(rs: RunSet, table: pd.DataFrame | None = None) -> list[Ratio]:
    """The comparisons people ask about, for every pair of ok cells that differ only there.

    GPU over CPU, frozen over unfrozen training, each engine over plain TF fp32,
    the faster model over the slower one, and (with several runs) each later run
    over the first. A ratio above 1 means A is faster.
    """
    t = cell_table(rs) if table is None else table
    ok = t[(t["status"] == "ok") & t["step_s_median"].notna()].copy()
    if ok.empty:
        return []
    comparisons = [
        _Comparison("GPU over CPU", ("device",),
                    _pairs_where(lambda r: str(r["device"]).startswith("gpu"),
                                 lambda r: r["device"] == "cpu")),
        _Comparison("frozen over unfrozen", ("base",),
                    _pairs_where(lambda r: r["base"] == "frozen",
                                 lambda r: r["base"] == "unfrozen")),
        _Comparison("engine over tf fp32", ("engine", "precision"),
                    _pairs_where(lambda r: r["engine"] != "tf",
                                 lambda r: r["engine"] == "tf" and r["precision"] == "fp32")),
        _Comparison("model over model", ("model", "input_size"), _faster_first),
    ]
    if rs.several:
        comparisons.append(_Comparison("run over run", ("run",), _later_over_first(rs.labels)))
    steps = measured(rs)
    by_key = {k: g for k, g in steps.groupby("key", sort=False)}
    out: list[Ratio] = []
    for comp in comparisons:
        keep = [c for c in (*FACTOR_COLUMNS, "run") if c not in comp.varies]
        for _, group in ok.groupby(keep, sort=False, dropna=False):
            if len(group) < 2:
                continue
            for i, j in comp.pick(group):
                ra, rb = ok.loc[i], ok.loc[j]
                ga, gb = by_key.get(ra["key"]), by_key.get(rb["key"])
                if ga is None or gb is None or ga.empty or gb.empty:
                    continue
                interleaved = ra["run"] == rb["run"] and ga["block"].nunique() >= 3
                value, low, high, method = speedup_ci(
                    ga["duration_s"].to_numpy(), gb["duration_s"].to_numpy(),
                    ga["block"].to_numpy() if interleaved else None,
                    gb["block"].to_numpy() if interleaved else None,
                    run_spread=RUN_SPREAD if ra["run"] != rb["run"] else 0.0)
                varying = [f for f in rs.varying if f not in comp.varies]
                blank = {**ra.to_dict(), **dict.fromkeys(comp.varies, "")}
                context = _cell_label(blank, varying) if varying else ""
                out.append(Ratio(comp.kind, _side(ra, comp.varies), _side(rb, comp.varies),
                                 context, str(ra["run"]) if comp.kind != "run over run" else "",
                                 value, low, high, method, str(ra["key"]), str(rb["key"]),
                                 bool(ra["parity_flag"] or rb["parity_flag"])))
    return out


def _side(row: Mapping[str, Any], varies: Sequence[str]) -> str:
    if varies == ("device",):
        return str(row["device"]).upper()
    if varies == ("model", "input_size"):
        return str(row["model"])
    return " ".join(_text(row[v]) for v in varies if _text(row[v]))


# --------------------------------------------------------------------------- drawing


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
    known = list(_KNOWN.get(factor, ()))
    order = known + sorted(v for v in vals if v not in known)
    colours = sns.color_palette(_PALETTES.get(factor, "tab10"), max(len(order), 3))
    if factor == "model":
        colours = sns.color_palette("tab10", 10)
    return {v: colours[order.index(v) % len(colours)] for v in vals}


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig


def _style() -> Any:
    return sns.axes_style("whitegrid")


def _title(fig: Figure, what: str, rs: RunSet, runs: Sequence[str] | None = None) -> str:
    machine = rs.machine() if runs is None or len(runs) != 1 else rs.machine(runs[0])
    title = f"{what}\n{machine}"
    const = _constant_note(rs)
    fig.suptitle(title + (f"\n{const}" if const else ""), fontsize=10.5)
    return title.replace("\n", " — ")


def _constant_note(rs: RunSet) -> str:
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


def _finish_cell_panel(ax: Any, cells: list[str], flagged: set[str], log: bool,
                       quantity: str, unit: str, title: str) -> None:
    """Cell tick labels (parity failures flagged), the value axis and the panel title."""
    _cell_ticks(ax, cells, flagged)
    if log:
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
    ax.set_xlabel(f"{quantity} ({unit}, log scale)" if log else f"{quantity} ({unit})")
    ax.set_title(title, fontsize=10, loc="left")


def _log_axis(axis: Any, suffix: str = "") -> None:
    """Log scale with plain-number ticks (1, 2, 5 × 10^k, denser on short ranges)."""
    axis.set_major_locator(_ReadableLogLocator())
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}{suffix}"))
    axis.set_minor_locator(ticker.NullLocator())


def _spread(values: Iterable[float]) -> float:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], float)
    return float(v.max() / v.min()) if len(v) else 1.0


def _ordered_cells(frame: pd.DataFrame) -> list[str]:
    """Cells in a stable reading order: by model, device, mode, base, engine, batch."""
    cols = [c for c in ("model", "device", "mode", "base", "engine", "precision", "batch_size")
            if c in frame.columns]
    first = frame.sort_values(cols, kind="stable").drop_duplicates("cell")
    return list(first["cell"])


def _modes(frame: pd.DataFrame) -> list[str]:
    order = {"infer": 0, "train": 1}
    return sorted(frame["mode"].dropna().astype(str).unique(), key=lambda m: order.get(m, 9))


_MODE_TITLE = {"infer": "inference", "train": "training"}


def _mode_title(mode: str, rows: pd.DataFrame) -> str:
    return f"{_MODE_TITLE.get(mode, mode)} ({rows['cell'].nunique()} cells)"


def _cell_ticks(ax: Axes, cells: Sequence[str], flagged: set[str]) -> None:
    ax.set_yticks(range(len(cells)))
    ax.set_yticklabels([c + (_FLAG_PARITY if c in flagged else "") for c in cells], fontsize=8)
    for tick, cell in zip(ax.get_yticklabels(), cells, strict=True):
        if cell in flagged:
            tick.set_color("firebrick")
    ax.set_ylim(len(cells) - 0.5, -0.5)


def _dot_panel(ax: Axes, frame: pd.DataFrame, cells: Sequence[str], rs: RunSet, value: str,
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


def _wrap_label(cell: str, width: int = 36) -> str:
    """A cell label broken at its separators so that small-panel titles do not collide."""
    lines: list[str] = []
    for part in cell.split(" · "):
        if lines and len(lines[-1]) + len(part) + 3 <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def _hue_legend(fig: Figure, rs: RunSet, present: Iterable[str], extra: Sequence[Any] = (),
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


def _rows_figure(modes: Sequence[str], counts: Sequence[int], width: float = 9.0,
                 ncols: int = 1) -> tuple[Figure, list[list[Axes]]]:
    heights = [max(c, 1) * 0.42 + 0.9 for c in counts]
    fig = _figure(width, sum(heights) + 1.8)
    with _style():
        grid = fig.subplots(len(modes), ncols, squeeze=False,
                            gridspec_kw={"height_ratios": heights})
    return fig, [list(row) for row in grid]


def step_time_chart(rs: RunSet) -> Chart:
    """Box plots of measured step times per cell, one facet per mode."""
    name = "step_times"
    m = measured(rs)
    if m.empty:
        return Chart(name, "step-time distributions", reason="no measured steps in steps.csv")
    modes = _modes(m)
    counts = [m[m["mode"] == mode]["cell"].nunique() for mode in modes]
    fig, grid = _rows_figure(modes, counts)
    hue = rs.hue
    colours = palette(hue, rs.configs[hue])
    log = _spread(m.groupby("key")["duration_ms"].median()) > LOG_SPREAD
    flagged = set(cell_table(rs).query("parity_flag")["cell"])
    for (ax,), mode in zip(grid, modes, strict=True):
        rows = m[m["mode"] == mode]
        cells = _ordered_cells(rows)
        with warnings.catch_warnings():  # seaborn 0.13 still passes bxp(vert=...)
            warnings.filterwarnings("ignore", message=".*vert: bool was deprecated")
            sns.boxplot(data=rows, x="duration_ms", y="cell", hue=hue, order=cells,
                        palette=colours, ax=ax, orient="h", fliersize=2, linewidth=0.8,
                        width=0.7, log_scale=log, legend=False, saturation=1.0)
        _cell_ticks(ax, cells, flagged)
        if log:
            _log_axis(ax.xaxis)
        ax.set_ylabel("")
        ax.set_xlabel("step time (ms, log scale)" if log else "step time (ms)")
        ax.set_title(_mode_title(mode, rows), fontsize=10, loc="left")
    title = _title(fig, "Step-time distribution of measured steps, per cell", rs)
    _hue_legend(fig, rs, m[hue].astype(str), kind="bar")
    return Chart(name, title, fig)


def throughput_chart(rs: RunSet, table: pd.DataFrame | None = None) -> Chart:
    """Images/s per cell with the 95% CI, one facet per mode."""
    name = "throughput"
    t = cell_table(rs) if table is None else table
    ok = t[(t["status"] == "ok") & t["images_per_s"].notna()]
    if ok.empty:
        return Chart(name, "throughput", reason="no cell with status ok and measured steps")
    modes = _modes(ok)
    counts = [ok[ok["mode"] == mode]["cell"].nunique() for mode in modes]
    fig, grid = _rows_figure(modes, counts)
    log = _spread(ok["images_per_s"]) > LOG_SPREAD
    flagged = set(ok[ok["parity_flag"]]["cell"])
    bars = 0
    for (ax,), mode in zip(grid, modes, strict=True):
        rows = ok[ok["mode"] == mode]
        cells = _ordered_cells(rows)
        bars += _dot_panel(ax, rows, cells, rs, "images_per_s", "images_per_s_ci_low",
                           "images_per_s_ci_high", fmt_number)
        _finish_cell_panel(ax, cells, flagged, log, "throughput", "images/s",
                           _mode_title(mode, rows))
        ax.margins(x=0.15)
    title = _title(fig, "Throughput per cell (median, 95% CI)", rs)
    _hue_legend(fig, rs, ok[rs.hue].astype(str))
    return Chart(name, title, fig, notes=[f"{bars} points"])


def speedup_chart(rs: RunSet, ratios: Sequence[Ratio] | None = None) -> Chart:
    """Forest plot of speed-ups with 95% CIs, grouped by the comparison asked."""
    name = "speedups"
    rr = list(speedups(rs) if ratios is None else ratios)
    if not rr:
        return Chart(name, "speed-ups", reason="no two ok cells differ in only the device, "
                     "base, engine, model or run")
    kinds = [k for k in _KNOWN["comparison"] if any(r.kind == k for r in rr)]
    colours = palette("comparison", kinds)
    ordered = [r for k in kinds for r in rr if r.kind == k]
    fig = _figure(9.5, 0.34 * len(ordered) + 2.4)
    with _style():
        ax = fig.subplots()
    labels = []
    for y, r in enumerate(ordered):
        c = colours[r.kind]
        ax.errorbar([r.value], [y], xerr=[[r.value - r.low], [r.high - r.value]], fmt="o",
                    color=c, capsize=3, markersize=5)
        ax.annotate(f"{r.value:.2f}× ({r.low:.2f}–{r.high:.2f})", (r.high, y), xytext=(5, 0),
                    textcoords="offset points", va="center", fontsize=7, color="0.2")
        where = " · ".join(p for p in (r.context, r.run if rs.several else "") if p)
        labels.append(f"{r.a} over {r.b}" + (f"  [{where}]" if where else "")
                      + (_FLAG_PARITY if r.parity_fail else ""))
    ax.set_yticks(range(len(ordered)))
    ax.set_yticklabels(labels, fontsize=7.5)
    for tick, r in zip(ax.get_yticklabels(), ordered, strict=True):
        if r.parity_fail:
            tick.set_color("firebrick")
    ax.set_ylim(len(ordered) - 0.5, -0.5)
    ax.axvline(1.0, color="0.3", linewidth=1, linestyle="--", zorder=1)
    ax.set_xscale("log")
    _log_axis(ax.xaxis, "×")
    lo = min(min(r.low for r in ordered), 1.0)
    hi = max(max(r.high for r in ordered), 1.0)
    ax.set_xlim(lo / 1.3, hi * 2.2)
    ax.set_xlabel("speed-up of A over B (×, log scale)\n"
                  "median step time of B ÷ median step time of A; > 1 means A is faster")
    handles = [Patch(color=colours[k], label=k) for k in kinds]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5),
               fontsize=8, frameon=False)
    title = _title(fig, "Speed-ups with 95% CI", rs)
    return Chart(name, title, fig, notes=[f"{len(ordered)} ratios"])


def step_timeline_chart(rs: RunSet, max_panels: int = 36) -> Chart:
    """Step time against step number per cell, warm-up shaded: warm-up and drift."""
    name = "step_timeline"
    st = rs.steps.copy()
    if st.empty:
        return Chart(name, "step time along the run", reason="no steps in steps.csv")
    st["duration_ms"] = st["duration_s"] * 1000.0
    cells = _ordered_cells(st)
    shown = cells[:max_panels]
    ncols = min(4, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig = _figure(3.0 * ncols + 0.6, 2.3 * nrows + 1.6)
    with _style():
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
            spans.update(_runs_of(g["phase"].to_numpy() == "warmup"))
        for start, stop in sorted(spans):  # interleaved cells warm up once per block
            ax.axvspan(start - 0.5, stop - 0.5, color="0.85", zorder=0, linewidth=0)
        if _spread(rows["duration_ms"]) > LOG_SPREAD:
            ax.set_yscale("log")
            _log_axis(ax.yaxis)
        ax.set_title(_wrap_label(cell), fontsize=7.5)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("step (warm-up and measured)", fontsize=7)
        ax.set_ylabel("step time (ms)", fontsize=7)
    for ax in list(axes.flat)[len(shown):]:
        ax.remove()
    extra = [Patch(color="0.85", label="warm-up steps (not in statistics)")]
    _hue_legend(fig, rs, st[hue].astype(str), extra, kind="line")
    what = "Step time along each cell's run (warm-up shaded)"
    if len(cells) > len(shown):
        what += f"; first {len(shown)} of {len(cells)} cells"
    title = _title(fig, what, rs)
    return Chart(name, title, fig, notes=[f"{len(shown)} panels"])


def _runs_of(flags: np.ndarray) -> list[tuple[int, int]]:
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
    fig = _figure(13.0, 2.9 * len(runs) + 1.8)
    with _style():
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
    title = _title(fig, "Total power over the run, measured window of each cell shaded",
                   rs, runs)
    return Chart(name, title, fig, notes=[f"{len(runs)} runs"])


def energy_chart(rs: RunSet, table: pd.DataFrame | None = None) -> Chart:
    """Energy per image per cell; low-confidence values drawn hollow and labelled."""
    name = "energy"
    t = cell_table(rs) if table is None else table
    ok = t[(t["status"] == "ok") & t["energy_j_per_image"].notna()]
    ok = ok.assign(energy_mj_per_image=ok["energy_j_per_image"] * 1000.0)
    if ok.empty:
        return Chart(name, "energy per image",
                     reason="configs.csv has no energy_j_per_image (no power samples)")
    modes = _modes(ok)
    counts = [ok[ok["mode"] == mode]["cell"].nunique() for mode in modes]
    fig, grid = _rows_figure(modes, counts)
    log = _spread(ok["energy_mj_per_image"]) > LOG_SPREAD
    flagged = set(ok[ok["parity_flag"]]["cell"])

    def low(r: pd.Series) -> bool:
        return str(r.get("energy_confidence", "")).lower() == "low"

    for (ax,), mode in zip(grid, modes, strict=True):
        rows = ok[ok["mode"] == mode]
        cells = _ordered_cells(rows)
        _dot_panel(ax, rows, cells, rs, "energy_mj_per_image", None, None,
                   lambda v: f"{fmt_number(v)} mJ", hollow=low)
        _finish_cell_panel(ax, cells, flagged, log, "energy per image", "mJ",
                           _mode_title(mode, rows))
        ax.margins(x=0.25)
    extra = [Line2D([], [], marker="o", linestyle="", color="0.3", markerfacecolor="white",
                    label="low confidence: window spans few power samples")]
    _hue_legend(fig, rs, ok[rs.hue].astype(str), extra)
    title = _title(fig, "Energy per image over each cell's measured window", rs)
    return Chart(name, title, fig)


def memory_chart(rs: RunSet, table: pd.DataFrame | None = None) -> Chart:
    """Peak host RSS and peak device memory per cell (MiB), when recorded."""
    name = "memory"
    t = cell_table(rs) if table is None else table
    ok = t[t["status"] == "ok"]
    metrics = [(c, label) for c, label in (
        ("host_rss_peak_bytes", "peak host RSS (MiB)"),
        ("device_mem_peak_bytes", "peak device memory (MiB)")) if ok[c].notna().any()]
    if not metrics:
        return Chart(name, "peak memory", reason="configs.csv has no host_rss_peak_bytes or "
                     "device_mem_peak_bytes values")
    cells = _ordered_cells(ok)
    fig = _figure(5.0 + 3.2 * len(metrics), 0.32 * len(cells) * (1.4 if rs.several else 1)
                  + 2.4)
    with _style():
        axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    hue = rs.hue
    colours = palette(hue, rs.configs[hue])
    flagged = set(ok[ok["parity_flag"]]["cell"])
    for ax, (col, label) in zip(axes, metrics, strict=True):
        rows = ok[ok[col].notna()].assign(mib=lambda f, c=col: f[c] / _MIB)
        sns.barplot(data=rows, x="mib", y="cell", hue=hue, order=cells, palette=colours,
                    ax=ax, orient="h", legend=False, errorbar=None, saturation=1.0)
        if ax is axes[0]:
            _cell_ticks(ax, cells, flagged)
        ax.set_ylabel("")
        ax.set_xlabel(label)
        missing = sorted(set(cells) - set(rows["cell"]))
        if missing and col == "device_mem_peak_bytes":
            ax.set_title("no value for CPU cells (not recorded there)", fontsize=8, loc="left",
                         color="0.4")
    _hue_legend(fig, rs, ok[hue].astype(str), kind="bar")
    title = _title(fig, "Peak memory per cell", rs)
    return Chart(name, title, fig)


def batch_size_chart(rs: RunSet, table: pd.DataFrame | None = None) -> Chart:
    """Throughput against batch size for every series measured at several batch sizes."""
    name = "batch_size"
    t = cell_table(rs) if table is None else table
    ok = t[(t["status"] == "ok") & t["images_per_s"].notna()].copy()
    keep = [c for c in (*FACTOR_COLUMNS, "run") if c != "batch_size"]
    series = [(k, g) for k, g in ok.groupby(keep, sort=False, dropna=False)
              if g["batch_size"].nunique() >= 2]
    if not series:
        return Chart(name, "throughput vs batch size",
                     reason="no cell was measured at more than one batch size")
    fig = _figure(10.5, 5.0)
    with _style():
        ax = fig.subplots()
    varying = [f for f in rs.varying if f != "batch_size"]
    markers = "osD^v<>ph"
    sizes: set[int] = set()
    for n, (_, g) in enumerate(series):
        g = g.sort_values("batch_size")
        first = g.iloc[0]
        colour = palette(rs.hue, rs.configs[rs.hue])[str(first[rs.hue])]
        label = _cell_label(first, varying)
        if rs.several:
            label = f"{label} [{first['run']}]"
        yerr = [g["images_per_s"] - g["images_per_s_ci_low"],
                g["images_per_s_ci_high"] - g["images_per_s"]]
        ax.errorbar(g["batch_size"], g["images_per_s"], yerr=yerr, color=colour,
                    marker=markers[n % len(markers)], capsize=3, label=label)
        sizes.update(int(b) for b in g["batch_size"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(sizes))
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlabel("batch size (images per step, log scale)")
    if _spread(pd.concat([g["images_per_s"] for _, g in series])) > LOG_SPREAD:
        ax.set_yscale("log")
        _log_axis(ax.yaxis)
        ax.set_ylabel("throughput (images/s, log scale)")
    else:
        ax.set_ylabel("throughput (images/s)")
        ax.set_ylim(bottom=0)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    title = _title(fig, "Throughput against batch size (median, 95% CI)", rs)
    return Chart(name, title, fig, notes=[f"{len(series)} series"])


def build_charts(rs: RunSet) -> list[Chart]:
    """Every chart, made or not (with the reason), in reading order."""
    table = cell_table(rs)
    return [
        step_time_chart(rs),
        throughput_chart(rs, table),
        speedup_chart(rs, speedups(rs, table)),
        step_timeline_chart(rs),
        power_chart(rs),
        energy_chart(rs, table),
        memory_chart(rs, table),
        batch_size_chart(rs, table),
    ]


def check_usable(rs: RunSet) -> None:
    """UserError when no cell of the runs finished with status ok (nothing to chart)."""
    if (rs.configs["status"] == "ok").any():
        return
    counts = rs.configs["status"].value_counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no cells"
    reasons = "; ".join(sorted({f"{r['cell']}: {r['reason']}" for r in
                                rs.configs.to_dict("records") if r["reason"]})[:5])
    raise UserError(
        f"results: no cell finished with status ok in {', '.join(rs.labels)} ({summary}); "
        f"nothing to chart. Reasons: {reasons or 'none recorded'}"
    )


def save_charts(charts: Sequence[Chart], out_dir: Path, formats: Sequence[str] = FORMATS
                ) -> list[Path]:
    """Save made charts as ``<name>.<format>`` plus an ``index.md`` listing what was not made."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    lines = ["# Charts", ""]
    for chart in charts:
        if chart.figure is None:
            lines.append(f"- {chart.name}: not made — {chart.reason}")
            continue
        for fmt in formats:
            path = out_dir / f"{chart.name}.{fmt}"
            chart.figure.savefig(path, format=fmt, dpi=DPI, bbox_inches="tight",
                                 pad_inches=0.15)
            paths.append(path)
        lines.append(f"- {chart.name}: {chart.title} ({', '.join(formats)})")
    index = out_dir / "index.md"
    index.write_text("\n".join(lines) + "\n")
    paths.append(index)
    return paths


def write_run_charts(run_dir: Path) -> list[Path]:
    """Charts for one finished run into ``run_dir/charts/``; the orchestrator calls this.

    Missing data never raises: a chart without data is listed as not made in
    ``charts/index.md``, and a run with no ok cell gets only that index.
    """
    out = Path(run_dir) / "charts"
    try:
        rs = load_runs([run_dir])
        check_usable(rs)
    except UserError as exc:
        out.mkdir(parents=True, exist_ok=True)
        index = out / "index.md"
        index.write_text(f"# Charts\n\nNo charts: {exc.message}\n")
        return [index]
    return save_charts(build_charts(rs), out)


# --------------------------------------------------------------------------- CLI


def parse_formats(text: str) -> list[str]:
    """``png,svg`` → ["png", "svg"]; anything else is a UserError."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError.invalid("--format", text, ", ".join(FORMATS) + " (comma-separated)")
    return list(dict.fromkeys(formats))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", type=Path,
                        help="one or more results directories; several are compared side by side")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the charts (default: <first RESULTS_DIR>/charts)")
    parser.add_argument("--format", default="png,svg",
                        help="comma-separated image formats: png, svg (default: png,svg)")


def run_command(args: argparse.Namespace) -> int:
    formats = parse_formats(args.format)
    rs = load_runs(args.results_dirs)
    check_usable(rs)
    out = args.out if args.out is not None else Path(args.results_dirs[0]) / "charts"
    charts = build_charts(rs)
    paths = save_charts(charts, out, formats)
    for chart in charts:
        if chart.made:
            print(f"made      {chart.name}: {chart.title}")
        else:
            print(f"not made  {chart.name}: {chart.reason}")
    print(f"wrote {len(paths)} files to {out}")
    return 0
