"""Availability decided once per run, and the console line of a finished cell."""

from __future__ import annotations

from pathlib import Path

from images import image_folder

from harness.config import Cell, RunSettings
from harness.envmodel import Environment
from harness.orchestrator import CellOutcome
from harness.run_availability import decide
from harness.run_progress import cell_summary, unit_plans


def _env(**fields: object) -> Environment:
    return Environment.from_json({"run_id": "r", "tensorflow_version": "2.21.0", **fields})


def test_unavailable_engine_and_device_skip_their_cells_with_reasons() -> None:
    env = _env(gpus=[], tensorflow_build={"is_cuda_build": True},
               engines_unavailable={"tftrt": "built without TensorRT"})
    cells = [Cell(model="tiny_cnn"), Cell(model="tiny_cnn", engine="tftrt", device="gpu"),
             Cell(model="tiny_cnn", device="gpu:1")]
    got = decide(cells, env, {"psutil": "active", "jtop": "no jtop service"})
    assert set(got.skip) == {cells[1].config_id, cells[2].config_id}
    assert "engine tftrt: built without TensorRT" in got.skip[cells[1].config_id]
    assert got.skip[cells[2].config_id] == (
        "gpu:1 requested but TensorFlow 2.21.0 sees 0 GPU(s) (CUDA build, no GPU visible)")
    assert got.lines() == [
        "sampler jtop unavailable: no jtop service",
        "engine tftrt unavailable (1 cell skipped): built without TensorRT",
        "device gpu unavailable (1 cell skipped): gpu requested but TensorFlow 2.21.0 sees "
        "0 GPU(s) (CUDA build, no GPU visible)",
        "device gpu:1 unavailable (1 cell skipped): gpu:1 requested but TensorFlow 2.21.0 "
        "sees 0 GPU(s) (CUDA build, no GPU visible)"]


def test_a_failed_probe_leaves_the_decision_to_the_worker() -> None:
    env = _env(tensorflow_error="probe timed out")  # gpus and engines not probed
    assert decide([Cell(model="tiny_cnn", device="gpu")], env, {}).skip == {}


def _outcome(cell: Cell, **row: object) -> CellOutcome:
    return CellOutcome(cell, {"status": "ok", "step_s_median": 0.050, **row},
                       [{"phase": "measure", "duration_s": 0.05 + 0.001 * (i % 7)}
                        for i in range(60)])


def test_console_line_shows_input_wait_and_a_missed_target(tmp_path: Path) -> None:
    settings = RunSettings(target_ci_rel=0.01)
    folder = Cell(model="tiny_cnn", data=str(image_folder(tmp_path / "img", seed=0)))
    line = cell_summary(_outcome(folder, input_wait_s_median=0.030), settings)
    assert line == "median 50.00 ms; input wait 30.00 ms (38% of step + wait); input-bound"
    synthetic = _outcome(Cell(model="tiny_cnn"), input_wait_s_median=0.0001,
                         ci_target_met=False, step_s_median_ci_low=0.048,
                         step_s_median_ci_high=0.053, other_cpu_cores=1.2, load_avg_1m=3.0)
    line = cell_summary(synthetic, settings)
    assert line.startswith("median 50.00 ms; WARNING CI -4%/+6% missed the ±1% target after "
                           "60 measured steps (")
    assert "load: other processes kept 1.20 of" in line and "input wait" not in line


def test_one_plan_per_unit_in_schedule_order() -> None:
    cells = [Cell(model="tiny_cnn", batch_size=2), Cell(model="tiny_cnn", batch_size=4)]
    plans = unit_plans(cells, RunSettings(interleave=2, warmup_steps=1, measured_steps=3,
                                          max_measured_steps=10))
    assert [p.label.split(" ")[-1] for p in plans] == ["1/2]", "1/2]", "2/2]", "2/2]"]
    assert [p.cost_units for p in plans][:2] == [plans[2].cost_units, plans[3].cost_units]
    assert (plans[0].steps_low, plans[0].steps_high) == (5, 12)
