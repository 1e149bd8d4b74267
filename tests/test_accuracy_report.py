"""Accuracy analysis from files alone, on a committed real fit run (tests/data/results/
fit_colours: tiny_cnn frozen and cached at learning rates 0.05 and 1e38 on a generated
colour folder; the 1e38 cells diverged)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.accuracy_charts import accuracy_charts
from harness.accuracy_report import eval_curves, findings
from harness.plots import RunSet, load_runs
from harness.records import load_results

RUN = Path(__file__).parent / "data" / "results" / "fit_colours"


@pytest.fixture(scope="module")
def rs() -> RunSet:
    return load_runs([RUN])


def test_eval_curves_put_each_evaluation_at_its_training_time() -> None:
    res = load_results(RUN)
    curves = eval_curves(res.steps, key="config_id")
    ok = res.configs[res.configs["status"] == "ok"]["config_id"]
    for cid in ok:
        c = curves[curves["config_id"] == cid]
        assert c["steps_done"].tolist() == [6, 12, 18]  # 48 training images, batch 8
        assert c["train_s"].is_monotonic_increasing
        steps = res.steps[(res.steps["config_id"] == cid) & (res.steps["phase"] != "eval")]
        total = (steps["duration_s"] + steps["input_wait_s"]).sum()
        assert c["train_s"].iloc[-1] == pytest.approx(total)
        row = res.configs[res.configs["config_id"] == cid].iloc[0]
        assert c["val_accuracy"].iloc[-1] == pytest.approx(row["val_accuracy_final"])


def test_findings_answer_the_homework_questions(rs: RunSet) -> None:
    text = findings(rs.configs)
    first = [t for t in text if "validation accuracy first in training time" in t]
    assert len(first) == 1 and "learning rate 0.05" in first[0]
    assert "plus" in first[0] and "to build the cache" in first[0]
    rates = [t for t in text if "by learning rate" in t]
    assert len(rates) == 2  # frozen and cached
    assert all("0.05: final 100.0%" in t and "1e+38: failed (loss diverged at step 3)" in t
               for t in rates)
    cost = [t for t in text if "a cached step (head only)" in t]
    assert len(cost) == 1 and "ON CPU" in cost[0].upper()
    assert sum("recorded as failed; its steps are kept" in t for t in text) == 2


def test_no_fit_cells_no_findings_and_no_charts() -> None:
    other = load_runs([Path(__file__).parent / "data" / "results" / "real_tiny"])
    assert findings(other.configs) == []
    assert accuracy_charts(other) == []


def test_accuracy_charts_are_made_from_the_files(rs: RunSet) -> None:
    charts = {c.name: c for c in accuracy_charts(rs)}
    assert set(charts) == {"val_accuracy", "time_to_target", "learning_rate"}
    assert all(c.made for c in charts.values()), [c.reason for c in charts.values()]
    left, right = charts["val_accuracy"].figure.axes[:2]
    assert left.get_xlabel() == "training steps"
    assert right.get_xlabel().startswith("training time (s")
    assert len(left.get_lines()) >= 2  # one line per ok cell
    bars = charts["time_to_target"].figure.axes[0]
    assert len(bars.get_yticklabels()) == 2  # the two cells that reached the target
    lr = charts["learning_rate"].figure.axes[0]
    assert lr.get_xscale() == "log"
