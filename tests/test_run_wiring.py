"""One real run through `orchestrator.run_cells`: the worker's step progress reaches the
progress display within the cell, unavailable engines and devices are decided once
(no worker started for them) and announced before the first cell, and the
confidence-target column is written."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from harness.config import Cell, RunSettings
from harness.environment import build_environment, platform_facts
from harness.orchestrator import run_cells
from harness.progress import Progress
from harness.records import load_results

pytestmark = pytest.mark.slow

# What the TensorFlow probe reports on a CUDA build with no GPU and no TensorRT
# (the shape `environment.probe_tensorflow` prints; this machine's TensorFlow is one).
PROBE = {"tensorflow_version": "2.21.0", "keras_version": "3.15.1",
         "tensorflow_build": {"is_cuda_build": True, "is_tensorrt_build": False},
         "tensorrt": {"enabled": False}, "gpus": [],
         "engines_unavailable": {"tftrt": "TensorFlow was built without TensorRT"}}


class RecordingProgress(Progress):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps_seen: list[tuple[str, int, str]] = []

    def step(self, steps_done: int, phase: str, step_s_mean: float | None) -> None:
        self.steps_seen.append((self._label, steps_done, phase))
        super().step(steps_done, phase, step_s_mean)


def test_run_reports_steps_within_a_cell_and_skips_unavailable_cells_without_a_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_cell = Cell(model="tiny_cnn", batch_size=2, input_size=32)
    no_trt = Cell(model="tiny_cnn", batch_size=2, input_size=32, engine="tftrt")
    no_gpu = Cell(model="tiny_cnn", batch_size=2, input_size=32, device="gpu")
    settings = RunSettings(warmup_steps=1, measured_steps=3, min_duration_s=2.0,
                           target_ci_rel=0.5, samplers=(), plots=False, timeout_s=300)
    stream = io.StringIO()
    holder: dict[str, RecordingProgress] = {}

    def environment(run_id: str, t0: int) -> dict[str, Any]:
        return build_environment(run_id=run_id, started_at_utc="2026-01-01T00:00:00+00:00",
                                 clock_origin_ns=t0, command_line=["test"], profile="test",
                                 platform_facts=platform_facts(), tensorflow=PROBE,
                                 jetson=None).to_json()

    # run_cells builds the plans; a recording Progress of the same plans replaces it
    def make(plans: Any) -> RecordingProgress:
        holder["p"] = RecordingProgress(plans, stream=stream, tty=True)
        return holder["p"]

    monkeypatch.setattr("harness.orchestrator.Progress", make)
    run_dir = run_cells([no_trt, run_cell, no_gpu], settings, tmp_path,
                        environment=environment)
    progress = holder["p"]
    assert progress.total == 1  # only the runnable cell is a unit of work
    # the worker's steps arrived while its cell ran, counting up, into the measured phase
    assert len(progress.steps_seen) >= 2
    assert {label for label, _, _ in progress.steps_seen} == {run_cell.config_id}
    counts = [n for _, n, _ in progress.steps_seen]
    assert counts == sorted(counts) and "measure" in {p for _, _, p in progress.steps_seen}
    out = stream.getvalue()
    first_cell = out.index(f"{run_cell.config_id} step ")
    assert out.index("engine tftrt unavailable (1 cell skipped)") < first_cell
    assert out.index("device gpu unavailable (1 cell skipped)") < first_cell
    assert " step " in out
    results = load_results(run_dir)
    configs = results.configs.set_index("config_id")
    assert configs.loc[no_trt.config_id, "status"] == "skipped"
    assert "without TensorRT" in configs.loc[no_trt.config_id, "reason"]
    assert "CUDA build, no GPU visible" in configs.loc[no_gpu.config_id, "reason"]
    # no worker was started for the unavailable cells: no log, no wall time
    logs = {p.name for p in (run_dir / "logs").iterdir()}
    assert logs == {f"{run_cell.config_id}-b0.log"}
    assert configs.loc[run_cell.config_id, "status"] == "ok"
    assert configs.loc[run_cell.config_id, "ci_target_met"] in (True, False)
    kinds = {(u.kind, u.name, u.cells) for u in results.environment.unavailable or ()}
    assert kinds == {("engine", "tftrt", 1), ("device", "gpu", 1)}
