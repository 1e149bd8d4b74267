"""A worker process seen from the orchestrator: waiting on it (with its step progress),
reading its result for this attempt only, and turning an exit without a result into a
status. No TensorFlow here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.lifecycle import stop_group
from harness.oom_evidence import OomWatch
from harness.step_progress import StepProgress, read_step_progress

POLL_S = 0.5  # how often a running worker's step progress is read


def _wait(proc: subprocess.Popen[bytes], deadline: float, progress_path: Path,
          on_step: Callable[[StepProgress], None] | None) -> bool:
    """Wait for the worker until ``deadline`` (perf_counter seconds), passing its step
    progress to ``on_step`` as it changes; kill it at the deadline. True if it timed out."""
    last: StepProgress | None = None
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            stop_group(proc, grace_s=0)
            return True
        try:
            proc.wait(timeout=min(POLL_S, left) if on_step is not None else left)
            return False
        except subprocess.TimeoutExpired:
            pass
        if on_step is not None:
            now = read_step_progress(progress_path)
            if now is not None and now != last:
                last = now
                on_step(now)


def _exit_reason(returncode: int, log_path: Path, pid: int,
                 watch: OomWatch) -> tuple[str, str]:
    tail = ""
    if log_path.exists():
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        tail = lines[-1][:300] if lines else ""
    if returncode < 0:
        sig = signal.Signals(-returncode)
        if sig == signal.SIGKILL:
            return watch.verdict(pid)
        return "failed", f"worker died with signal {sig.name}; last log line: {tail}"
    return "failed", f"worker exited with code {returncode} without a result; last log line: {tail}"


def _read_result(path: Path, attempt: str, log_path: Path) -> dict[str, Any] | None:
    """The worker's result if it belongs to ``attempt``; a result of another attempt (or an
    unreadable file) is discarded with a note in the cell's log."""
    if not path.exists():
        return None
    try:
        result: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        result = {}
    path.unlink(missing_ok=True)
    if isinstance(result, dict) and result.get("attempt") == attempt and "status" in result:
        return result
    with log_path.open("a") as log:
        log.write(f"tfbench: discarded {path.name}: it is not this attempt's result "
                  f"(attempt {result.get('attempt') if isinstance(result, dict) else None!r}, "
                  f"expected {attempt!r})\n")
    return None


def _kill_group_leftovers(proc: subprocess.Popen[bytes]) -> None:
    """A worker that exited may have left children in its group; stop them."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
