"""pytest-benchmark entry: one test per cell of a profile, one round per measured step.

    pytest benchmarks/ --benchmark-only [--tfbench-profile quick|full|FILE]
                                        [--tfbench-out results] [--tfbench-no-plots]

The session writes the same results directory as ``tfbench run``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.commands.run import preflight
from harness.config import Cell, Profile, load_profile
from harness.errors import UserError
from harness.orchestrator import RunSession, make_run_id, new_run_dir
from harness.records import write_environment


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tfbench")
    group.addoption("--tfbench-profile", default="quick", help="quick, full or a TOML file")
    group.addoption("--tfbench-out", default="results", help="parent of the results directory")
    group.addoption("--tfbench-models", default=None, help="comma-separated model override")
    group.addoption("--tfbench-measured-steps", type=int, default=None)
    group.addoption("--tfbench-samplers", default=None, help="comma-separated, or none")
    group.addoption("--tfbench-no-plots", action="store_true", help="skip charts at the end")


def _profile(config: pytest.Config) -> Profile:
    try:
        profile = load_profile(config.getoption("--tfbench-profile"))
        models = config.getoption("--tfbench-models")
        steps = config.getoption("--tfbench-measured-steps")
        samplers = config.getoption("--tfbench-samplers")
        return profile.with_overrides(
            {"models": models.split(",") if models else None},
            {"measured_steps": steps,
             "samplers": samplers,
             "plots": False if config.getoption("--tfbench-no-plots") else None},
        )
    except UserError as exc:
        raise pytest.UsageError(exc.message) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "tfbench_cell" not in metafunc.fixturenames:
        return
    mode = metafunc.function.__name__.removeprefix("test_")
    try:
        cells = [c for c in preflight(_profile(metafunc.config)) if c.mode == mode]
    except UserError as exc:
        raise pytest.UsageError(exc.message) from None
    metafunc.parametrize("tfbench_cell", cells, ids=[c.test_id for c in cells])


class _LazySession:
    """Creates the results directory when the first cell runs (not at collection)."""

    def __init__(self, profile: Profile, out: Path) -> None:
        self.profile = profile
        self.out = out
        self.session: RunSession | None = None

    def get(self) -> RunSession:
        if self.session is None:
            import time

            from harness.environment import collect

            t0_ns = time.perf_counter_ns()
            run_dir = new_run_dir(self.out, make_run_id())
            write_environment(run_dir / "environment.json",
                              collect(run_dir.name, t0_ns, ["pytest", *sys.argv[1:]],
                                      self.profile.name))
            self.session = RunSession(run_dir, self.profile.settings, run_id=run_dir.name,
                                      t0_ns=t0_ns)
            status = self.session.start_samplers()
            from harness.orchestrator import record_samplers

            record_samplers(run_dir, status, None)
        return self.session

    def close(self) -> None:
        if self.session is None:
            return
        from harness.orchestrator import record_samplers

        summary = self.session.close()
        record_samplers(self.session.run_dir, self.session.sampler_status, summary)
        if self.profile.settings.plots:
            from harness.plots import write_run_charts

            write_run_charts(self.session.run_dir)
        print(f"\ntfbench results: {self.session.run_dir}")


@pytest.fixture(scope="session")
def tfbench_session(request: pytest.FixtureRequest) -> Iterator[_LazySession]:
    lazy = _LazySession(_profile(request.config), Path(request.config.getoption("--tfbench-out")))
    yield lazy
    lazy.close()


@pytest.fixture
def tfbench_cell_runner(tfbench_session: _LazySession, benchmark: Any) -> Any:
    """A function that runs one cell and reports it through the ``benchmark`` fixture."""
    return lambda cell: run_cell_as_benchmark(tfbench_session, cell, benchmark)


def run_cell_as_benchmark(session: _LazySession, cell: Cell, benchmark: Any) -> None:
    """Run one cell in its worker and report its measured steps as benchmark rounds."""
    from harness.pytest_bridge import replay_rounds

    outcome = session.get().run_cell(cell)
    if outcome.status == "skipped":
        pytest.skip(outcome.reason)
    if outcome.status != "ok":
        pytest.fail(f"{outcome.status}: {outcome.reason}", pytrace=False)
    benchmark.group = f"{cell.mode}-{cell.model}"
    replay_rounds(benchmark, outcome.measured_durations(),
                  {**cell.factors(), "config_id": cell.config_id,
                   "run_id": outcome.row["run_id"],
                   "first_step_s": outcome.row["first_step_s"]})
