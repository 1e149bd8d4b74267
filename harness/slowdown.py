"""Test-only injected slowdown: a busy-wait of a set fraction of each timed step.

``TFBENCH_SLOWDOWN=0.05`` makes every step (first call, warm-up and measured)
5% slower: after the step's result is materialised, the CPU spins for 5% of
the time the step itself took, inside the timed region. The sensitivity
benchmark (benchmarks/ab_power.py) uses it to give the candidate side of an
A/B a known slowdown, the way ``TFBENCH_FAULT`` injects failures.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from harness.errors import UserError

SLOWDOWN_ENV = "TFBENCH_SLOWDOWN"
Clock = Callable[[], int]


def parse(value: str) -> float:
    """The fraction from the environment variable's text (0 <= fraction < 10)."""
    try:
        fraction = float(value)
    except ValueError:
        raise UserError.invalid(SLOWDOWN_ENV, value, "a fraction such as 0.05") from None
    if not math.isfinite(fraction) or not 0 <= fraction < 10:
        raise UserError.invalid(SLOWDOWN_ENV, value, "a fraction 0 <= f < 10")
    return fraction


def wrap(step: Callable[[Any], Any], finish: Callable[[Any], float | None], fraction: float,
         clock: Clock = time.perf_counter_ns
         ) -> tuple[Callable[[Any], Any], Callable[[Any], float | None]]:
    """``step`` and ``finish`` that spin for ``fraction`` of the step's own time at the end."""
    started = [0]

    def slow_step(batch: Any) -> Any:
        started[0] = clock()
        return step(batch)

    def slow_finish(result: Any) -> float | None:
        loss = finish(result)
        until = clock() + int((clock() - started[0]) * fraction)
        while clock() < until:
            pass
        return loss

    return slow_step, slow_finish


def from_env(step: Callable[[Any], Any], finish: Callable[[Any], float | None],
             environ: Mapping[str, str] = os.environ
             ) -> tuple[Callable[[Any], Any], Callable[[Any], float | None]]:
    """``(step, finish)`` unchanged, or wrapped when ``TFBENCH_SLOWDOWN`` is set and > 0."""
    text = environ.get(SLOWDOWN_ENV, "")
    fraction = parse(text) if text else 0.0
    return (step, finish) if fraction == 0 else wrap(step, finish, fraction)
