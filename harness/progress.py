"""Progress for ``tfbench run`` and the pytest entry: a bar redrawn in place on a terminal,
plain lines otherwise; the ETA comes from `harness.eta` (per-cell cost from its factors,
corrected by what has run, updated within a cell as its worker reports steps)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from harness.eta import CellPlan, Estimator

# Off a terminal, a running cell's step count is printed at most this often.
PLAIN_STEP_INTERVAL_S = 30.0


def _equal_plans(total: int) -> list[CellPlan]:
    """Plans for a run whose cells are not known in detail: all alike."""
    return [CellPlan(label="", model="", mode="", base="", cost_units=0.0, steps_low=0,
                     steps_high=0) for _ in range(total)]


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA --:--"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"ETA {hours}:{minutes:02d}:{secs:02d}" if hours else f"ETA {minutes:02d}:{secs:02d}"


class Progress:
    """Units of work done of total, the current unit and its steps, and an ETA."""

    def __init__(self, plans: Sequence[CellPlan] | int, stream: TextIO | None = None,
                 tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plans = _equal_plans(plans) if isinstance(plans, int) else list(plans)
        self.estimator = Estimator(self.plans)
        self.total = len(self.plans)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._clock = clock
        self._width = 0
        self._unit_start = 0.0
        self._label = ""
        self._steps: tuple[int, str, float | None] | None = None
        self._last_plain_step = -float("inf")

    # -- estimates ------------------------------------------------------------------------
    def _plan(self) -> CellPlan | None:
        return self.plans[self.done] if self.done < self.total else None

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left, or None before anything is known (no unit finished, no step)."""
        plan = self._plan()
        known = self.estimator.finished or (plan is not None and plan.cost_units > 0)
        if not known:
            return None
        if plan is None:
            return 0.0
        now = self._clock() if now is None else now
        steps_done, _, mean = self._steps or (0, "", None)
        current = (plan, now - self._unit_start, steps_done, mean) if self._label else None
        start = self.done + (1 if current else 0)
        return self.estimator.remaining_s(start, current)

    def _step_text(self) -> str:
        plan = self._plan()
        if self._steps is None or plan is None:
            return ""
        done, phase, _ = self._steps
        span = (f"{plan.steps_low}" if plan.steps_high == plan.steps_low
                else f"{plan.steps_low}-{plan.steps_high}")
        return f" step {done}/{span} ({phase})"

    # -- events ---------------------------------------------------------------------------
    def started(self, label: str) -> None:
        self._unit_start = self._clock()
        self._label = label
        self._steps = None
        self._last_plain_step = self._unit_start
        if self.tty:
            self._redraw(self._unit_start)
        else:
            self.stream.write(f"[{self.done + 1}/{self.total}] {label} ...\n")
        self.stream.flush()

    def step(self, steps_done: int, phase: str, step_s_mean: float | None) -> None:
        """The running unit's worker reported ``steps_done`` timed calls so far."""
        self._steps = (steps_done, phase, step_s_mean)
        now = self._clock()
        if self.tty:
            self._redraw(now)
        elif now - self._last_plain_step >= PLAIN_STEP_INTERVAL_S:
            self._last_plain_step = now
            self.stream.write(f"[{self.done + 1}/{self.total}] {self._label}:"
                              f"{self._step_text()}; {format_eta(self.eta_s(now))}\n")
        self.stream.flush()

    def finished(self, label: str, status: str, detail: str = "", *, steps: int = 0,
                 step_s_mean: float | None = None) -> None:
        now = self._clock()
        plan = self._plan()
        if plan is not None:
            self.estimator.cell_finished(plan, now - self._unit_start, steps, step_s_mean)
        self.done += 1
        self._label, self._steps = "", None
        text = f"{label}: {status}" + (f" ({detail})" if detail else "")
        if self.tty:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
            self.stream.write(f"{text}\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {text}; {format_eta(self.eta_s(now))}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (a warning, a skipped cell) that does not count as a unit."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(f"{text}\n")
        if self.tty and self._label:
            self._redraw()
        self.stream.flush()

    def _redraw(self, now: float | None = None) -> None:
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{format_eta(self.eta_s(now))}  {self._label}{self._step_text()}")
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)

    def close(self) -> None:
        self.stream.flush()
