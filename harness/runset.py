"""Several results directories read as one: the run-set model that charts and reports draw.

`load_runs` merges results directories (each read by `records.load_results`)
into a `RunSet`: one row per cell with a ``run`` label and a readable ``cell``
label, the steps and samples with the same labels. `cell_table` gives each cell
its statistics recomputed from ``steps.csv``. `cell_label` is the one cell
labeller of the project (charts, report and compare all use it). No
TensorFlow, no drawing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import stats
from harness.errors import UserError
from harness.records import FACTOR_COLUMNS, Results, flag, host_results, load_results, text

# Factor values left out of a full (path-style) label because almost every cell has them.
_DEFAULTS = {"engine": "tf", "precision": "fp32", "weights": "random", "data": "synthetic"}


def cell_label(row: Mapping[str, Any], varying: Sequence[str] | None = None) -> str:
    """A readable name for a cell from its factors.

    With ``varying`` (the factors that differ between the cells shown), only
    those are named: ``mobilenet_v2 · gpu · infer · tf fp32 · bs8``. Without it
    the label names the cell on its own, defaults left out, as a path:
    ``mobilenet_v2/cpu/train/frozen/bs16`` (what ``compare --pair`` accepts).
    """
    f = {c: text(row.get(c)) for c in FACTOR_COLUMNS}
    if varying is None:
        parts = [f["model"], f["device"], f["mode"], f["base"]]
        parts += [f[c] for c in ("engine", "precision") if f[c] not in (_DEFAULTS[c], "")]
        parts.append(f"bs{f['batch_size']}")
        parts += [f"{'w' if c == 'weights' else c}={f[c]}" for c in ("weights", "data")
                  if f[c] not in (_DEFAULTS[c], "")]
        if f["strategy"] not in ("none", ""):
            parts.append(f["strategy"])
        return "/".join(p for p in parts if p)
    groups: list[str] = []
    if "model" in varying:
        groups.append(f["model"])
    if "device" in varying:
        groups.append(f["device"])
    if "mode" in varying or "base" in varying:
        groups.append(" ".join(p for p in (f["mode"], f["base"]) if p))
    if "engine" in varying or "precision" in varying:
        groups.append(" ".join(p for p in (f["engine"], f["precision"]) if p))
    if "batch_size" in varying:
        groups.append(f"bs{f['batch_size']}")
    if "learning_rate" in varying and f["learning_rate"]:
        groups.append(f"lr {float(f['learning_rate']):g}")
    if "strategy" in varying:
        groups.append(f["strategy"])
    for extra in ("weights", "data", "input_size"):
        if extra in varying:
            groups.append(f"{extra} {Path(f[extra]).name}")
    return " · ".join(p for p in groups if p) or f["model"]


@dataclass
class RunSet:
    """One or several results directories merged for charts and reports.

    ``configs`` has one row per cell with a ``run`` label (host, or run id when
    hosts repeat), a readable ``cell`` label built from the factors that vary and
    a ``key`` (``run/config_id``); ``steps`` (ok cells only) and ``samples``
    carry the same ``run`` and ``key`` columns.
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
        """``host (board or CPU, JetPack, power mode)``, or ``a vs b`` for several runs."""
        if label is None:
            if self.several:
                return " vs ".join(self.labels)
            label = self.labels[0]
        env = self.results[self.labels.index(label)].environment
        host = env.host or label
        name = host if host == label else f"{label}: {host}"
        detail = env.machine_summary()
        return f"{name} ({detail})" if detail else name

    @property
    def hue(self) -> str:
        """The factor colours stand for: the run when several are compared, else the model."""
        return "run" if self.several else "model"


def _run_labels(results: Sequence[Results]) -> list[str]:
    """Host names when they tell runs apart, else short ``host MM-DD HH:MM`` labels from
    the start time (seconds added if needed), else run ids, else directory paths."""
    hosts = [r.environment.host or r.root.name for r in results]
    if len(set(hosts)) == len(hosts):
        return hosts
    for stamp in ("%m-%d %H:%M", "%m-%d %H:%M:%S"):
        short = [_short_label(h, r.environment.started_at_utc, stamp)
                 for h, r in zip(hosts, results, strict=True)]
        if None not in short and len(set(short)) == len(short):
            return [s for s in short if s is not None]
    ids = [r.run_id for r in results]
    if len(set(ids)) == len(ids):
        return ids
    both = [f"{i} {h}" for i, h in zip(ids, hosts, strict=True)]  # fleet runs, split by host
    if len(set(both)) == len(both):
        return both
    return [str(r.root.resolve()) for r in results]


def _short_label(host: str, started: str | None, stamp: str) -> str | None:
    if not started:
        return None
    try:
        when = datetime.fromisoformat(started)
    except ValueError:
        return None
    return f"{host.split('.')[0]} {when:{stamp}}"


def load_runs(dirs: Sequence[Path | str]) -> RunSet:
    """Load and merge results directories (UserError for anything that is not one)."""
    if not dirs:
        raise UserError("RESULTS_DIR: none given; allowed: one or more results directories")
    # a fleet run: one entry per host (records.host_results), so hosts sit side by side
    results = [h for d in dirs for h in host_results(load_results(Path(d)))]
    labels = _run_labels(results)
    cfg = pd.concat([r.configs.assign(run=label) for label, r in
                     zip(labels, results, strict=True)], ignore_index=True)
    cfg["reason"] = cfg["reason"].map(text)
    cfg["status"] = cfg["status"].map(text)
    empty = cfg[cfg["status"] == ""]
    if len(empty):
        raise UserError.invalid(f"configs.csv of {empty['run'].iloc[0]}: status of "
                                f"{text(empty['config_id'].iloc[0])}", "",
                                "ok, skipped, failed, oom, timeout")
    cfg["config_id"] = cfg["config_id"].map(text)
    varying = [f for f in FACTOR_COLUMNS if cfg[f].map(text).nunique() > 1]
    if "input_size" in varying and cfg.groupby("model")["input_size"].nunique().max() <= 1:
        varying.remove("input_size")  # each model at its own size: the model says it
    if "learning_rate" in varying and cfg["learning_rate"].map(text).replace("", None) \
            .dropna().nunique() <= 1:
        varying.remove("learning_rate")  # one rate for every training cell (inference: none)
    constant = {f: text(cfg[f].iloc[0]) for f in FACTOR_COLUMNS
                if f not in varying and f != "input_size" and len(cfg) and text(cfg[f].iloc[0])
                and not (f == "strategy" and text(cfg[f].iloc[0]) == "none")}  # the default
    cfg["cell"] = [cell_label(row, varying) for row in cfg.to_dict("records")]
    cfg["key"] = cfg["run"] + "/" + cfg["config_id"]
    st = pd.concat([r.steps.assign(run=label) for label, r in
                    zip(labels, results, strict=True)], ignore_index=True)
    sa = pd.concat([r.samples.assign(run=label) for label, r in
                    zip(labels, results, strict=True)], ignore_index=True)
    for frame in (st, sa):
        frame["config_id"] = frame["config_id"].map(text)
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
    CI. ``n_steps`` counts the measure steps; ``parity_flag`` is True where the
    cell's parity check failed. Cells without steps keep the summary columns of
    ``configs.csv``.
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
        out["parity_flag"] = flag(row.get("parity_ok")) is False
        rows.append(out)
    return pd.DataFrame(rows)


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
