"""Progress output and its ETA: plain lines off a terminal, a bar redrawn on one; per-cell
estimates from factors, corrected by finished cells and by steps within a cell."""

from __future__ import annotations

import functools
import io

import pytest

from harness.eta import CellPlan, Estimator, plan_for
from harness.progress import PLAIN_STEP_INTERVAL_S, Progress, format_eta


def _plan(label: str, model: str = "mobilenet_v2", mode: str = "infer", base: str = "",
          batch: int = 8, measured: int = 30, most: int = 30) -> CellPlan:
    return plan_for(label, {"model": model, "mode": mode, "base": base, "batch_size": batch,
                            "input_size": 224}, warmup_steps=3, measured_steps=measured,
                    max_measured_steps=most)


def test_plain_lines_with_eta_from_unit_times_when_cells_are_not_known() -> None:
    stream = io.StringIO()
    clock = functools.partial(next, iter([0.0, 30.0, 30.0, 90.0]))
    progress = Progress(3, stream=stream, tty=False, clock=clock)
    progress.started("infer-a")
    progress.finished("infer-a", "ok", "median 1.00 ms")  # 30 s for 1 cell, 2 left
    progress.started("train-b")
    progress.finished("train-b", "skipped", "no GPU")  # 30 s and 60 s: median 45 s, 1 left
    assert stream.getvalue().splitlines() == [
        "[1/3] infer-a ...",
        "[1/3] infer-a: ok (median 1.00 ms); ETA 01:00",
        "[2/3] train-b ...",
        "[2/3] train-b: skipped (no GPU); ETA 00:45",
    ]


def test_terminal_bar_is_redrawn_in_place() -> None:
    stream = io.StringIO()
    clock = functools.partial(next, iter([0.0, 10.0, 10.0]))
    progress = Progress(2, stream=stream, tty=True, clock=clock)
    progress.started("cell-one")
    progress.finished("cell-one", "ok")
    progress.started("cell-two")
    text = stream.getvalue()
    assert text.startswith("\r[" + "." * 24 + "] 0/2 ETA --:--  cell-one")
    assert "cell-one: ok\n" in text
    assert text.endswith("] 1/2 ETA 00:10  cell-two")
    assert "#" * 12 in text


def test_plan_costs_follow_model_mode_and_batch() -> None:
    infer = _plan("a")
    frozen = _plan("b", mode="train", base="frozen")
    unfrozen = _plan("c", mode="train", base="unfrozen")
    inception = _plan("d", model="inception_v3")
    big_batch = _plan("e", batch=32)
    assert infer.cost_units < frozen.cost_units < unfrozen.cost_units
    assert inception.cost_units > 10 * infer.cost_units
    assert big_batch.cost_units == pytest.approx(4 * infer.cost_units)
    assert (infer.steps_low, infer.steps_high) == (34, 34)  # first call + 3 warm-up + 30
    assert _plan("f", most=60).steps_high == 64


def test_finished_cells_calibrate_the_rest_by_model_and_mode() -> None:
    # Measured: an inference cell of MobileNetV2 at 0.05 s a step with 4 s of start-up.
    # An unfrozen training cell of the same model should then cost 3x per step (the mode
    # factor), and the estimate must use the measured start-up, not the prior.
    plans = [_plan("infer"), _plan("train", mode="train", base="unfrozen")]
    est = Estimator(plans)
    est.cell_finished(plans[0], wall_s=4.0 + 34 * 0.05, steps=34, step_s_mean=0.05)
    assert est.startup_s() == pytest.approx(4.0)
    assert est.unit_s(plans[1]) == pytest.approx(4.0 + 34 * 0.05 * 3.0)
    # Once a cell of that model and mode has run, its own rate wins over the mode factor.
    est.cell_finished(plans[1], wall_s=4.0 + 34 * 0.40, steps=34, step_s_mean=0.40)
    assert est.unit_s(plans[1]) == pytest.approx(4.0 + 34 * 0.40)


def test_expected_steps_learn_where_the_stopping_rule_ends() -> None:
    plans = [_plan(str(i), measured=30, most=60) for i in range(3)]
    est = Estimator(plans)
    assert est.expected_steps(plans[1]) == pytest.approx(34 + 15)  # halfway until known
    est.cell_finished(plans[0], wall_s=10.0, steps=64, step_s_mean=0.1)  # ran to the max
    assert est.expected_steps(plans[1]) == pytest.approx(64)


def test_eta_moves_within_a_long_cell() -> None:
    """The defect: '5/6 ETA 00:44' stayed while the last cell ran 241 s. Steps reported
    from inside the cell must move the ETA with the cell's own step time."""
    stream = io.StringIO()
    plans = [_plan("fast"), _plan("slow", model="inception_v3", mode="train", base="unfrozen")]
    times = iter([0.0, 10.0, 10.0, 40.0, 240.0])
    progress = Progress(plans, stream=stream, tty=True, clock=functools.partial(next, times))
    progress.started("fast")
    progress.finished("fast", "ok", steps=34, step_s_mean=0.1)  # 10 s: 6.6 s start-up
    progress.started("slow")
    progress.step(5, "warmup", 7.0)  # 30 s in: 5 steps at 7 s -> 29 steps left
    early = stream.getvalue().rsplit("\r", 1)[-1]
    assert "1/2 ETA 03:23" in early  # 29 x 7 s
    assert "step 5/34 (warmup)" in early
    progress.step(30, "measure", 7.0)  # 230 s in: 4 steps left
    late = stream.getvalue().rsplit("\r", 1)[-1]
    assert "ETA 00:28" in late


def test_plain_step_lines_are_rate_limited() -> None:
    stream = io.StringIO()
    times = iter([0.0, 1.0, PLAIN_STEP_INTERVAL_S + 1.0])
    progress = Progress([_plan("a")], stream=stream, tty=False,
                        clock=functools.partial(next, times))
    progress.started("a")
    progress.step(3, "warmup", 0.1)  # 1 s after the start: not printed
    progress.step(20, "measure", 0.1)  # past the interval: printed
    lines = stream.getvalue().splitlines()
    assert lines == ["[1/1] a ...", "[1/1] a: step 20/34 (measure); ETA 00:01"]


def test_format_eta_hours() -> None:
    assert format_eta(3725) == "ETA 1:02:05"
    assert format_eta(None) == "ETA --:--"
