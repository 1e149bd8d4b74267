"""A running worker's step progress, passed to the orchestrator through a small file.

The worker's timing loop calls a `StepReporter` between timed steps (never inside a
timed region); it rewrites ``<run>/.work/<cell>-b<block>.progress.json`` atomically at
most every ``interval_s`` seconds. The orchestrator polls the file while it waits for
the worker and feeds `harness.progress.Progress`. No TensorFlow here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.records import write_atomic

REPORT_INTERVAL_S = 0.5


@dataclass(frozen=True)
class StepProgress:
    """Timed calls done so far (the first call included), the phase of the last one, and
    the mean duration of the steps after the first call (None until there is one)."""

    calls: int
    phase: str
    step_s_mean: float | None


class StepReporter:
    """``on_step`` for `harness.timing.time_steps`: throttled, atomic progress writes."""

    def __init__(self, path: Path, interval_s: float = REPORT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.interval_s = interval_s
        self._clock = clock
        self._last = -float("inf")
        self._steps = 0
        self._total_s = 0.0

    def __call__(self, calls: int, phase: str, duration_s: float) -> None:
        if phase != "first":
            self._steps += 1
            self._total_s += duration_s
        now = self._clock()
        if now - self._last < self.interval_s:
            return
        self._last = now
        mean = self._total_s / self._steps if self._steps else None
        write_atomic(self.path, json.dumps({"calls": calls, "phase": phase,
                                            "step_s_mean": mean}), durable=False)


def read_step_progress(path: Path) -> StepProgress | None:
    """The last progress a worker wrote, or None (not written yet, or unreadable)."""
    try:
        data = json.loads(path.read_text())
        mean = data["step_s_mean"]
        return StepProgress(int(data["calls"]), str(data["phase"]),
                            None if mean is None else float(mean))
    except (OSError, ValueError, KeyError, TypeError):
        return None
