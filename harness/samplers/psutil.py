"""Host sampler: the worker's resident memory and CPU use, and system memory in use.

Always available (psutil is a dependency). The worker's pid changes with each
cell, so the host tells this sampler which process to watch with `set_pid`.
"""

from __future__ import annotations

import psutil

from harness.samplers import Availability, Reading


class PsutilSampler:
    """Reads ``rss`` (B) and ``cpu_percent`` (%) of the worker and ``ram_used`` (B) of the host."""

    name = "psutil"
    default_interval_s = 0.1

    def __init__(self) -> None:
        self._pid: int | None = None
        self._proc: psutil.Process | None = None
        self._primed = False

    def availability(self) -> Availability:
        return Availability(True, "")

    def open(self, interval_s: float) -> None:
        del interval_s

    def set_pid(self, pid: int | None) -> None:
        if pid == self._pid:
            return
        self._pid = pid
        self._primed = False
        self._proc = None
        if pid is not None:
            try:
                self._proc = psutil.Process(pid)
            except psutil.Error:
                self._proc = None

    def read(self) -> list[Reading]:
        vm = psutil.virtual_memory()
        out = [Reading("ram_used", "B", float(vm.total - vm.available))]
        proc = self._proc
        if proc is None:
            return out
        try:
            with proc.oneshot():
                rss = proc.memory_info().rss
                cpu = proc.cpu_percent(None)
        except psutil.Error:
            # The worker exited (or became a zombie) between cells: nothing to read.
            self._proc = None
            return out
        out.append(Reading("rss", "B", float(rss)))
        # psutil's first cpu_percent call for a process has no interval to measure
        # over and returns 0.0; that is not a measurement, so it is not recorded.
        if self._primed:
            out.append(Reading("cpu_percent", "%", float(cpu)))
        self._primed = True
        return out

    def problems(self) -> list[str]:
        return []

    def close(self) -> None:
        self._proc = None
