"""Jetson telemetry from the ``tegrastats`` binary, the fallback when no jtop service answers.

`parse_line` turns one printed line into metrics in SI units, for every shape
the boards print (JetPack 4 to 7): ``cur/avg`` power with or without ``mW``
and JetPack 7's three values per rail, a total rail (``VIN``, ``POM_5V_IN``,
``VDD_IN``) or none (AGX Xavier, AGX Orin: the total is the sum of the
connected rails, ``NC`` rails are dropped and ``VIN_SYS_5V0`` is one rail, not
the total), RAM/SWAP in MiB printed as MB, ``GR3D_FREQ`` with no, one or a list
of frequencies, temperatures with one or two values, and offline sensors
(``-256C``) skipped. `TegrastatsSampler` runs ``tegrastats --interval N`` and
parses its lines as they arrive.
"""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import threading
import time

from harness.samplers import Availability, Reading, SamplerUnavailable

MIB = 1024 * 1024
# Rails that name the board's input, i.e. the total, in the order jetson-stats prefers them.
TOTAL_RAILS = ("VIN", "POM_5V_IN", "VDD_IN")
OFFLINE_TEMP_C = -256.0

_DATE = re.compile(r"^\s*\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}\s+")
_MEM = re.compile(r"(?<!\S)(RAM|SWAP) (\d+)/(\d+)MB")
_CPU = re.compile(r"(?<!\S)CPU \[([^\]]*)\]")
_CORE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_EMC = re.compile(r"(?<!\S)EMC_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?(?!\S)")
_GR3D = re.compile(r"(?<!\S)GR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?(?!\S)")
_NUM = r"-?\d+(?:\.\d+)?"
_TEMP = re.compile(rf"(?<!\S)([A-Za-z][\w]*)@({_NUM})C(?:/({_NUM})C)?(?!\S)")
_RAIL = re.compile(r"(?<!\S)([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?!\S)")

UNITS = {"power_total": "W", "power_rail": "W", "ram_used": "B", "ram_total": "B",
         "swap_used": "B", "cpu_load": "%", "emc_load": "%", "emc_freq": "Hz",
         "gpu_load": "%", "gpu_freq": "Hz", "temp": "degC"}


def unit_of(metric: str) -> str:
    """The SI unit of a tegrastats metric name (``power_rail:VDD_SOC`` -> ``W``)."""
    return UNITS[metric.split(":", 1)[0]]


def _is_not_connected(rail: str) -> bool:
    return rail == "NC" or rail.startswith("NC_") or rail.endswith("_NC")


def _mean_freq_hz(text: str | None) -> float | None:
    if not text:
        return None
    freqs = [float(f) for f in text.split(",") if f]
    return sum(freqs) / len(freqs) * 1e6 if freqs else None


def parse_line(line: str) -> dict[str, float]:
    """Metrics of one tegrastats line, SI units; raises ValueError for a line that is not one."""
    text = _DATE.sub("", line.strip())
    out: dict[str, float] = {}
    for m in _MEM.finditer(text):
        kind, used, total = m.group(1), int(m.group(2)), int(m.group(3))
        if kind == "RAM":
            out["ram_used"] = float(used * MIB)
            out["ram_total"] = float(total * MIB)
        else:
            out["swap_used"] = float(used * MIB)
    cpu = _CPU.search(text)
    if cpu:
        loads = []
        for core in cpu.group(1).split(","):
            core = core.strip()
            if core == "off":
                continue
            cm = _CORE.match(core)
            if cm is None:
                raise ValueError(f"tegrastats: CPU entry {core!r} is not 'N%@MHz' or 'off'")
            loads.append(float(cm.group(1)))
        if loads:
            out["cpu_load"] = sum(loads) / len(loads)
    for pattern, prefix in ((_EMC, "emc"), (_GR3D, "gpu")):
        found = pattern.search(text)
        if found:
            out[f"{prefix}_load"] = float(found.group(1))
            freq = _mean_freq_hz(found.group(2))
            if freq is not None:
                out[f"{prefix}_freq"] = freq
    for m in _TEMP.finditer(text):
        value = float(m.group(2))
        if value <= OFFLINE_TEMP_C:
            continue
        out[f"temp:{m.group(1)}"] = value
    rails: dict[str, float] = {}
    for m in _RAIL.finditer(text):
        name = m.group(1)
        if name in ("RAM", "SWAP") or _is_not_connected(name):
            continue
        rails[name] = int(m.group(2)) / 1000.0
    total_name = next((n for n in TOTAL_RAILS if n in rails), None)
    if total_name is not None:
        out["power_total"] = rails.pop(total_name)
    elif rails:
        out["power_total"] = sum(rails.values())
    for name, watts in rails.items():
        out[f"power_rail:{name}"] = watts
    if not any(k in out for k in ("ram_used", "power_total", "cpu_load")):
        raise ValueError(f"not a tegrastats line: {line.strip()[:120]!r}")
    return out


class TegrastatsSampler:
    """Runs ``tegrastats --interval N`` and turns each printed line into readings."""

    name = "tegrastats"
    default_interval_s = 0.5

    def __init__(self, command: list[str] | None = None) -> None:
        self._command = command
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.SimpleQueue[tuple[int, str | None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._problems: list[str] = []
        self.malformed_lines = 0

    def _binary(self) -> str | None:
        return self._command[0] if self._command else shutil.which("tegrastats")

    def availability(self) -> Availability:
        if self._binary() is None:
            return Availability(False, "tegrastats not found on PATH (not a Jetson, or L4T "
                                       "tools not installed)")
        return Availability(True, "")

    def open(self, interval_s: float) -> None:
        binary = self._binary()
        if binary is None:
            raise SamplerUnavailable(self.availability().reason)
        ms = max(round(interval_s * 1000), 1)
        argv = [*self._command] if self._command else [binary, "--interval", str(ms)]
        try:
            self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                          text=True, bufsize=1)
        except OSError as exc:
            raise SamplerUnavailable(f"cannot run {binary}: {exc}") from None
        self._thread = threading.Thread(target=self._pump, name="tegrastats-reader", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put((time.perf_counter_ns(), line))
        self._lines.put((time.perf_counter_ns(), None))

    def set_pid(self, pid: int | None) -> None:
        del pid

    def read(self) -> list[Reading]:
        out: list[Reading] = []
        ended = False
        while True:
            try:
                t_ns, line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                ended = True
                break
            if not line.strip():
                continue
            try:
                metrics = parse_line(line)
            except ValueError as exc:
                self.malformed_lines += 1
                if self.malformed_lines == 1:
                    self._problems.append(f"malformed line skipped (further ones counted, not "
                                          f"reported): {exc}")
                continue
            out.extend(Reading(m, unit_of(m), v, t_ns) for m, v in metrics.items())
        if ended and not out:
            code = self._proc.wait() if self._proc is not None else None
            raise RuntimeError(f"tegrastats exited (code {code}); no more samples")
        if ended:
            self._lines.put((time.perf_counter_ns(), None))  # report the end on the next read
        return out

    def problems(self) -> list[str]:
        out, self._problems = self._problems, []
        return out

    def join(self, timeout_s: float) -> bool:
        """Wait until tegrastats has exited and all its output is queued; True when it has."""
        if self._proc is None or self._thread is None:
            return True
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
