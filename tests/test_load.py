"""Machine load figures (harness/load.py): arithmetic on recorded counters, and real psutil."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import load
from harness.load import LoadSnapshot, LoadWindow
from harness.records import write_environment

BURN = ("import time\n"
        "while time.process_time() < 0.6:\n"
        "    pass\n")


def snap(t: float, busy: float, own: float, avg: float = 1.0, cores: int = 2) -> LoadSnapshot:
    return LoadSnapshot(t_s=t, busy_cpu_s=busy, own_cpu_s=own, load_avg_1m=avg, cpu_count=cores)


def test_other_cores_are_machine_busy_minus_own_tree_per_second() -> None:
    # 10 s: the machine did 17 CPU-s of work, 3 of them ours -> 1.4 cores of other work.
    win = load.window(snap(100.0, 50.0, 5.0), snap(110.0, 67.0, 8.0, avg=2.5))
    assert win.other_cpu_cores == pytest.approx(1.4)
    assert win.other_fraction == pytest.approx(0.7)
    assert win.busy and win.load_avg_1m == 2.5
    assert load.describe(win, "the candidate") == \
        "other processes used 1.4 of 2 cores during the candidate"


def test_never_negative_nor_above_the_machine() -> None:
    assert load.window(snap(0, 10, 0), snap(1, 10.2, 0.5)).other_cpu_cores == 0.0
    assert load.window(snap(0, 0, 0), snap(1, 9, 0)).other_cpu_cores == 2.0
    assert load.window(snap(5, 0, 0), snap(5, 1, 0)).wall_s == 0.0
    assert not LoadWindow(10, 0.1, 1.0, 2).busy


def test_blocks_combine_time_weighted_into_cell_columns() -> None:
    wins = [LoadWindow(10.0, 0.2, 1.0, 2), LoadWindow(30.0, 1.0, 3.5, 2), None]
    cols = load.cell_columns(wins)
    assert cols == {"load_avg_1m": 3.5, "other_cpu_cores": pytest.approx(0.8)}
    assert load.cell_columns([None]) == {}


def test_a_child_counts_as_own_work_and_someone_elses_as_other() -> None:
    before_own = load.snapshot()
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)
    before_other = load.snapshot(root_pid=sleeper.pid)
    subprocess.run([sys.executable, "-c", BURN], check=True, timeout=120)
    after_other = load.snapshot(root_pid=sleeper.pid)
    assert sleeper.stdin is not None
    sleeper.stdin.close()
    sleeper.wait(timeout=30)
    after_own = load.snapshot()
    # Our reaped child's 0.6 CPU-s are our own tree's...
    assert after_own.own_cpu_s - before_own.own_cpu_s >= 0.55
    # ...and, seen from the idle sleeper's tree, other processes' work.
    other = load.window(before_other, after_other)
    assert other.other_cpu_cores * other.wall_s >= 0.55
    assert after_own.cpu_count >= 1 and after_own.load_avg_1m >= 0


def test_run_load_goes_into_environment_json(tmp_path: Path) -> None:
    write_environment(tmp_path / "environment.json", {"run_id": "r"})
    load.record_run_load(tmp_path, LoadWindow(60.0, 1.4, 3.0, 2), {"load_avg_1m": 2.0})
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["schema_version"] >= 1 and env["run_id"] == "r"
    assert env["load"]["other_cpu_cores"] == 1.4 and env["load"]["busy"] is True
    assert env["load"]["at_start"] == {"load_avg_1m": 2.0}
