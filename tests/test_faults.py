"""Faults with real processes: stale results, stop signals, a killed orchestrator, the run
lock, a full disk (a real tmpfs), an unknown TFBENCH_FAULT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import wait_until

from harness.cli import main
from harness.config import Cell, RunSettings
from harness.lifecycle import RunLock
from harness.orchestrator import RunSession

pytestmark = pytest.mark.slow

CELL = Cell(model="tiny_cnn", mode="infer", batch_size=4)
RUN = [sys.executable, "-m", "harness.cli", "run", "--models", "tiny_cnn", "--modes", "infer",
       "--warmup-steps", "1", "--measured-steps", "3", "--no-plots"]


def _procs_mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions `text` (a results directory)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            out.append(int(entry.name))
    return out


def _worker_pids(out: Path) -> list[int]:
    return [p for p in _procs_mentioning(str(out)) if b"harness.worker" in
            Path(f"/proc/{p}/cmdline").read_bytes()]


def _start_hanging_run(out: Path, samplers: str = "psutil") -> subprocess.Popen[str]:
    env = {**os.environ, "TFBENCH_FAULT": "hang"}
    proc = subprocess.Popen([*RUN, "--samplers", samplers, "--timeout", "300", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: bool(_worker_pids(out)), 60), "no worker started"
    return proc


def test_a_leftover_result_is_not_taken_for_this_attempts(tmp_path: Path) -> None:
    # An orphan of a killed run left an 'ok' result for the cell; the new worker crashes
    # (SIGKILL) without a result. The leftover must not be recorded as the new attempt's.
    session = RunSession(tmp_path, RunSettings(warmup_steps=1, measured_steps=3, samplers=()),
                         run_id="t", t0_ns=time.perf_counter_ns(),
                         worker_env={"TFBENCH_FAULT": "kill"})
    stale = tmp_path / ".work" / f"{CELL.config_id}-b0.result.json"
    stale.write_text(json.dumps({"status": "ok", "reason": "", "steps": [],
                                 "attempt": "from-an-earlier-run"}))
    outcome = session.run_block(CELL)
    assert outcome.status == "failed", outcome
    log = (tmp_path / "logs" / f"{CELL.config_id}-b0.log").read_text()
    assert "discarded a leftover" in log
    assert not stale.exists()


def test_a_result_of_another_attempt_written_during_the_run_is_discarded(tmp_path: Path) -> None:
    from harness.orchestrator import _read_result

    result = tmp_path / "x.result.json"
    log = tmp_path / "x.log"
    result.write_text(json.dumps({"status": "ok", "attempt": "old"}))
    assert _read_result(result, "new", log) is None
    assert "not this attempt's result" in log.read_text() and not result.exists()
    result.write_text(json.dumps({"status": "ok", "attempt": "new"}))
    assert _read_result(result, "new", log) == {"status": "ok", "attempt": "new"}


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130),
                                           (signal.SIGHUP, 129)])
def test_a_stop_signal_stops_worker_and_sampler(tmp_path: Path, sig: int, code: int) -> None:
    proc = _start_hanging_run(tmp_path)
    (run_dir,) = list(tmp_path.iterdir())
    assert wait_until(lambda: len(_procs_mentioning(str(tmp_path))) >= 2, 30)
    proc.send_signal(sig)  # to the orchestrator alone, not its group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "tfbench: interrupted; finished cells are kept" in err
    assert "Traceback" not in err
    assert _procs_mentioning(str(tmp_path)) == []  # no worker, no sampler left
    # the interrupted cell is not recorded as finished: a resume reruns it
    configs = run_dir / "configs.csv"
    assert not configs.exists() or CELL.config_id not in configs.read_text()
    log = (run_dir / "logs").glob("*.log")
    assert any("cell not finished" in p.read_text() for p in log)
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["sampling"]["died_at_s"] is None  # the sampler was stopped, not lost


def test_a_sigkilled_orchestrator_leaves_no_worker_and_resume_finishes(tmp_path: Path) -> None:
    proc = _start_hanging_run(tmp_path, samplers="none")
    (run_dir,) = list(tmp_path.iterdir())
    worker = _worker_pids(tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_until(lambda: _procs_mentioning(str(tmp_path)) == [], 20), \
        f"orphans left: {worker}"
    resumed = subprocess.run([*RUN, "--resume", str(run_dir)], capture_output=True, text=True,
                             timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    rows = (run_dir / "configs.csv").read_text().splitlines()
    assert len(rows) == 2 and ",ok," in rows[1]


def test_a_second_run_on_a_locked_directory_is_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "environment.json").write_text(json.dumps({
        "schema_version": 1, "run_id": "run", "clock_origin_ns": 1,
        "run_request": {"profile": "quick", "matrix": {"models": ["tiny_cnn"]},
                        "settings": {"samplers": [], "measured_steps": 3}}}))
    with RunLock(run_dir):
        before = sorted(p.name for p in run_dir.iterdir())
        code = main(["run", "--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert "is being written by another tfbench run" in err and str(os.getpid()) in err
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_resume_refuses_flags_that_change_the_run(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "environment.json").write_text(json.dumps({
        "schema_version": 1, "run_id": "run", "clock_origin_ns": 1,
        "run_request": {"profile": "full", "matrix": {"models": ["tiny_cnn"]},
                        "settings": {"samplers": [], "measured_steps": 3}}}))
    for args, fragment in ((["--profile", "quick"], "--profile 'quick' conflicts"),
                           (["--measured-steps", "5"], "--measured-steps 5 conflicts"),
                           (["--models", "tiny_mobilenet_v2"], "--models ['tiny_mobilenet_v2']")):
        assert main(["run", "--resume", str(run_dir), *args]) == 2
        assert fragment in capsys.readouterr().err
    # no --profile: the stored one (full), not the quick default
    assert main(["run", "--resume", str(run_dir), "--list"]) == 0
    assert capsys.readouterr().out.split() == ["infer-tiny_cnn-cpu-tf-fp32-bs8"]


def test_an_unknown_fault_value_is_an_error(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TFBENCH_FAULT", "segfault")
    out = tmp_path / "results"
    assert main(["run", "--models", "tiny_cnn", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "TFBENCH_FAULT: 'segfault' is not valid; allowed: oom, kill, hang, crash" in err
    assert not out.exists()


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted here: {done.stderr.strip()}")


def test_a_full_disk_is_a_clear_error_and_leaves_no_partial_rows(tmp_path: Path) -> None:
    from harness.errors import NoSpace
    from harness.records import CONFIGS_FILE, RunFiles, load_results, write_environment

    disk = tmp_path / "disk"
    _tmpfs(disk, "64k")
    try:
        write_environment(disk / "environment.json", {"run_id": "r"})
        appender = RunFiles(disk).appender(CONFIGS_FILE)
        row = {"run_id": "r", "config_id": "c", "model": "tiny_cnn", "status": "failed",
               "reason": "x" * 2000}
        with pytest.raises(NoSpace) as caught:
            for i in range(1000):
                appender.append([{**row, "config_id": f"c{i}"}])
        assert caught.value.message == (f"no space left on {disk} while writing configs.csv; "
                                        "finished cells are kept")
        import csv

        lines = list(csv.reader((disk / CONFIGS_FILE).open()))
        assert len(lines) > 2 and all(len(line) == len(lines[0]) for line in lines)
        assert all(line[lines[0].index("reason")] == row["reason"] for line in lines[1:])
        with pytest.raises(NoSpace):
            write_environment(disk / "environment.json", {"run_id": "r", "host": "h" * 100_000})
        assert not list(disk.glob("*environment.json*.tmp"))  # no temporary file left
        assert load_results(disk).run_id == "r"  # the old environment.json is whole
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_run_on_a_full_disk_stops_with_exit_1(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    _tmpfs(disk, "20k")
    try:
        done = subprocess.run([*RUN, "--samplers", "none", "--out", str(disk)],
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith(f"tfbench: error: no space left on {disk}/")
        assert line.endswith("; finished cells are kept")
        assert not list(disk.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_charts_on_a_full_disk_are_a_warning(tmp_path: Path) -> None:
    from harness.records import load_results

    disk = tmp_path / "disk"
    _tmpfs(disk, "40k")  # room for the results of one tiny cell, not for its charts
    try:
        done = subprocess.run([a for a in RUN if a != "--no-plots"]
                              + ["--samplers", "none", "--out", str(disk)],
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert "tfbench: warning: charts not written to" in done.stderr
        assert "No space left on device" in done.stderr
        run = Path(done.stdout.strip())
        assert list(load_results(run).configs["status"]) == ["ok"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)
