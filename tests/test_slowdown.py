"""The test-only injected slowdown (harness/slowdown.py), on a scripted clock."""

from __future__ import annotations

import pytest

from harness import slowdown
from harness.errors import UserError
from harness.timing import time_steps


def test_each_timed_step_gets_the_fraction_more() -> None:
    # Scripted clock: every read advances 1 µs; a step's own work advances it 10 ms.
    now = [0]

    def clock() -> int:
        now[0] += 1_000
        return now[0]

    def step(batch: int) -> int:
        now[0] += 10_000_000
        return batch

    def run(s: object, f: object) -> list[float]:
        timing = time_steps(s, f, lambda: 0, images_per_step=1,  # type: ignore[arg-type]
                            warmup_steps=1, measured_steps=5, clock=clock)
        return [r.duration_s for r in timing.measured]

    base = run(step, lambda r: None)
    slowed = run(*slowdown.wrap(step, lambda r: None, 0.05, clock=clock))
    assert all(d == pytest.approx(0.010, rel=1e-3) for d in base)
    assert all(d == pytest.approx(0.0105, rel=2e-3) for d in slowed)


def test_env_switch() -> None:
    def step(b: int) -> int:
        return b

    def finish(r: int) -> None:
        return None

    assert slowdown.from_env(step, finish, {}) == (step, finish)
    assert slowdown.from_env(step, finish, {"TFBENCH_SLOWDOWN": "0"}) == (step, finish)
    assert slowdown.from_env(step, finish, {"TFBENCH_SLOWDOWN": "0.05"})[0] is not step
    with pytest.raises(UserError):
        slowdown.from_env(step, finish, {"TFBENCH_SLOWDOWN": "fast"})
