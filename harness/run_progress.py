"""What the console shows of a run: one ETA plan per unit of work, and the line for a
finished cell (median, input wait, a missed confidence target with its likely cause).
No TensorFlow."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.ci_target import describe_miss, load_figures, miss_cause
from harness.config import Cell, RunSettings
from harness.eta import CellPlan, plan_for

if TYPE_CHECKING:
    from harness.orchestrator import CellOutcome

INPUT_BOUND_SHARE = 0.2  # input wait at least this share of step + wait: input-bound


def schedule_units(cells: Sequence[Cell], blocks: int) -> list[tuple[Cell, int]]:
    """`orchestrator.schedule`'s order (kept here too so this module needs no import)."""
    if blocks <= 1:
        return [(c, 0) for c in cells]
    return [(c, b) for b in range(blocks) for c in cells]


def unit_plans(cells: Sequence[Cell], settings: RunSettings) -> list[CellPlan]:
    """One ETA plan per unit of work (a cell, or a block of one), in `schedule` order."""
    return [plan_for(unit_label(cell, block, settings.interleave), cell.factors(),
                     warmup_steps=settings.warmup_steps, measured_steps=settings.measured_steps,
                     max_measured_steps=settings.max_measured_steps)
            for cell, block in schedule_units(cells, settings.interleave)]


def unit_label(cell: Cell, block: int, blocks: int) -> str:
    return cell.config_id + (f" [block {block + 1}/{blocks}]" if blocks > 1 else "")


def cell_summary(outcome: CellOutcome, settings: RunSettings) -> str:
    """The console's one-line detail for a finished cell: its median, input wait when it
    is a visible share of the step, and a missed confidence target with its likely cause."""
    row = outcome.row
    if outcome.status != "ok":
        return outcome.reason
    median = float(row["step_s_median"])
    parts = [f"median {median * 1e3:.2f} ms"]
    wait = row.get("input_wait_s_median")
    if outcome.cell.data != "synthetic" and isinstance(wait, (int, float)):
        share = wait / (wait + median) if wait + median > 0 else 0.0
        parts.append(f"input wait {wait * 1e3:.2f} ms ({share:.0%} of step + wait)"
                     + ("; input-bound" if share >= INPUT_BOUND_SHARE else ""))
    if settings.trace_steps:  # profiling hook
        parts.append(f"trace {row.get('trace')}")
    if row.get("ci_target_met") is False and settings.target_ci_rel is not None:
        durations = outcome.measured_durations()
        cause = miss_cause(durations, row.get("step_s_lag1_autocorr"),
                           load_figures(row, os.cpu_count()))
        parts.append("WARNING " + describe_miss(median, float(row["step_s_median_ci_low"]),
                                                float(row["step_s_median_ci_high"]),
                                                settings.target_ci_rel, len(durations), cause))
    return "; ".join(parts)
