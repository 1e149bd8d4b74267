"""The timing loop, driven by a scripted fake clock (no sleeping, no TensorFlow)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from harness.timing import NS, time_steps


def fake_clock(ticks_ns: list[int]) -> functools.partial[int]:
    return functools.partial(next, iter(ticks_ns))


class Recorder:
    """A step function that records calls; finish returns a loss derived from the batch."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def step(self, batch: int) -> int:
        self.calls.append(f"step{batch}")
        return batch

    def finish(self, result: int) -> float:
        self.calls.append(f"finish{result}")
        return float(result) / 10

    def inputs(self) -> Iterator[int]:
        n = 0
        while True:
            self.calls.append(f"input{n}")
            yield n
            n += 1


def test_first_step_warmup_and_measure_are_timed_apart() -> None:
    rec = Recorder()
    inputs = rec.inputs()
    # first call: start, end; then per step: before input, after input, after finish.
    ticks = [1000 * NS, 1005 * NS]  # first call takes 5 s (tracing)
    t = 1005 * NS
    for wait, dur in [(1, 100), (2, 200), (3, 300), (4, 400), (5, 500)]:
        ticks += [t, t + wait, t + wait + dur]
        t += wait + dur
    result = time_steps(rec.step, rec.finish, functools.partial(next, inputs),
                        images_per_step=8, warmup_steps=2, measured_steps=3,
                        t0_ns=1000 * NS, clock=fake_clock(ticks))
    assert result.first_step_s == 5.0
    assert result.first_loss == 0.0
    assert [s.phase for s in result.steps] == ["warmup"] * 2 + ["measure"] * 3
    assert [s.step for s in result.steps] == [0, 1, 2, 3, 4]
    assert [s.duration_s for s in result.steps] == [1e-7, 2e-7, 3e-7, 4e-7, 5e-7]
    assert [s.input_wait_s for s in result.steps] == [1e-9, 2e-9, 3e-9, 4e-9, 5e-9]
    assert result.steps[0].start_s == pytest.approx(5.0 + 1e-9)
    assert [s.loss for s in result.steps] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert all(s.images == 8 for s in result.steps)
    assert len(result.measured) == 3
    # input fetched before each step, finished (synchronised) inside the timed region
    assert rec.calls[:6] == ["input0", "step0", "finish0", "input1", "step1", "finish1"]


def test_min_duration_extends_the_measured_phase() -> None:
    rec = Recorder()
    inputs = rec.inputs()
    ticks = [0, 10]
    t = 10
    for _ in range(20):
        ticks += [t, t, t + NS // 4]  # each step takes 0.25 s
        t += NS // 4
    result = time_steps(rec.step, rec.finish, functools.partial(next, inputs),
                        images_per_step=1, warmup_steps=0, measured_steps=2,
                        min_duration_s=1.0, clock=fake_clock(ticks))
    # 2 steps would span 0.5 s; the loop keeps going until the window spans 1 s.
    assert len(result.measured) == 4
    assert result.measure_end_s - result.measure_start_s == pytest.approx(1.0)


def test_zero_clock_terminates() -> None:
    """A clock that never advances must not make the loop spin forever."""
    rec = Recorder()
    inputs = rec.inputs()
    result = time_steps(rec.step, rec.finish, functools.partial(next, inputs),
                        images_per_step=1, warmup_steps=1, measured_steps=3,
                        min_duration_s=10.0, max_measured_steps=50, clock=lambda: 0)
    assert len(result.measured) == 50
    assert all(s.duration_s == 0 for s in result.steps)


def test_measured_steps_must_be_positive() -> None:
    with pytest.raises(ValueError):
        time_steps(lambda b: b, lambda r: None, lambda: 0, images_per_step=1,
                   warmup_steps=0, measured_steps=0, clock=lambda: 0)


def test_precision_rule_extends_until_satisfied_within_the_cap() -> None:
    rec = Recorder()
    inputs = rec.inputs()
    seen: list[int] = []

    def enough(durations: list[float]) -> bool:
        seen.append(len(durations))
        return len(durations) >= 7

    result = time_steps(rec.step, rec.finish, functools.partial(next, inputs),
                        images_per_step=1, warmup_steps=1, measured_steps=4,
                        precise_enough=enough, clock=lambda: 0)
    assert len(result.measured) == 7
    assert seen == [4, 5, 6, 7]  # asked only once the minimum is reached
    capped = time_steps(rec.step, rec.finish, functools.partial(next, inputs),
                        images_per_step=1, warmup_steps=0, measured_steps=2,
                        max_measured_steps=5, precise_enough=lambda d: False, clock=lambda: 0)
    assert len(capped.measured) == 5


def test_on_step_reports_every_call_outside_the_timed_regions() -> None:
    rec = Recorder()
    inputs = rec.inputs()
    now = [0]

    def clock() -> int:
        return now[0]

    def step(batch: int) -> int:
        now[0] += 10 * NS  # every step takes 10 s on the fake clock
        return rec.step(batch)

    def next_input() -> int:
        now[0] += 1 * NS  # input takes 1 s
        return next(inputs)

    seen: list[tuple[int, str, float]] = []

    def on_step(calls: int, phase: str, duration_s: float) -> None:
        seen.append((calls, phase, duration_s))
        now[0] += 1000 * NS  # a slow callback: must land in no step's duration or wait

    result = time_steps(step, rec.finish, next_input, images_per_step=1, warmup_steps=1,
                        measured_steps=2, clock=clock, on_step=on_step)
    assert seen == [(1, "first", 10.0), (2, "warmup", 10.0), (3, "measure", 10.0),
                    (4, "measure", 10.0)]
    assert result.first_step_s == 10.0
    assert [s.duration_s for s in result.steps] == [10.0] * 3
    assert [s.input_wait_s for s in result.steps] == [1.0] * 3
