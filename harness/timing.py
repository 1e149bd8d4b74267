"""The timing loop: the harness owns the clock.

`time_steps` runs one untimed-but-measured first call (tracing, compilation,
engine build on first use), then warm-up steps and measured steps, each timed
on the injected monotonic clock from just before the step is launched to just
after its result is materialised (the device synchronisation point). Time
spent waiting for input is timed apart from compute. No TensorFlow here: the
step and its synchronisation are callables handed in by an engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], int]
# on_step(calls_done, phase, duration_s): progress, called between timed regions
OnStep = Callable[[int, str, float], None]
NS = 1_000_000_000


@dataclass(frozen=True)
class StepRecord:
    """One timed step; times are seconds on the run's shared clock."""

    step: int
    phase: str  # "warmup" or "measure"
    start_s: float
    duration_s: float
    input_wait_s: float
    images: int
    loss: float | None


@dataclass
class TimingResult:
    """What the loop measured for one block of one cell."""

    first_step_s: float
    first_loss: float | None
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def measured(self) -> list[StepRecord]:
        return [s for s in self.steps if s.phase == "measure"]

    @property
    def measure_start_s(self) -> float | None:
        m = self.measured
        return m[0].start_s - m[0].input_wait_s if m else None

    @property
    def measure_end_s(self) -> float | None:
        m = self.measured
        return m[-1].start_s + m[-1].duration_s if m else None


def time_steps(
    step: Callable[[Any], Any],
    finish: Callable[[Any], float | None],
    next_input: Callable[[], Any],
    *,
    images_per_step: int,
    warmup_steps: int,
    measured_steps: int,
    min_duration_s: float = 0.0,
    max_measured_steps: int = 100_000,
    precise_enough: Callable[[list[float]], bool] | None = None,
    t0_ns: int = 0,
    clock: Clock = time.perf_counter_ns,
    on_step: OnStep | None = None,
) -> TimingResult:
    """Time a step function.

    ``step(batch)`` launches one step and returns its (possibly asynchronous)
    result; ``finish(result)`` blocks until the result exists on the host and
    returns the loss (or None). Both run inside the timed region, so device
    work is synchronised before the clock stops. ``next_input()`` is timed
    separately as ``input_wait_s``.

    Measured steps continue past ``measured_steps`` until the measured phase
    spans ``min_duration_s`` (so that sensors sampling at 0.5 s see enough of
    the window) and ``precise_enough(durations)`` holds (for example, the
    median's CI is within ±3%), never past ``max_measured_steps``.

    ``on_step(calls_done, phase, duration_s)`` (progress reporting) is called after
    each timed call, the first one included (phase ``first``), after its clock has
    stopped and before the next input is fetched: outside every timed region.
    """
    if measured_steps < 1:
        raise ValueError("measured_steps must be >= 1")
    batch = next_input()
    t_start = clock()
    first_loss = finish(step(batch))
    first_step_s = (clock() - t_start) / NS
    result = TimingResult(first_step_s=first_step_s, first_loss=first_loss)
    if on_step is not None:
        on_step(1, "first", first_step_s)

    index = 0
    measure_begin_ns: int | None = None
    measured = 0
    t_end = 0
    durations: list[float] = []
    while True:
        in_warmup = index < warmup_steps
        if not in_warmup and measured >= measured_steps and (
            measured >= max_measured_steps
            or (
                (measure_begin_ns is None or (t_end - measure_begin_ns) / NS >= min_duration_s)
                and (precise_enough is None or precise_enough(durations))
            )
        ):
            break
        t_wait = clock()
        batch = next_input()
        t_begin = clock()
        loss = finish(step(batch))
        t_end = clock()
        if not in_warmup:
            if measure_begin_ns is None:
                measure_begin_ns = t_wait
            measured += 1
            durations.append((t_end - t_begin) / NS)
        result.steps.append(
            StepRecord(
                step=index,
                phase="warmup" if in_warmup else "measure",
                start_s=(t_begin - t0_ns) / NS,
                duration_s=(t_end - t_begin) / NS,
                input_wait_s=(t_begin - t_wait) / NS,
                images=images_per_step,
                loss=loss,
            )
        )
        index += 1
        if on_step is not None:
            on_step(index + 1, result.steps[-1].phase, result.steps[-1].duration_s)
    return result
