"""Helpers for tests that drive real child processes (not timing measurements)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

HOLD = ("import sys\n"
        "block = bytearray({size})\n"
        "for i in range(0, len(block), 4096):\n"
        "    block[i] = 1\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n")


def holder(size: int) -> subprocess.Popen[str]:
    """A child that touches `size` bytes, says ready, and waits until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(size=size)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll a readiness condition of real processes (not a timing measurement)."""
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while time.monotonic() < deadline:
        if predicate():
            return True
        tick.wait(0.05)
    return predicate()
