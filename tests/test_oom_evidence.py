"""A SIGKILLed worker is `oom` only on evidence: the cgroup's oom_kill counter or the kernel log."""

from __future__ import annotations

import os
from pathlib import Path

from harness.oom_evidence import (
    OomWatch,
    kernel_log_oom_line,
    memory_counter_path,
    read_oom_kills,
)

# cgroup v2 memory.events and v1 memory.oom_control, laid out as the kernel writes them.
EVENTS = "low 0\nhigh 0\nmax {max}\noom {oom}\noom_kill {kills}\noom_group_kill 0\n"
OOM_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill {kills}\n"
# Kernel log records as /dev/kmsg gives them (prio,seq,usec,flags;message).
KMSG = (
    "6,1201,5123456789,-;python3 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|"
    "__GFP_COMP), order=0, oom_score_adj=0\n"
    "6,1236,5123459911,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
    "mems_allowed=0,oom_memcg=/user.slice,task_memcg=/user.slice,task=python3,pid={pid},uid=0\n"
    "3,1237,5123459950,-;Memory cgroup out of memory: Killed process {pid} (python3) "
    "total-vm:9823344kB, anon-rss:7712108kB, file-rss:102400kB, shmem-rss:0kB, UID:0 "
    "pgtables:15500kB oom_score_adj:0\n"
)
NOT_IT = 4_000_001  # a pid above the default pid_max: no process has it


def test_a_rising_oom_kill_counter_makes_the_kill_oom(tmp_path: Path) -> None:
    events = tmp_path / "memory.events"
    events.write_text(EVENTS.format(max=3, oom=0, kills=0))
    watch = OomWatch.start(events, kmsg=tmp_path / "no-kmsg")
    events.write_text(EVENTS.format(max=9, oom=1, kills=1))
    status, reason = watch.verdict(NOT_IT)
    assert status == "oom"
    assert "oom_kill counter rose from 0 to 1" in reason and str(events) in reason


def test_cgroup_v1_oom_control_counter_is_read_too(tmp_path: Path) -> None:
    control = tmp_path / "memory.oom_control"
    control.write_text(OOM_CONTROL.format(kills=4))
    assert read_oom_kills(control) == 4
    watch = OomWatch.start(control, kmsg=tmp_path / "no-kmsg")
    control.write_text(OOM_CONTROL.format(kills=5))
    assert watch.verdict(NOT_IT)[0] == "oom"


def test_no_evidence_is_failed_killed_by_sigkill(tmp_path: Path) -> None:
    events = tmp_path / "memory.events"
    events.write_text(EVENTS.format(max=0, oom=0, kills=2))
    status, reason = OomWatch.start(events, kmsg=tmp_path / "no-kmsg").verdict(NOT_IT)
    assert status == "failed"
    assert reason.startswith("worker killed by SIGKILL; no out-of-memory evidence")
    assert "oom_kill unchanged at 2" in reason and "not readable" in reason
    nothing = OomWatch.start(tmp_path / "missing", kmsg=tmp_path / "no-kmsg")
    assert nothing.verdict(NOT_IT)[0] == "failed"


def test_kernel_log_naming_the_pid_makes_the_kill_oom(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(KMSG.format(pid=31337))
    line, _ = kernel_log_oom_line(31337, kmsg)
    assert line is not None and line.startswith("Memory cgroup out of memory: Killed process")
    assert kernel_log_oom_line(3133, kmsg)[0] is None  # a prefix of the pid is not the pid
    status, reason = OomWatch(None, None, kmsg).verdict(31337)
    assert status == "oom" and "Killed process 31337 (python3)" in reason


def test_counter_path_from_proc_cgroup_v2_and_v1(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    (root / "user.slice" / "job").mkdir(parents=True)
    (root / "user.slice" / "job" / "memory.events").write_text(EVENTS.format(max=0, oom=0,
                                                                              kills=0))
    v2 = tmp_path / "cgroup-v2"
    v2.write_text("0::/user.slice/job\n")
    assert memory_counter_path(v2, root) == root / "user.slice" / "job" / "memory.events"
    (root / "memory" / "api" / "x").mkdir(parents=True)
    (root / "memory" / "api" / "x" / "memory.oom_control").write_text(OOM_CONTROL.format(kills=0))
    v1 = tmp_path / "cgroup-v1"
    v1.write_text("5:devices:/\n4:memory:/api/x\n0::/\n")
    assert memory_counter_path(v1, root) == root / "memory" / "api" / "x" / "memory.oom_control"
    assert memory_counter_path(tmp_path / "absent", root) is None


def test_this_machine_gives_a_verdict_without_crashing() -> None:
    status, reason = OomWatch.start().verdict(os.getpid())
    assert status == "failed" and "killed by SIGKILL" in reason
