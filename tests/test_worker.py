"""Worker isolation with real worker processes: each failure costs one cell only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.config import Cell, RunSettings
from harness.orchestrator import RunSession

pytestmark = pytest.mark.slow

CELL = Cell(model="tiny_cnn", mode="train", base="unfrozen", batch_size=4)
SETTINGS = RunSettings(warmup_steps=1, measured_steps=3, samplers=(), timeout_s=120)


def session(tmp_path: Path, fault: str = "", **settings: object) -> RunSession:
    from dataclasses import replace

    return RunSession(tmp_path, replace(SETTINGS, **settings), run_id="test",
                      t0_ns=time.perf_counter_ns(),
                      worker_env={"TFBENCH_FAULT": fault} if fault else {})


def test_sigkill_without_oom_evidence_is_failed_not_a_guessed_oom(tmp_path: Path) -> None:
    # The worker kills itself: no OOM killer was involved, and the cgroup counter and the
    # kernel log (where readable) say so.
    outcome = session(tmp_path, "kill").run_cell(CELL)
    assert outcome.status == "failed"
    assert outcome.reason.startswith("worker killed by SIGKILL; no out-of-memory evidence")
    assert "step_s_median" not in outcome.row and outcome.steps == []


def test_resource_exhausted_is_recorded_as_oom(tmp_path: Path) -> None:
    outcome = session(tmp_path, "oom").run_cell(CELL)
    assert outcome.status == "oom"
    assert outcome.reason.startswith("ResourceExhaustedError: ")
    assert "OOM when allocating tensor" in outcome.reason


def test_crash_is_recorded_as_failed_with_the_error(tmp_path: Path) -> None:
    outcome = session(tmp_path, "crash").run_cell(CELL)
    assert outcome.status == "failed"
    assert outcome.reason == "RuntimeError: injected crash (TFBENCH_FAULT=crash)"
    assert "Traceback" in (tmp_path / "logs" / f"{CELL.config_id}-b0.log").read_text()


def test_hang_is_killed_at_the_timeout(tmp_path: Path) -> None:
    outcome = session(tmp_path, "hang", timeout_s=25).run_cell(CELL)
    assert outcome.status == "timeout"
    assert outcome.reason == "cell exceeded timeout_s=25; worker killed"


def test_a_failed_cell_does_not_stop_the_run(tmp_path: Path) -> None:
    from harness.records import load_results, write_environment

    write_environment(tmp_path / "environment.json", {"run_id": "test"})
    s = session(tmp_path, "crash")
    first = s.run_cell(CELL)
    s.worker_env = {}
    second = s.run_cell(Cell(model="tiny_cnn", mode="infer", batch_size=4))
    s.close()
    assert (first.status, second.status) == ("failed", "ok")
    configs = load_results(tmp_path).configs
    assert list(configs["status"]) == ["failed", "ok"]
    assert configs.loc[0, "reason"].startswith("RuntimeError")
    assert configs["step_s_median"].isna().tolist() == [True, False]


def test_missing_gpu_is_a_skipped_cell(tmp_path: Path) -> None:
    outcome = session(tmp_path).run_cell(Cell(model="tiny_cnn", device="gpu", batch_size=2))
    assert outcome.status == "skipped"
    assert outcome.reason.startswith("gpu requested but TensorFlow sees 0 GPU(s)")
    assert outcome.steps == []


def test_a_user_error_in_the_worker_crashes_loudly(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A UserError that reaches the worker is a preflight bug: no result file (so not an
    ordinary failed cell), exit code EXIT_PREFLIGHT_BUG, the message in the log."""
    import json

    from harness.worker import EXIT_PREFLIGHT_BUG, main, settings_to_dict

    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")  # passes Cell's check; refused at build
    cell = Cell(model=str(saved), mode="train", base="unfrozen", batch_size=2, input_size=32)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"cell": cell.factors(), "settings": settings_to_dict(SETTINGS),
                                "t0_ns": time.perf_counter_ns()}))
    result = tmp_path / "result.json"
    assert main([str(spec), str(result)]) == EXIT_PREFLIGHT_BUG
    assert not result.exists()
    out = capsys.readouterr()
    assert "tfbench bug: preflight let a bad input reach the worker: model: a SavedModel " \
           "directory" in out.out
    assert "Traceback" in out.err
