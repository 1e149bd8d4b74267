"""Whether a worker killed by SIGKILL was killed for memory: evidence, not a guess.

A SIGKILL can come from the kernel's out-of-memory killer, from a cgroup limit,
or from any process (a user, a supervisor). Two records tell them apart:

- the memory cgroup's ``oom_kill`` counter (cgroup v2 ``memory.events``, or v1
  ``memory.oom_control``), read before the worker starts and after it ends; the
  kernel counts every OOM kill, global or cgroup, in the victim's cgroup and its
  ancestors;
- the kernel log (``/dev/kmsg``, readable with CAP_SYSLOG or
  ``kernel.dmesg_restrict=0``): ``Killed process <pid>`` or ``oom-kill:...pid=<pid>``.

The log names the pid, so it is read first; a counter that rose while the worker
ran is the next best evidence (another process of the same cgroup may have been
the victim, and the reason says which evidence was used). With neither, the
cell is ``failed`` with "killed by SIGKILL".
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
KMSG = Path("/dev/kmsg")
MAX_LOG_RECORDS = 200_000


def memory_counter_path(proc_cgroup: Path = PROC_CGROUP,
                        cgroup_root: Path = CGROUP_ROOT) -> Path | None:
    """The file holding this process's cgroup ``oom_kill`` counter (a worker inherits the
    cgroup), or None when there is none to read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        relative = path.lstrip("/")
        if "memory" in controllers.split(","):
            candidates.append(cgroup_root / "memory" / relative / "memory.oom_control")
        elif hierarchy == "0" and controllers == "":
            candidates.append(cgroup_root / relative / "memory.events")
            candidates.append(cgroup_root / "unified" / relative / "memory.events")
    return next((c for c in candidates if c.is_file()), None)


def read_oom_kills(path: Path) -> int | None:
    """The ``oom_kill`` count in a memory.events / memory.oom_control file (None: unreadable)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def kernel_log_oom_line(pid: int, kmsg: Path = KMSG) -> tuple[str | None, str]:
    """The kernel log line that reports an OOM kill of ``pid`` (None if there is none), and
    what was read (or why the log could not be read)."""
    pattern = re.compile(rf"(Killed process {pid}\b|oom-kill:.*\bpid={pid}\b)")
    try:
        fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return None, f"kernel log {kmsg} not readable ({exc.strerror})"
    found = None
    try:
        for _ in range(MAX_LOG_RECORDS):
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break  # the end of the buffer
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # records overwritten while reading: go on with the next
                return None, f"kernel log {kmsg} not readable ({exc.strerror})"
            if not record:
                break
            # /dev/kmsg gives one "prio,seq,usec,flags;message" record per read.
            for line in record.decode("utf8", errors="replace").splitlines():
                if pattern.search(line):
                    found = line.split(";", 1)[-1].strip()
    finally:
        os.close(fd)
    return found, f"kernel log {kmsg} read"


@dataclass
class OomWatch:
    """The cgroup counter read when a worker starts; `verdict` judges its SIGKILL."""

    counter_path: Path | None
    before: int | None
    kmsg: Path = KMSG

    @classmethod
    def start(cls, counter_path: Path | None = None, kmsg: Path = KMSG) -> OomWatch:
        path = counter_path if counter_path is not None else memory_counter_path()
        return cls(path, read_oom_kills(path) if path is not None else None, kmsg)

    def verdict(self, pid: int) -> tuple[str, str]:
        """``("oom", evidence)`` or ``("failed", "... killed by SIGKILL ...")`` for a worker
        that died of SIGKILL."""
        line, log_note = kernel_log_oom_line(pid, self.kmsg)
        if line is not None:
            return "oom", f"worker killed by the kernel's out-of-memory killer ({line[:300]})"
        after = read_oom_kills(self.counter_path) if self.counter_path is not None else None
        if self.before is not None and after is not None and after > self.before:
            return "oom", (f"worker killed by SIGKILL while the cgroup's oom_kill counter rose "
                           f"from {self.before} to {after} ({self.counter_path})")
        if self.counter_path is None:
            counter_note = "no cgroup oom_kill counter found"
        elif self.before is None or after is None:
            counter_note = f"{self.counter_path} unreadable"
        else:
            counter_note = f"oom_kill unchanged at {after} in {self.counter_path}"
        return "failed", (f"worker killed by SIGKILL; no out-of-memory evidence "
                          f"({counter_note}; {log_note}, no OOM kill of pid {pid})")
