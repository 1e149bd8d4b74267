"""Process lifecycle of a run: stop signals, worker process groups, parent death, the run lock.

- `stop_signals` turns SIGTERM, SIGHUP and SIGINT into an `Interrupted` exception in the
  orchestrator, so that the code that runs a worker can stop it (`stop_group`) and the
  run ends the way a Ctrl-C ends it (finished cells kept, exit 128 + signal number).
- Workers run in their own process group (``start_new_session``): a terminal's Ctrl-C
  reaches the orchestrator only, and the orchestrator stops the whole group.
- `die_with_parent` (in the worker) asks Linux to SIGKILL the process when the
  orchestrator dies (``PR_SET_PDEATHSIG``), so a SIGKILLed orchestrator leaves no
  orphan behind to write stale results.
- `RunLock` is an advisory ``flock`` on ``<run_dir>/.lock``: two runs or resumes never
  write one results directory at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType

from harness.errors import UserError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
GRACE_S = 5.0
LOCK_FILE = ".lock"
_PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """The orchestrator was asked to stop by a signal; exit code 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame: FrameType | None) -> None:
    # Once: the clean-up that follows (stopping the worker and the sampler, each bounded by
    # a grace period) must not itself be cut short by a second signal.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """While inside, SIGTERM/SIGHUP/SIGINT raise `Interrupted` (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str],
               grace_s: float = GRACE_S) -> None:
    """Stop a process started with ``start_new_session=True`` and everything in its group:
    SIGTERM, then SIGKILL after ``grace_s`` seconds."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)  # children it may have left behind
        return
    _kill_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    _kill_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); exit at once if
    the parent is already gone (it died before the request took effect)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid and os.getppid() != parent_pid:
        os._exit(3)


class RunLock:
    """An advisory exclusive lock on a results directory, held while a run writes it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _read_pid(self.path)
                raise UserError(
                    f"resume: {str(self.path.parent)!r} is being written by another tfbench "
                    f"run{f' (pid {holder})' if holder else ''}; wait for it to finish or "
                    "stop it first") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
