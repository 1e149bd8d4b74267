"""Speed-ups between cells: the comparisons people ask about, each with its 95% CI.

For every pair of ok cells that differ in one factor only (GPU over CPU, frozen
over unfrozen, an engine over plain TF fp32, one model over another, a later
run over the first), the ratio of median step times with its CI from
`stats.step_ratio_ci`, the one ratio rule of the project.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import stats
from harness.records import FACTOR_COLUMNS, number, text
from harness.runset import RunSet, cell_label, cell_table, measured

# Between-run factor assumed when comparing the same cell across two runs (see
# docs/regression.md: one run cannot see its own machine factor).
RUN_SPREAD = 0.02
COMPARISON_KINDS = ("GPU over CPU", "frozen over unfrozen", "engine over tf fp32",
                    "model over model", "run over run")


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
    """Speed-up of A over B, median(B)/median(A), with its CI and the rule used.

    A thin view of `stats.step_ratio_ci` (paired over interleaved blocks when
    both block lists are given, else unpaired from chunk medians with the
    assumed between-run ``run_spread``; 0 for two cells of one run). Raises
    `stats.TooFewSteps` for cells with too few steps for a within-run error.
    """
    blocks = None if blocks_a is None or blocks_b is None else (blocks_b, blocks_a)
    r = stats.step_ratio_ci(b, [a], blocks=blocks, run_spread=run_spread,
                            confidence=confidence)
    return r.ratio, r.low, r.high, r.method


def interleaved(row: Mapping[str, Any]) -> bool:
    """True only where configs.csv says the cell's blocks alternated with other cells."""
    return text(row.get("block_order")) == "interleaved" and (number(row.get("blocks")) or 0) >= 2


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
                paired = ra["run"] == rb["run"] and interleaved(ra) and interleaved(rb)
                try:
                    value, low, high, method = speedup_ci(
                        ga["duration_s"].to_numpy(), gb["duration_s"].to_numpy(),
                        ga["block"].to_numpy() if paired else None,
                        gb["block"].to_numpy() if paired else None,
                        run_spread=RUN_SPREAD if ra["run"] != rb["run"] else 0.0)
                except stats.TooFewSteps:
                    continue  # no honest CI from so few steps; the cell tables still show it
                varying = [f for f in rs.varying if f not in comp.varies]
                blank = {**ra.to_dict(), **dict.fromkeys(comp.varies, "")}
                context = cell_label(blank, varying) if varying else ""
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
    return " ".join(text(row[v]) for v in varies if text(row[v]))


