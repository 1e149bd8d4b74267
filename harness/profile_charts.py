"""Profiling charts from ``ops.csv``: where each cell's step time goes, top ops, roofline.

Each function returns a `harness.plots.Chart` (figure or the reason it was not
made), like every other chart. Data comes from the files alone (``ops.csv``,
``configs.csv``, ``environment.json``'s ``peak``); TensorFlow is never imported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from harness.plots import DPI, Chart, RunSet, palette
from harness.records import OP_CATEGORIES, read_ops

CATEGORY_COLOURS = {"forward": "#4C72B0", "backward": "#DD8452", "optimizer": "#55A868",
                    "input": "#8172B3", "other": "#A0A0A0"}
TOP_OPS = 8
_MODE_MARKERS = {"infer": "o", "train frozen": "s", "train unfrozen": "D"}
_TYPE_PREFIX = re.compile(r"^_?(MklNative|Mkl|OneDnn|FusedBatchNormEx)?")


def load_ops(rs: RunSet) -> pd.DataFrame:
    """ops.csv of every run, with the run and cell labels of the plot's run set; ok cells."""
    frames = []
    for label, res in zip(rs.labels, rs.results, strict=True):
        ops = read_ops(res.root)
        if len(ops):
            frames.append(ops.assign(run=label))
    if not frames:
        return pd.DataFrame(columns=["run", "config_id", "cell", "category", "op_type",
                                     "self_s_per_step"])
    ops = pd.concat(frames, ignore_index=True)
    ops["config_id"] = ops["config_id"].astype(str)
    ops["key"] = ops["run"] + "/" + ops["config_id"]
    cfg = rs.configs[rs.configs["status"] == "ok"]
    return ops.merge(cfg[["key", "cell"]], on="key", how="inner")


def readable_op_type(op_type: str) -> str:
    """``_MklNativeFusedConv2D`` → ``FusedConv2D``: the oneDNN/MKL kernel prefix dropped."""
    text = re.sub(r"^_(MklNative|Mkl|OneDnn)", "", str(op_type))
    return text or str(op_type)


def _cell_order(rs: RunSet, keys: Sequence[str]) -> list[str]:
    cfg = rs.configs.set_index("key").loc[list(keys)].reset_index()
    cfg["mode_order"] = cfg["mode"].map({"infer": 0, "train": 1}).fillna(2)
    cfg["base_order"] = cfg["base"].map({"": 0, "frozen": 1, "unfrozen": 2}).fillna(3)
    cfg = cfg.sort_values(["model", "mode_order", "base_order", "batch_size", "run"])
    return list(cfg["key"])


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _mode_label(row: pd.Series) -> str:
    return " ".join(p for p in (str(row["mode"]), str(row["base"] or "")) if p and p != "nan")


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def category_chart(rs: RunSet, ops: pd.DataFrame | None = None) -> Chart:
    """Milliseconds per step by op category per cell (stacked), one panel per model (its
    own scale: InceptionV3 and MobileNetV2 differ 10x), frozen next to unfrozen, with the
    measured and traced median step times as ticks, so that a reader sees both the split
    and what it covers."""
    name, title = "op_categories", "Time per step by op category (profiler self time)"
    ops = load_ops(rs) if ops is None else ops
    if ops.empty:
        return Chart(name, title, reason="no ops.csv rows (run with --trace)")
    per_all = ops.groupby(["key", "category"])["self_s_per_step"].sum().unstack(fill_value=0.0)
    cfg = rs.configs.set_index("key")
    trace = rs.steps[rs.steps["phase"] == "trace"].groupby("key")["duration_s"].median()
    keys_all = _cell_order(rs, list(per_all.index))
    models = list(dict.fromkeys(str(cfg.loc[k, "model"]) for k in keys_all))
    counts = [sum(1 for k in keys_all if cfg.loc[k, "model"] == m) for m in models]
    fig = _figure(9.0, 1.0 + sum(0.5 + 0.42 * n for n in counts))
    axes = fig.subplots(len(models), 1, squeeze=False,
                        gridspec_kw={"height_ratios": [0.5 + 0.42 * n for n in counts]})[:, 0]
    drawn: set[str] = set()
    for ax, model in zip(axes, models, strict=True):
        keys = [k for k in keys_all if cfg.loc[k, "model"] == model]
        per = per_all.loc[keys] * 1000.0
        labels = [_mode_label(cfg.loc[k]) + (f" bs{cfg.loc[k, 'batch_size']}"
                                             if "batch_size" in rs.varying else "")
                  + (f" [{cfg.loc[k, 'run']}]" if rs.several else "") for k in keys]
        totals = per.sum(axis=1).to_numpy()
        medians = np.array([float(cfg.loc[k, "step_s_median"]) * 1000.0 for k in keys])
        traced = np.array([float(trace.get(k, np.nan)) * 1000.0 for k in keys])
        right = float(np.nanmax(np.concatenate([totals, medians, traced]))) * 1.22
        y = np.arange(len(keys))
        left = np.zeros(len(keys))
        for cat in OP_CATEGORIES:
            if cat not in per.columns or not per[cat].any():
                continue
            values = per[cat].to_numpy()
            ax.barh(y, values, left=left, color=CATEGORY_COLOURS[cat], height=0.7,
                    label=cat if cat not in drawn else None)
            drawn.add(cat)
            for yi, (lo, v, total) in enumerate(zip(left, values, totals, strict=True)):
                if total > 0 and v / total >= 0.12 and v >= 0.07 * right:
                    ax.text(lo + v / 2, yi, f"{100 * v / total:.0f}%", ha="center",
                            va="center", fontsize=7, color="white")
            left += values
        first = ax is axes[0]
        ax.scatter(medians, y, marker="|", s=300, color="black", zorder=3,
                   label="measured median step" if first else None)
        ax.scatter(traced, y, marker="|", s=300, color="#C44E52", zorder=3,
                   label="traced median step" if first else None)
        for yi, total in enumerate(totals):
            edge = np.nanmax([total, medians[yi], traced[yi]])
            ax.text(edge + right * 0.01, yi, _ms(total), va="center", fontsize=7)
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, right)
        ax.set_title(model, fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("milliseconds per step (sum of op self times over the traced steps)")
    handles, names = [], []
    for ax in axes:
        h, n = ax.get_legend_handles_labels()
        handles += h
        names += n
    fig.legend(handles, names, fontsize=7.5, loc="outside right upper", frameon=False)
    full = f"{title}\n{rs.machine()}"
    fig.suptitle(full, fontsize=10)
    return Chart(name, full.replace("\n", " — "), fig, notes=[f"{len(keys_all)} cells"])


def top_ops_chart(rs: RunSet, ops: pd.DataFrame | None = None, top: int = TOP_OPS) -> Chart:
    """Per model: the op types that take most of a step (self time), one bar per cell."""
    name, title = "top_ops", f"Top {top} op types per model (self time per step)"
    ops = load_ops(rs) if ops is None else ops
    if ops.empty:
        return Chart(name, title, reason="no ops.csv rows (run with --trace)")
    ops = ops.assign(kind=ops["op_type"].map(readable_op_type))
    cfg = rs.configs.set_index("key")
    models = sorted(ops["model"].unique())
    fig = _figure(9.0, sum(1.0 + 0.32 * top for _ in models) + 0.6)
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    for ax, model in zip(axes, models, strict=True):
        part = ops[ops["model"] == model]
        per = part.groupby(["kind", "key"])["self_s_per_step"].sum().unstack(fill_value=0.0)
        per = per.loc[per.max(axis=1).sort_values(ascending=False).index[:top]] * 1000.0
        keys = _cell_order(rs, list(per.columns))
        colours = palette("cell", [cfg.loc[k, "cell"] for k in keys])
        height = 0.8 / len(keys)
        y = np.arange(len(per.index))
        for i, key in enumerate(keys):
            label = _mode_label(cfg.loc[key]) or str(cfg.loc[key, "cell"])
            ax.barh(y + i * height - 0.4 + height / 2, per[key].to_numpy(), height=height,
                    color=colours[cfg.loc[key, "cell"]], label=label)
        ax.set_yticks(y, list(per.index), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(model, fontsize=9, loc="left")
        ax.set_xlabel("ms per step", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", frameon=False)
    full = f"{title}\n{rs.machine()}"
    fig.suptitle(full, fontsize=10)
    return Chart(name, full.replace("\n", " — "), fig, notes=[f"{len(models)} models"])


def peaks(rs: RunSet) -> dict[str, dict[str, Any]]:
    """``device -> peak probe`` from each run's environment.json (ok probes only)."""
    out: dict[str, dict[str, Any]] = {}
    for res in rs.results:
        for device, peak in res.environment.peak.items():
            if peak.status == "ok":
                out.setdefault(device, peak.to_json())
    return out


def roofline_chart(rs: RunSet) -> Chart:
    """Each cell at (FLOPs/byte, achieved FLOP/s) under the peak probe's two ceilings."""
    name, title = "roofline", "Roofline: achieved FLOP/s against arithmetic intensity"
    cfg = rs.configs[(rs.configs["status"] == "ok")].copy()
    for col in ("flops_per_step", "bytes_per_step", "achieved_flops_per_s"):
        cfg[col] = pd.to_numeric(cfg[col], errors="coerce")
    cfg = cfg.dropna(subset=["flops_per_step", "bytes_per_step", "achieved_flops_per_s"])
    cfg = cfg[(cfg["bytes_per_step"] > 0) & (cfg["achieved_flops_per_s"] > 0)]
    if cfg.empty:
        return Chart(name, title, reason="no cell with FLOPs and bytes per step (run with "
                     "--trace on a tf/xla engine)")
    probe = peaks(rs)
    cfg["intensity"] = cfg["flops_per_step"] / cfg["bytes_per_step"]
    fig = _figure(8.0, 5.2)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo = cfg["intensity"].min() / 4
    hi = cfg["intensity"].max() * 4
    notes = []
    for device, peak in probe.items():
        if device not in set(cfg["device"]):
            continue
        flops, bw = float(peak["peak_flops_per_s"]), float(peak["peak_bytes_per_s"])
        lo, hi = min(lo, flops / bw / 8), max(hi, flops / bw * 8)
        xs = np.geomspace(lo, hi, 200)
        ax.plot(xs, np.minimum(flops, xs * bw), color="black", lw=1.2)
        ax.annotate(f"{device}: {flops / 1e9:.1f} GFLOP/s (fp32 matmul)", (hi, flops),
                    ha="right", va="bottom", fontsize=7.5)
        ax.annotate(f"{bw / 1e9:.1f} GB/s (copy)", (lo * 1.5, lo * 1.5 * bw),
                    xytext=(-12, 14), textcoords="offset points", ha="left", va="bottom",
                    fontsize=7.5)
    if not probe:
        notes.append("no peak probe in environment.json: ceilings not drawn")
    colours = palette("model", cfg["model"])
    cfg = cfg.sort_values("achieved_flops_per_s")
    for i, (_, row) in enumerate(cfg.iterrows()):
        mode = _mode_label(row)
        ax.scatter(row["intensity"], row["achieved_flops_per_s"], s=45, zorder=3,
                   color=colours[str(row["model"])], marker=_MODE_MARKERS.get(mode, "o"),
                   edgecolor="black", linewidth=0.5)
        ax.annotate(f"{mode} {row['achieved_flops_per_s'] / 1e9:.2g} GFLOP/s",
                    (row["intensity"], row["achieved_flops_per_s"]),
                    xytext=(7, 8 * (i % 3) - 8), textcoords="offset points", fontsize=7)
    top = max((float(p["peak_flops_per_s"]) for d, p in probe.items()
               if d in set(cfg["device"])), default=None)
    if top is not None and (cfg["achieved_flops_per_s"] > top).any():
        notes.append("cells above the FLOP/s ceiling: the probe ran at a busier moment "
                     "than they did (a shared machine); read the ceiling as a lower bound")
        ax.text(0.01, 0.99, "above the ceiling: the probe ran at a busier moment\n"
                "(read it as a lower bound)", transform=ax.transAxes, va="top",
                fontsize=7, color="#C44E52")
    handles = [Line2D([], [], ls="", marker="o", color=c, label=m) for m, c in colours.items()]
    handles += [Line2D([], [], ls="", marker=mk, color="grey", label=m)
                for m, mk in _MODE_MARKERS.items() if m in {_mode_label(r) for _, r in
                                                           cfg.iterrows()}]
    ax.legend(handles=handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    ax.set_xlim(lo, hi)
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / 1e9:g} G"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of op input+output tensors)")
    ax.set_ylabel("achieved FLOP/s (graph FLOPs per step / median step time; G = 1e9)")
    ax.grid(True, which="both", alpha=0.25)
    full = f"{title}\n{rs.machine()}"
    fig.suptitle(full, fontsize=10)
    return Chart(name, full.replace("\n", " — "), fig, notes=notes)


def traced(rs: RunSet) -> bool:
    """Whether any run of the set asked for traces (a ``trace`` status on some cell)."""
    return bool("trace" in rs.configs and rs.configs["trace"].notna().any())


def profile_charts(rs: RunSet) -> list[Chart]:
    """The profiling charts in reading order (the plot command's hook); none for runs that
    were not traced, so untraced runs list no unmade profiling charts."""
    if not traced(rs):
        return []
    ops = load_ops(rs)
    return [category_chart(rs, ops), top_ops_chart(rs, ops), roofline_chart(rs)]
