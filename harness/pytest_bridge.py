"""The bridge between tfbench cells and pytest-benchmark.

A cell runs in its own worker process and is timed by the harness's clock;
pytest-benchmark then receives exactly those per-step durations, one round per
measured step (iterations 1), so ``--benchmark-json``, ``--benchmark-compare``
and ``--benchmark-histogram`` work on the same numbers as ``steps.csv``.

pytest-benchmark has no public call for "add these measured rounds", so the
replay goes through ``benchmark.pedantic`` with the fixture's timer swapped for
`ReplayTimer`; tests/test_pytest_bridge.py checks the JSON against the CSVs so
a change in pytest-benchmark's internals cannot slip by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ReplayTimer:
    """A timer that makes each pedantic round last exactly the next recorded duration."""

    __name__ = "tfbench.replay(perf_counter_ns)"

    def __init__(self, durations_s: Sequence[float]) -> None:
        self._durations = list(durations_s)
        self._calls = 0

    def __call__(self) -> float:
        # Rounds call the timer twice: start (0.0) and end (the recorded duration).
        index, is_end = divmod(self._calls, 2)
        self._calls += 1
        return self._durations[index] if is_end else 0.0

    def __repr__(self) -> str:
        return self.__name__


def replay_rounds(benchmark: Any, durations_s: Sequence[float],
                  extra_info: dict[str, Any] | None = None) -> None:
    """Feed a cell's measured step durations to a pytest-benchmark fixture as rounds."""
    if not durations_s:
        raise ValueError("a cell with status ok has measured steps")
    if extra_info:
        benchmark.extra_info.update(extra_info)
    benchmark._timer = ReplayTimer(durations_s)
    benchmark.pedantic(lambda: None, rounds=len(durations_s), iterations=1, warmup_rounds=0)
