"""The worker's step-progress file: throttled writes, read back by the orchestrator."""

from __future__ import annotations

from pathlib import Path

from harness.step_progress import StepProgress, StepReporter, read_step_progress


def test_reporter_throttles_and_the_reader_sees_the_last_write(tmp_path: Path) -> None:
    path = tmp_path / "cell-b0.progress.json"
    now = [0.0]
    reporter = StepReporter(path, interval_s=1.0, clock=lambda: now[0])
    assert read_step_progress(path) is None
    reporter(1, "first", 5.0)
    assert read_step_progress(path) == StepProgress(1, "first", None)
    now[0] = 0.5
    reporter(2, "warmup", 0.2)  # within the interval: not written
    assert read_step_progress(path) == StepProgress(1, "first", None)
    now[0] = 1.2
    reporter(3, "measure", 0.4)
    progress = read_step_progress(path)
    assert progress is not None and (progress.calls, progress.phase) == (3, "measure")
    assert progress.step_s_mean is not None and abs(progress.step_s_mean - 0.3) < 1e-12


def test_a_torn_or_missing_file_reads_as_no_progress(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"calls": 3, "pha')
    assert read_step_progress(path) is None


def _write_many(path: str, n: int) -> None:
    reporter = StepReporter(Path(path), interval_s=0.0)
    for i in range(n):
        reporter(i + 1, "measure", 0.01)


def test_two_processes_reporting_to_one_file_do_not_break_each_other(tmp_path: Path) -> None:
    """Two writers on one progress file (as two tasks of a multiworker cell were, until the
    worker gave the file to the chief alone): neither's atomic rename takes the other's
    temporary file away (a shared ``.tmp`` name did: FileNotFoundError failed the cell)."""
    import multiprocessing

    path = tmp_path / "cell-b0.progress.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(path), 400)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    progress = read_step_progress(path)
    assert progress is not None and progress.phase == "measure"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
