"""Accuracy analysis from the files alone: evaluation curves and the report's findings.

Fit-mode cells write ``phase=eval`` rows (validation loss and accuracy after a
number of training steps) and configs.csv columns such as
``val_accuracy_final`` and ``time_to_target_s``. This module turns them into
the curves the accuracy charts draw and the statements the report makes about
the homework's questions: which base reaches the target first in training
time, what each learning rate does to accuracy and steps, and what a cached
step costs next to a frozen one on each device. No TensorFlow, no plotting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

FIT_MODE = "fit"


def fit_cells(configs: pd.DataFrame) -> pd.DataFrame:
    """The fit-mode rows of a configs frame (any status)."""
    if "mode" not in configs:
        return configs.iloc[0:0]
    return configs[configs["mode"] == FIT_MODE]


def eval_curves(steps: pd.DataFrame, key: str = "key") -> pd.DataFrame:
    """One row per evaluation: the cell ``key``, training steps done (``steps_done``),
    training seconds so far (``train_s``: step durations plus input waits, evaluations
    excluded) and ``val_accuracy``/``val_loss``."""
    cols = [key, "steps_done", "train_s", "val_accuracy", "val_loss"]
    if steps.empty or "val_accuracy" not in steps:
        return pd.DataFrame(columns=cols)
    out = []
    for k, g in steps.groupby(key, sort=False):
        g = g.sort_values(["step", "start_s"])
        train = g[g["phase"] != "eval"]
        if not (g["phase"] == "eval").any():
            continue
        elapsed = (train["duration_s"].astype(float) + train["input_wait_s"].fillna(0)
                   .astype(float)).cumsum()
        by_step = dict(zip(train["step"].astype(int), elapsed, strict=True))
        for r in g[g["phase"] == "eval"].to_dict("records"):
            step = int(r["step"])
            out.append({key: k, "steps_done": step + 1, "train_s": by_step.get(step, np.nan),
                        "val_accuracy": float(r["val_accuracy"]),
                        "val_loss": float(r["val_loss"])})
    return pd.DataFrame(out, columns=cols)


def _pct(v: Any) -> str:
    return f"{float(v) * 100:.1f}%"


def _lr(v: Any) -> str:
    return f"{float(v):g}"


def _finite(v: Any) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


def _group_label(row: dict[str, Any], keys: Sequence[str]) -> str:
    return " ".join(str(row[k]) for k in keys if str(row.get(k, "")) not in ("", "nan"))


def findings(configs: pd.DataFrame) -> list[str]:
    """Statements about the fit cells, each backed by the numbers it quotes."""
    fit = fit_cells(configs)
    if fit.empty:
        return []
    out: list[str] = []
    out += _target_findings(fit)
    out += _learning_rate_findings(fit)
    out += _cached_findings(configs)
    diverged = fit[fit["reason"].astype(str).str.startswith("loss diverged")]
    for r in diverged.to_dict("records"):
        out.append(f"{r['model']} {r['base']} at learning rate {_lr(r['learning_rate'])}: "
                   f"{r['reason']} (recorded as failed; its steps are kept).")
    return out


def _target_findings(fit: pd.DataFrame) -> list[str]:
    out = []
    ok = fit[fit["status"] == "ok"]
    context = ["model", "device", "learning_rate", "batch_size", "data"]
    for keys, g in ok.groupby(context, sort=False, dropna=False):
        if g["base"].nunique() < 2:
            continue
        target = _pct(g["target_accuracy"].iloc[0])
        where = _group_label(dict(zip(context, keys, strict=True)), ["model", "device"])
        where += f", learning rate {_lr(keys[2])}"
        reached = g[g["target_reached"].astype(str).str.lower() == "true"]
        if reached.empty:
            out.append(f"{where}: no base reached the {target} validation target "
                       f"(best {_pct(g['val_accuracy_best'].max())}).")
            continue
        order = reached.sort_values("time_to_target_s")
        parts = []
        for r in order.to_dict("records"):
            part = (f"{r['base']} {float(r['time_to_target_s']):.2f} s "
                    f"({int(r['steps_to_target'])} steps")
            if r["base"] == "cached" and _finite(r.get("cache_build_s")):
                part += f", plus {float(r['cache_build_s']):.2f} s to build the cache"
            parts.append(part + ")")
        missing = sorted(set(g["base"]) - set(reached["base"]))
        tail = f"; not reached: {', '.join(missing)}" if missing else ""
        out.append(f"{where}: {order.iloc[0]['base']} reaches {target} validation accuracy "
                   f"first in training time — " + ", ".join(parts) + tail + ".")
    return out


def _learning_rate_findings(fit: pd.DataFrame) -> list[str]:
    out = []
    context = ["model", "device", "base", "batch_size", "data"]
    for keys, g in fit.groupby(context, sort=False, dropna=False):
        if g["learning_rate"].nunique() < 2:
            continue
        where = _group_label(dict(zip(context, keys, strict=True)), ["model", "device", "base"])
        parts = []
        for r in g.sort_values("learning_rate").to_dict("records"):
            if r["status"] != "ok":
                parts.append(f"{_lr(r['learning_rate'])}: {r['status']} ({r['reason']})")
                continue
            steps = (f"target after {int(r['steps_to_target'])} steps"
                     if _finite(r.get("steps_to_target")) else "target not reached")
            median = (f", median step {float(r['step_s_median']) * 1e3:.2f} ms"
                      if _finite(r.get("step_s_median")) else "")
            parts.append(f"{_lr(r['learning_rate'])}: final {_pct(r['val_accuracy_final'])}, "
                         f"{steps}{median}")
        out.append(f"{where}, by learning rate — " + "; ".join(parts) + ".")
    return out


def _cached_findings(configs: pd.DataFrame) -> list[str]:
    """Median step time of cached over frozen, for cells alike in everything else."""
    out = []
    ok = configs[(configs["status"] == "ok") & configs["base"].isin(["cached", "frozen"])]
    context = ["model", "device", "mode", "learning_rate", "batch_size", "data"]
    if "run" in ok:
        context = ["run", *context]
    for keys, g in ok.groupby(context, sort=False, dropna=False):
        bases = dict(zip(g["base"], g["step_s_median"], strict=False))
        if not {"cached", "frozen"} <= set(bases) or not all(_finite(v) for v in bases.values()):
            continue
        row = dict(zip(context, keys, strict=True))
        cached, frozen = float(bases["cached"]), float(bases["frozen"])
        out.append(f"{row['model']} on {str(row['device']).upper()} ({row['mode']}): a cached "
                   f"step (head only) takes {cached * 1e3:.2f} ms, a frozen step "
                   f"{frozen * 1e3:.2f} ms — {frozen / cached:.1f}x (median step times).")
    return out
