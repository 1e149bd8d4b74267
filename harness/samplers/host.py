"""The sampler process and the handle the orchestrator drives it with.

`SamplerHost` starts ``python -m harness.samplers.host`` beside the workers for
the whole run, so that sampling never competes for a worker's interpreter
lock. They talk in JSON lines: the handle writes commands to the process's
stdin (``active``, ``flush``, ``stop``), the process answers on stdout
(``started``, ``flushed``, ``wrote``, ``problem``, ``stopped``). The process
polls each sampler on its own interval, stamps readings with the run's clock
(``time.perf_counter_ns() - t0_ns``; CLOCK_MONOTONIC is system-wide on Linux,
so samples line up with the workers' step records), tags them with the cell
active at that instant and appends them to ``samples.csv``. A sampler that
cannot run is reported with its reason and skipped; one that fails while
running is reported once and dropped; if the process itself dies the run goes
on and the summary says when the samples stopped.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from harness.errors import UserError
from harness.records import SAMPLES_FILE, RunFiles
from harness.samplers import SAMPLER_NAMES, Sampler, SamplerUnavailable, make_sampler

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
FLUSH_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
WRITE_EVERY_S = 0.5
LOG_FILE = "samplers.log"


# ---------------------------------------------------------------------------------------
# The handle, in the orchestrator's process.
# ---------------------------------------------------------------------------------------

class SamplerHost:
    """Runs and talks to the sampler process of one run."""

    def __init__(self, run_dir: Path, run_id: str, t0_ns: int, names: Sequence[str],
                 interval_s: float | None = None, host: str | None = None) -> None:
        for name in names:
            if name not in SAMPLER_NAMES:
                raise UserError.invalid("samplers", name, SAMPLER_NAMES)
        if interval_s is not None and (isinstance(interval_s, bool)
                                       or not isinstance(interval_s, (int, float))
                                       or not interval_s > 0):
            raise UserError.invalid("sample_interval_s", interval_s,
                                    "numbers > 0 (None: each sampler's own interval)")
        self.run_dir = Path(run_dir)
        self.run_id = run_id
        self.host = host or socket.gethostname()
        self.t0_ns = int(t0_ns)
        self.names = tuple(dict.fromkeys(names))
        self.interval_s = None if interval_s is None else float(interval_s)
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._status: dict[str, str] | None = None
        self._flushed = 0
        self._seq = 0
        self._last_sample_s: float | None = None
        self._rows = 0
        self._problems: list[dict[str, str]] = []
        self._summary: dict[str, Any] | None = None
        self._died_at_ns: int | None = None
        self._eof = False
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._eof

    def start(self) -> dict[str, str]:
        """Start the process; each sampler name -> ``active`` or the reason it is skipped."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = {"run_dir": str(self.run_dir), "run_id": self.run_id, "t0_ns": self.t0_ns,
                  "host": self.host,
                  "names": list(self.names), "interval_s": self.interval_s}
        with (self.run_dir / LOG_FILE).open("a") as log_fh:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "harness.samplers.host", json.dumps(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_fh, text=True,
                bufsize=1, start_new_session=True,  # a terminal's Ctrl-C reaches the
            )                                       # orchestrator, which stops us
        self._reader = threading.Thread(target=self._pump, name="sampler-host-reader",
                                        daemon=True)
        self._reader.start()
        with self._cond:
            self._cond.wait_for(lambda: self._status is not None or self._eof, START_TIMEOUT_S)
            status = self._status
        if status is None:
            reason = "sampler process did not start"
            if self._eof:
                reason = f"sampler process exited at start ({self._log_tail()})"
            self._kill()
            return {name: reason for name in self.names}
        return dict(status)

    def _log_tail(self) -> str:
        try:
            lines = (self.run_dir / LOG_FILE).read_text().strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no log"

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self._on_event(event)
        with self._cond:
            self._eof = True
            if self._summary is None and not self._stopping:
                self._died_at_ns = time.perf_counter_ns()
            self._cond.notify_all()
        if self._died_at_ns is not None:
            log.warning("sampler process died at t=%.3f s; samples stop at t=%s s",
                        (self._died_at_ns - self.t0_ns) / 1e9, self._last_sample_s)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        with self._cond:
            if kind == "started":
                self._status = dict(event["status"])
            elif kind == "flushed":
                self._flushed = max(self._flushed, int(event["seq"]))
            elif kind == "wrote":
                self._rows += int(event["rows"])
                self._last_sample_s = event.get("last_t_s", self._last_sample_s)
            elif kind == "problem":
                problem = {"sampler": str(event.get("sampler", "")),
                           "message": str(event.get("message", ""))}
                self._problems.append(problem)
                log.warning("sampler %s: %s", problem["sampler"], problem["message"])
            elif kind == "stopped":
                self._summary = dict(event["summary"])
            self._cond.notify_all()

    def _send(self, message: dict[str, Any]) -> bool:
        proc = self._proc
        if proc is None or proc.stdin is None or not self.alive:
            return False
        try:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            return False
        return True

    def set_active(self, config_id: str, pid: int | None) -> None:
        """The cell now running (``""`` between cells) and its worker's pid."""
        self._send({"cmd": "active", "config_id": config_id, "pid": pid,
                    "t_ns": time.perf_counter_ns()})

    def flush(self) -> None:
        """Return once every sample taken so far is in samples.csv (bounded wait)."""
        with self._cond:
            self._seq += 1
            seq = self._seq
        if not self._send({"cmd": "flush", "seq": seq}):
            return
        with self._cond:
            self._cond.wait_for(lambda: self._flushed >= seq or self._eof, FLUSH_TIMEOUT_S)

    def stop(self) -> dict[str, Any]:
        """Stop the process and return its summary (samplers, counts, problems, death)."""
        self._stopping = self._died_at_ns is None
        if self._send({"cmd": "stop"}):
            with self._cond:
                self._cond.wait_for(lambda: self._summary is not None or self._eof,
                                    STOP_TIMEOUT_S)
        proc = self._proc
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._kill()
        if self._reader is not None:
            self._reader.join(timeout=5)
        with self._cond:
            summary: dict[str, Any] = dict(self._summary or {})
            summary.setdefault("status", dict(self._status or {}))
            summary.setdefault("active", [n for n, s in (self._status or {}).items()
                                          if s == "active"])
            summary.setdefault("rows", self._rows)
            summary["problems"] = list(self._problems)
            summary["last_sample_s"] = self._last_sample_s
            summary["died_at_s"] = (None if self._died_at_ns is None
                                    else (self._died_at_ns - self.t0_ns) / 1e9)
        return summary

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


# ---------------------------------------------------------------------------------------
# The sampler process.
# ---------------------------------------------------------------------------------------

class _Timeline:
    """Which cell was active at each instant, from the ``active`` commands' time stamps."""

    def __init__(self) -> None:
        self._times: list[int] = []
        self._ids: list[str] = []

    def set(self, t_ns: int, config_id: str) -> None:
        i = bisect.bisect_right(self._times, t_ns)
        self._times.insert(i, t_ns)
        self._ids.insert(i, config_id)

    def at(self, t_ns: int) -> str:
        i = bisect.bisect_right(self._times, t_ns)
        return self._ids[i - 1] if i else ""


class _Process:
    def __init__(self, config: dict[str, Any], out: IO[str]) -> None:
        self.run_id = str(config["run_id"])
        self.host = config.get("host")
        self.t0_ns = int(config["t0_ns"])
        self.names = list(config["names"])
        self.interval_s = (None if config["interval_s"] is None
                           else float(config["interval_s"]))
        self.appender = RunFiles(Path(config["run_dir"])).appender(SAMPLES_FILE)
        self.out = out
        self.samplers: dict[str, Sampler] = {}
        self.intervals: dict[str, float] = {}
        self.status: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.timeline = _Timeline()
        self.pending: list[tuple[int, str, str, str, float]] = []
        self.commands: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()

    def emit(self, event: dict[str, Any]) -> None:
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()

    def open_all(self) -> None:
        for name in self.names:
            if name == "tegrastats" and self.status.get("jtop") == "active":
                self.status[name] = "skipped: the jtop service answers; jtop is used instead"
                continue
            try:
                sampler = make_sampler(name)
                avail = sampler.availability()
                if not avail.ok:
                    raise SamplerUnavailable(avail.reason)
                interval = (sampler.default_interval_s if self.interval_s is None
                            else self.interval_s)
                sampler.open(interval)
            except SamplerUnavailable as exc:
                self.status[name] = str(exc) or "unavailable"
                continue
            except Exception as exc:  # a broken sampler must not stop the others
                self.status[name] = f"failed to open: {type(exc).__name__}: {exc}"
                continue
            self.samplers[name] = sampler
            self.intervals[name] = interval
            self.status[name] = "active"
            self.counts[name] = 0

    def poll(self, name: str) -> None:
        sampler = self.samplers[name]
        now = time.perf_counter_ns()
        try:
            readings = sampler.read()
        except Exception as exc:
            t_s = (now - self.t0_ns) / 1e9
            message = f"stopped at t={t_s:.3f} s: {exc}"
            self.status[name] = f"failed: {message}"
            self.emit({"event": "problem", "sampler": name, "message": message})
            del self.samplers[name]
            with contextlib.suppress(Exception):  # it is already broken
                sampler.close()
            return
        for r in readings:
            self.pending.append((r.t_ns if r.t_ns is not None else now, name, r.metric, r.unit,
                                 r.value))
        self.counts[name] += len(readings)
        for message in sampler.problems():
            self.emit({"event": "problem", "sampler": name, "message": message})

    def write(self) -> None:
        if not self.pending:
            return
        self.pending.sort(key=lambda p: p[0])
        rows = [{"run_id": self.run_id, "config_id": self.timeline.at(t), "sampler": name,
                 "metric": metric, "unit": unit, "t_s": (t - self.t0_ns) / 1e9, "value": value,
                 "host": self.host}
                for t, name, metric, unit, value in self.pending]
        self.appender.append(rows)
        self.pending = []
        self.emit({"event": "wrote", "rows": len(rows), "last_t_s": rows[-1]["t_s"]})

    def read_commands(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                self.commands.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        self.commands.put(None)

    def handle(self, command: dict[str, Any] | None) -> bool:
        """Apply one command; False when the process should stop."""
        if command is None or command.get("cmd") == "stop":
            return False
        if command.get("cmd") == "active":
            self.timeline.set(int(command["t_ns"]), str(command.get("config_id") or ""))
            pid = command.get("pid")
            for sampler in self.samplers.values():
                sampler.set_pid(int(pid) if pid is not None else None)
        elif command.get("cmd") == "flush":
            for name in list(self.samplers):
                self.poll(name)
            self.write()
            self.emit({"event": "flushed", "seq": command["seq"]})
        return True

    def run(self) -> None:
        self.open_all()
        self.emit({"event": "started", "status": self.status})
        threading.Thread(target=self.read_commands, args=(sys.stdin,), daemon=True).start()
        now = time.perf_counter()
        due = {name: now for name in self.samplers}
        next_write = now + WRITE_EVERY_S
        running = True
        while running:
            now = time.perf_counter()
            for name in list(self.samplers):
                if due[name] <= now:
                    self.poll(name)
                    # Keep a fixed cadence; skip ahead rather than burst after a stall.
                    due[name] = max(due[name] + self.intervals[name], now)
            if now >= next_write:
                self.write()
                next_write = now + WRITE_EVERY_S
            wake = min([next_write, *(due[n] for n in self.samplers)])
            try:
                command = self.commands.get(timeout=max(wake - time.perf_counter(), 0.0))
            except queue.Empty:
                continue
            running = self.handle(command)
        for name in list(self.samplers):
            self.poll(name)
        self.write()
        for sampler in self.samplers.values():
            try:
                sampler.close()
            except Exception as exc:
                self.emit({"event": "problem", "sampler": sampler.name,
                           "message": f"close failed: {exc}"})
        self.emit({"event": "stopped", "summary": {
            "status": self.status,
            "active": list(self.counts),
            "samples": self.counts,
        }})


def main(argv: Sequence[str]) -> int:
    """Entry point of the sampler process: ``python -m harness.samplers.host CONFIG_JSON``."""
    config = json.loads(argv[0])
    out = sys.stdout
    # Anything a sampler library prints must not corrupt the event stream.
    sys.stdout = sys.stderr
    _Process(config, out).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
