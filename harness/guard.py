"""Guards against false alarms from a busy or drifting machine (pure decisions).

Evidence per run of a cell: the other processes' CPU use during it (from
`harness.load`, recorded in configs.csv) and a level shift in its step times
(`harness.drift`). `guard_ci` turns that evidence into

* a wider CI: extra log-scale variance for each run whose neighbours used
  part of the machine (``(LOAD_SPREAD · other cores / cores)²``: a machine
  fully used by others is taken to move a run's median by ±25% (1 sd), the
  size of the 1.24× seen between two identical runs on this 2-core machine
  under load); with several baseline runs
  only the candidate's load *beyond* the baselines' counts, since their spread
  already holds their own load) and for each level shift (``(ln(1+shift)/2)²``:
  the run's median may sit anywhere between its two levels);
* a reason that turns a REGRESSION or IMPROVEMENT into INCONCLUSIVE: with a
  single baseline (run-to-run spread assumed, not measured) when any run was
  busy or drifted, and with several baselines when the candidate was busier
  than every baseline or drifted.

`settle` applies the reasons after the verdicts are set. An A/A pair of runs on
a loaded machine therefore never reads REGRESSION with a single baseline; a
quiet pair keeps the unguarded rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from harness import stats
from harness.drift import LevelShift, level_shift
from harness.load import BUSY_FRACTION
from harness.records import Results

LOAD_SPREAD = 0.25  # log-scale sd of a run's factor per unit share of cores used by others


@dataclass(frozen=True)
class RunEvidence:
    """What is known about the machine during one run of one cell."""

    where: str  # "the candidate", "baseline run 2"
    other_cpu_cores: float | None  # None: not recorded (older results)
    cpu_count: int | None
    shift: LevelShift | None = None

    @property
    def other_fraction(self) -> float | None:
        if self.other_cpu_cores is None or not self.cpu_count:
            return None
        return self.other_cpu_cores / self.cpu_count

    @property
    def busy(self) -> bool:
        frac = self.other_fraction
        return frac is not None and frac >= BUSY_FRACTION

    def busy_text(self) -> str:
        return (f"machine busy: other processes used {self.other_cpu_cores:.2g} of "
                f"{self.cpu_count} cores during {self.where}")


def evidence(where: str, other_cpu_cores: float | None, cpu_count: int | None,
             values: Sequence[float] | None = None) -> RunEvidence:
    """Evidence for one run; ``values`` are its time-ordered step times (for drift)."""
    shift = level_shift(values) if values is not None and len(values) else None
    cores = other_cpu_cores if other_cpu_cores is not None and math.isfinite(
        other_cpu_cores) else None
    return RunEvidence(where, cores, cpu_count, shift)


@dataclass(frozen=True)
class Guarded:
    """A CI after the guard: possibly wider, with reasons that block a firm verdict."""

    ci: stats.RatioCI
    reasons: list[str] = field(default_factory=list)
    widened_by: float = 0.0  # extra log-scale SE added in quadrature
    notes: list[str] = field(default_factory=list)


def guard_ci(ci: stats.RatioCI, spread_estimated: bool, baselines: Sequence[RunEvidence],
             candidate: RunEvidence) -> Guarded:
    """Widen ``ci`` for load and drift, and give the reasons a firm verdict is not allowed."""
    extra = 0.0
    reasons: list[str] = []
    notes: list[str] = []
    runs = [*baselines, candidate]
    if spread_estimated:
        base_fracs = [b.other_fraction for b in baselines if b.other_fraction is not None]
        cand = candidate.other_fraction
        if cand is not None and base_fracs:
            excess = max(0.0, cand - max(base_fracs))
            extra += (LOAD_SPREAD * excess) ** 2
            if excess >= BUSY_FRACTION:
                reasons.append(candidate.busy_text() + " (more than during any baseline run)")
    else:
        for run in runs:
            frac = run.other_fraction
            if frac is None:
                continue
            extra += (LOAD_SPREAD * frac) ** 2
            if run.busy:
                reasons.append(run.busy_text())
    recorded = [r.other_fraction is not None for r in runs]
    if any(recorded) and not all(recorded):
        notes.append("machine load not recorded for every run; no load guard for those")
    for run in runs if not spread_estimated else [candidate]:
        if run.shift is not None and run.shift.detected:
            extra += (run.shift.log_shift / 2) ** 2
            reasons.append(run.shift.describe(run.where))
    if extra <= 0:
        return Guarded(ci, reasons, 0.0, notes)
    se = math.sqrt(ci.log_se ** 2 + extra)
    wider = stats.log_ratio_ci(ci.log_ratio, se, ci.dof, ci.confidence)
    return Guarded(replace(wider), reasons, math.sqrt(extra), notes)


def settle(verdict: str, guarded: Guarded) -> tuple[str, str]:
    """The verdict after the guard and the note that says why (empty when unchanged)."""
    widened = (f"CI widened by {guarded.widened_by:.1%} for load/drift"
               if guarded.widened_by > 0 else "")
    if verdict in ("REGRESSION", "IMPROVEMENT") and guarded.reasons:
        return "INCONCLUSIVE", (f"{verdict} withheld: " + "; ".join(guarded.reasons)
                                + "; rerun on a quiet machine or use tfbench ab")
    if guarded.reasons and verdict == "INCONCLUSIVE":
        return verdict, "; ".join([*guarded.reasons, widened] if widened else guarded.reasons)
    return verdict, widened


def run_evidence(results: Results, config_id: str, values: Sequence[float],
                 where: str) -> RunEvidence:
    """Evidence for one cell of a results directory (configs.csv load columns, its steps)."""
    rows = results.configs[results.configs["config_id"].astype(str) == config_id]
    cores: float | None = None
    if "other_cpu_cores" in rows.columns and len(rows):
        value = rows["other_cpu_cores"].iloc[0]
        cores = float(value) if isinstance(value, (int, float)) and math.isfinite(value) \
            else None
    return evidence(where, cores, results.environment.cpu_count, values)


class _CellLike(Protocol):
    @property
    def config_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def values(self) -> tuple[float, ...]: ...


class _Verdicted(Protocol):
    verdict: str
    note: str


def for_compare(baselines: Sequence[Results], base_cells: Sequence[_CellLike | None],
                candidate: Results, cand: _CellLike, ci: stats.RatioCI,
                spread_estimated: bool) -> Guarded:
    """The guard for one cell of ``tfbench compare`` (baselines in the order given)."""
    base_ev = [run_evidence(r, c.config_id, c.values, f"baseline run {i + 1}")
               for i, (r, c) in enumerate(zip(baselines, base_cells, strict=True))
               if c is not None and c.status == "ok"]
    cand_ev = run_evidence(candidate, cand.config_id, cand.values, "the candidate")
    return guard_ci(ci, spread_estimated, base_ev, cand_ev)


def settle_all(pairs: Sequence[tuple[_Verdicted, Guarded]]) -> None:
    """Apply `settle` to compared cells in place: verdict and a note saying why."""
    for res, g in pairs:
        res.verdict, note = settle(res.verdict, g)
        notes = [n for n in (res.note, note, *g.notes) if n]
        res.note = "; ".join(notes)
