"""Accuracy charts for fit-mode cells, as `harness.plots.Chart` objects.

- ``val_accuracy``: validation accuracy against training steps and against
  training seconds (evaluation time excluded), one line per cell; colour is the
  base, line style the learning rate.
- ``time_to_target``: training seconds until the first evaluation at or above
  the target, per cell (cached cells add their cache build as a hatched part).
- ``learning_rate``: final validation accuracy and steps to target per learning
  rate, one line per model and base.

Built from the files alone (`harness.plots.RunSet`); no TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from harness.accuracy_report import eval_curves, fit_cells
from harness.plots import DPI, Chart, RunSet

CHART_NAMES = ("val_accuracy", "time_to_target", "learning_rate")
CHART_HELP = {
    "val_accuracy": "Validation accuracy at each evaluation, against training steps (left) "
                    "and training seconds (right; evaluations excluded). Colour: base; line "
                    "style: learning rate.",
    "time_to_target": "Training seconds until the first evaluation at or above the target "
                      "accuracy; a cached cell's hatched part is the one-off cache build.",
    "learning_rate": "Final validation accuracy and steps to the target per learning rate; "
                     "a missing point on the right is a target never reached.",
}
_BASE_COLOURS = {"frozen": "#1f77b4", "cached": "#2ca02c", "unfrozen": "#d62728"}


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _curves(rs: RunSet) -> pd.DataFrame:
    curves = eval_curves(rs.steps)
    if curves.empty:
        return curves
    cfg = rs.configs[["key", "cell", "model", "base", "learning_rate"]]
    out = curves.merge(cfg, on="key", how="inner")
    out["learning rate"] = out["learning_rate"].map(lambda v: f"{float(v):g}")
    return out


def val_accuracy_chart(rs: RunSet) -> Chart:
    name = "val_accuracy"
    curves = _curves(rs)
    if curves.empty:
        return Chart(name, "validation accuracy", reason="no fit-mode evaluations in steps.csv")
    fig = _figure(11.0, 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    bases = list(dict.fromkeys(curves["base"]))
    colours = {b: _BASE_COLOURS.get(b, "#7f7f7f") for b in bases}
    with sns.axes_style("whitegrid"):
        for ax, x, label in ((axes[0], "steps_done", "training steps"),
                             (axes[1], "train_s", "training time (s, evaluations excluded)")):
            sns.lineplot(data=curves, x=x, y="val_accuracy", hue="base", style="learning rate",
                         units="key", estimator=None, palette=colours, marker="o",
                         markersize=4, ax=ax, legend=ax is axes[1])
            ax.set_xlabel(label)
            ax.set_ylabel("validation accuracy")
            ax.set_ylim(0, 1.02)
            ax.set_xlim(left=0)
            ax.grid(True, alpha=0.3)
    if axes[1].get_legend() is not None:
        sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                        fontsize=7.5)
    models = ", ".join(dict.fromkeys(curves["model"].astype(str)))
    title = f"Validation accuracy during training ({models}) — {rs.machine()}"
    fig.suptitle(title, fontsize=10.5)
    return Chart(name, title, fig, notes=[f"{curves['key'].nunique()} cells"])


def time_to_target_chart(rs: RunSet) -> Chart:
    name = "time_to_target"
    fit = fit_cells(rs.configs)
    if fit.empty:
        return Chart(name, "time to target", reason="no fit-mode cells")
    reached = fit[fit["target_reached"].astype(str).str.lower() == "true"].copy()
    if reached.empty:
        return Chart(name, "time to target", reason="no fit cell reached its target accuracy")
    reached = reached.sort_values("time_to_target_s")
    y = np.arange(len(reached))
    fig = _figure(9.0, 1.2 + 0.35 * len(reached))
    ax = fig.subplots()
    colours = [_BASE_COLOURS.get(str(b), "#7f7f7f") for b in reached["base"]]
    train = reached["time_to_target_s"].astype(float).to_numpy()
    ax.barh(y, train, color=colours)
    build = pd.to_numeric(reached.get("cache_build_s"), errors="coerce").fillna(0).to_numpy()
    ax.barh(y, build, left=train, color=colours, alpha=0.35, hatch="//")
    labels = [f"{c} · lr {float(lr):g}" for c, lr in zip(reached["cell"],
                                                        reached["learning_rate"], strict=True)]
    ax.set_yticks(y, labels, fontsize=7.5)
    ax.invert_yaxis()
    for yi, (t, steps) in enumerate(zip(train, reached["steps_to_target"], strict=True)):
        ax.annotate(f"{t:.2f} s, {int(steps)} steps", (t, yi), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=7)
    target = float(reached["target_accuracy"].iloc[0])
    ax.set_xlabel(f"training time to {target * 100:.0f}% validation accuracy (s)")
    title = f"Time to target accuracy — {rs.machine()}"
    fig.suptitle(title, fontsize=10.5)
    return Chart(name, title, fig, notes=[f"{len(reached)} of {len(fit)} cells reached it"])


def learning_rate_chart(rs: RunSet) -> Chart:
    name = "learning_rate"
    fit = fit_cells(rs.configs)
    if fit.empty or fit["learning_rate"].nunique() < 2:
        return Chart(name, "learning rates", reason="fewer than two learning rates in fit cells")
    frame = fit.assign(series=fit["model"].astype(str) + " " + fit["base"].astype(str),
                       learning_rate=fit["learning_rate"].astype(float))
    frame["final"] = pd.to_numeric(frame["val_accuracy_final"], errors="coerce")
    frame["steps"] = pd.to_numeric(frame["steps_to_target"], errors="coerce")
    fig = _figure(11.0, 4.0)
    axes = fig.subplots(1, 2)
    with sns.axes_style("whitegrid"):
        sns.lineplot(data=frame, x="learning_rate", y="final", hue="series", marker="o",
                     ax=axes[0], legend=False)
        sns.lineplot(data=frame.dropna(subset=["steps"]), x="learning_rate", y="steps",
                     hue="series", marker="o", ax=axes[1])
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("final validation accuracy")
    axes[0].set_ylim(0, 1.02)
    axes[1].set_ylabel("training steps to target")
    if axes[1].get_legend() is not None:
        sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                        fontsize=7.5)
    title = f"Learning rate against accuracy and steps to target — {rs.machine()}"
    fig.suptitle(title, fontsize=10.5)
    return Chart(name, title, fig)


def accuracy_charts(rs: RunSet) -> list[Chart]:
    """The accuracy charts, made or not; empty when the runs hold no fit cells (so runs
    without fit mode get no 'not made' noise)."""
    if fit_cells(rs.configs).empty:
        return []
    return [val_accuracy_chart(rs), time_to_target_chart(rs), learning_rate_chart(rs)]
