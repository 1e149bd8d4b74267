"""Machine load around a cell or a run: how busy the machine was with OTHER work.

A benchmark on a shared machine competes with whatever else runs. This module
measures, from psutil, the load average and the CPU time that processes
*outside this process tree* used over a window (the orchestrator, its
workers and its sampler process are this tree), expressed as cores:
``other_cpu_cores = (system busy CPU-s − own tree CPU-s) / wall s``. On a
2-core machine 1.4 means other processes kept 1.4 cores busy on average.

`snapshot` reads the machine; `window` is pure arithmetic on two snapshots so
tests can drive it with recorded figures. The figures go to configs.csv
(``load_avg_1m``, ``other_cpu_cores``) and environment.json (``load``).
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

# At or above this share of the machine's cores used by other processes, a single-baseline
# comparison cannot tell a slowdown from the neighbours' work (see harness/guard.py).
BUSY_FRACTION = 0.10


@dataclass(frozen=True)
class LoadSnapshot:
    """Cumulative CPU counters at one moment (seconds, all cores together)."""

    t_s: float
    busy_cpu_s: float  # the whole machine: user + system + nice + irq + softirq + steal
    own_cpu_s: float  # this process tree, reaped children included
    load_avg_1m: float
    cpu_count: int


@dataclass(frozen=True)
class LoadWindow:
    """Load over one window: other processes' CPU in cores, and the load average at its end."""

    wall_s: float
    other_cpu_cores: float
    load_avg_1m: float
    cpu_count: int

    @property
    def other_fraction(self) -> float:
        """Share of the machine's cores used by other processes (0.7 = 1.4 of 2 cores)."""
        return self.other_cpu_cores / self.cpu_count if self.cpu_count else 0.0

    @property
    def busy(self) -> bool:
        return self.other_fraction >= BUSY_FRACTION


def _busy_cpu_s(times: Any) -> float:
    idle = getattr(times, "idle", 0.0) + getattr(times, "iowait", 0.0)
    total = sum(float(v) for v in times)
    # guest time is already counted in user on Linux; do not count it twice
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    return total - idle


def tree_cpu_s(root_pid: int) -> float:
    """CPU seconds of a process and its live descendants, including children they reaped."""
    if root_pid == os.getpid():
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        try:
            descendants = psutil.Process(root_pid).children(recursive=True)
        except psutil.Error:
            descendants = []
    else:
        try:
            root = psutil.Process(root_pid)
            descendants = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0.0
    for proc in descendants:
        try:
            t = proc.cpu_times()
        except psutil.Error:  # exited between listing and reading
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return float(total)


def snapshot(root_pid: int | None = None, clock: Callable[[], float] = time.monotonic
             ) -> LoadSnapshot:
    """Read the machine's counters now; ``root_pid`` (default: this process) is "own"."""
    pid = os.getpid() if root_pid is None else root_pid
    return LoadSnapshot(
        t_s=clock(),
        busy_cpu_s=_busy_cpu_s(psutil.cpu_times()),
        own_cpu_s=tree_cpu_s(pid),
        load_avg_1m=float(os.getloadavg()[0]),
        cpu_count=psutil.cpu_count() or 1,
    )


def window(before: LoadSnapshot, after: LoadSnapshot) -> LoadWindow:
    """Other processes' CPU use between two snapshots, in cores (never below 0)."""
    wall = after.t_s - before.t_s
    if wall <= 0:
        return LoadWindow(0.0, 0.0, after.load_avg_1m, after.cpu_count)
    other = (after.busy_cpu_s - before.busy_cpu_s) - (after.own_cpu_s - before.own_cpu_s)
    cores = min(max(other / wall, 0.0), float(after.cpu_count))
    return LoadWindow(wall, cores, after.load_avg_1m, after.cpu_count)


def combine(windows: Sequence[LoadWindow]) -> LoadWindow | None:
    """Several windows (a cell's blocks) as one: time-weighted other cores, highest load avg."""
    windows = [w for w in windows if w.wall_s > 0]
    if not windows:
        return None
    wall = sum(w.wall_s for w in windows)
    cores = sum(w.other_cpu_cores * w.wall_s for w in windows) / wall
    return LoadWindow(wall, cores, max(w.load_avg_1m for w in windows), windows[0].cpu_count)


class LoadMeter:
    """Start at the beginning of a window, `stop` at its end."""

    def __init__(self, root_pid: int | None = None) -> None:
        self.root_pid = root_pid
        self.before = snapshot(root_pid)

    def stop(self) -> LoadWindow:
        return window(self.before, snapshot(self.root_pid))


def cell_columns(windows: Sequence[LoadWindow | None]) -> dict[str, Any]:
    """The configs.csv load columns of a cell from its blocks' windows (empty if none)."""
    merged = combine([w for w in windows if w is not None])
    if merged is None:
        return {}
    return {"load_avg_1m": round(merged.load_avg_1m, 3),
            "other_cpu_cores": round(merged.other_cpu_cores, 4)}


def run_record(win: LoadWindow, at_start: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The environment.json ``load`` entry of a run."""
    record: dict[str, Any] = {**asdict(win), "busy": win.busy,
                              "busy_fraction_threshold": BUSY_FRACTION,
                              "method": "psutil: machine busy CPU minus this process tree's "
                                        "CPU over the run, in cores"}
    if at_start:
        record["at_start"] = dict(at_start)
    return record


def load_averages() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"load_avg_1m": one, "load_avg_5m": five, "load_avg_15m": fifteen}


def record_run_load(run_dir: Path, win: LoadWindow, at_start: Mapping[str, float]) -> None:
    """Add the run's ``load`` to its environment.json (atomically)."""
    from harness.records import write_environment

    path = Path(run_dir) / "environment.json"
    env = json.loads(path.read_text())
    env["load"] = run_record(win, at_start)
    write_environment(path, {k: v for k, v in env.items() if k != "schema_version"})


def describe(win: LoadWindow, where: str) -> str:
    """``other processes used 1.4 of 2 cores during the candidate``."""
    return (f"other processes used {win.other_cpu_cores:.2g} of {win.cpu_count} cores "
            f"during {where}")
