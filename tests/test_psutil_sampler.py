"""The psutil sampler against real child processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest
from processes import holder, release

from harness.samplers.psutil import PsutilSampler


@pytest.fixture
def big() -> Iterator[subprocess.Popen[str]]:
    proc = holder(200 * 1024 * 1024)
    yield proc
    if proc.poll() is None:
        release(proc)


def metrics(readings: list) -> dict[str, float]:  # type: ignore[type-arg]
    return {r.metric: r.value for r in readings}


def test_rss_of_the_worker_and_system_memory(big: subprocess.Popen[str]) -> None:
    sampler = PsutilSampler()
    assert sampler.availability().ok
    sampler.open(0.1)
    sampler.set_pid(big.pid)
    first = sampler.read()
    got = metrics(first)
    assert got["rss"] >= 200 * 1024 * 1024
    assert 0 < got["ram_used"] <= psutil.virtual_memory().total
    assert {r.unit for r in first} == {"B"}
    # psutil's first cpu_percent has nothing to measure over: not recorded.
    assert "cpu_percent" not in got
    second = metrics(sampler.read())
    assert second["cpu_percent"] >= 0
    sampler.close()


def test_rss_follows_the_pid_it_is_told(big: subprocess.Popen[str]) -> None:
    small = holder(1024)
    try:
        sampler = PsutilSampler()
        sampler.set_pid(small.pid)
        small_rss = metrics(sampler.read())["rss"]
        sampler.set_pid(big.pid)
        big_rss = metrics(sampler.read())["rss"]
        assert big_rss - small_rss >= 150 * 1024 * 1024
    finally:
        release(small)


def test_exited_worker_and_no_worker_give_system_memory_only(big: subprocess.Popen[str]) -> None:
    sampler = PsutilSampler()
    sampler.set_pid(big.pid)
    assert "rss" in metrics(sampler.read())
    release(big)
    assert set(metrics(sampler.read())) == {"ram_used"}
    sampler.set_pid(None)
    assert set(metrics(sampler.read())) == {"ram_used"}


def test_pid_that_does_not_exist_is_not_an_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    sampler = PsutilSampler()
    sampler.set_pid(proc.pid)
    assert set(metrics(sampler.read())) == {"ram_used"}
