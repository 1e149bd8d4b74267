"""pytest-benchmark entry: one test per cell of a profile, one round per measured step.

    pytest benchmarks/ --benchmark-only [--tfbench-profile quick|full|FILE]
                                        [--tfbench-out results] [--tfbench-no-plots]

The session writes the same results directory as ``tfbench run``. With a profile's
``interleave = K`` (K >= 2) the first cell test runs every selected cell's K blocks in
the interleaved order of ``tfbench run --interleave K`` (so ``block_order`` is
``interleaved`` and ``compare --within`` may pair them); each test then reports its
own cell. Without it each test runs its cell's blocks back to back (``sequential``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest

from harness.commands.run import preflight
from harness.config import Cell, Profile, load_profile
from harness.errors import UserError
from harness.orchestrator import CellOutcome, RunSession, make_run_id, new_run_dir
from harness.progress import Progress
from harness.records import write_environment


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tfbench")
    group.addoption("--tfbench-profile", default="quick", help="quick, full or a TOML file")
    group.addoption("--tfbench-out", default="results", help="parent of the results directory")
    group.addoption("--tfbench-models", default=None, help="comma-separated model override")
    group.addoption("--tfbench-measured-steps", type=int, default=None,
                    help="the fewest measured steps per block (pytest-benchmark rounds): "
                         "a cell measures on past it until the median's 95% CI is within "
                         "±target_ci_rel and the phase spans min_duration_s, up to "
                         "max_measured_steps (profile settings), so rounds vary from run to "
                         "run with the machine's noise (10 may give 17 rounds, then 60); "
                         "a profile without target_ci_rel and with min_duration_s = 0 gives "
                         "exactly this many")
    group.addoption("--tfbench-samplers", default=None, help="comma-separated, or none")
    group.addoption("--tfbench-no-plots", action="store_true", help="skip charts at the end")
    group.addoption("--tfbench-interleave", type=int, default=None,
                    help="K blocks per cell, interleaved across the selected cells")


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
             "interleave": config.getoption("--tfbench-interleave"),
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


CELLS_KEY = pytest.StashKey[list[Cell]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """The cells of the tests that will run (after -k/-m deselection), in order."""
    params = [item.callspec.params.get("tfbench_cell") for item in session.items
              if hasattr(item, "callspec")]
    # a mode with no cells is parametrized with an empty list: pytest's NOTSET, not a cell
    cells = [p for p in params if isinstance(p, Cell)]
    session.config.stash[CELLS_KEY] = cells


class _LazySession:
    """Creates the results directory when the first cell runs (not at collection)."""

    def __init__(self, profile: Profile, out: Path, cells: list[Cell] | None = None,
                 stream: TextIO | None = None) -> None:
        self.profile = profile
        self.out = out
        self.cells = list(cells or [])
        self.session: RunSession | None = None
        self.outcomes: dict[str, CellOutcome] = {}
        self.stream = stream or sys.stderr
        self.progress: Progress | None = None

    def outcome(self, cell: Cell) -> CellOutcome:
        """The cell's recorded outcome: interleaved with the other selected cells when the
        profile asks for several blocks, else its own blocks back to back."""
        from harness.orchestrator import run_schedule

        interleave = self.profile.settings.interleave > 1 and len(self.cells) > 1 \
            and cell in self.cells
        session = self.get()
        progress = self._progress(session)
        if not interleave:
            (result,) = run_schedule(session, [cell], progress)
            return result
        if not self.outcomes:
            for result in run_schedule(session, self.cells, progress):
                self.outcomes[result.cell.config_id] = result
        return self.outcomes[cell.config_id]

    def _progress(self, session: RunSession) -> Progress:
        """One progress display for the session's cells: per-cell ETA plans and steps."""
        if self.progress is None:
            from harness.orchestrator import unit_plans

            self.progress = Progress(unit_plans(session.runnable(self.cells),
                                                self.profile.settings), stream=self.stream)
            for line in session.availability.lines():
                self.progress.note(f"note: {line}")
        return self.progress

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
            self.session.decide_availability(self.cells)
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
        if self.progress is not None:
            self.progress.close()


RUN_DIR_KEY = pytest.StashKey[Path]()


class _Uncaptured:
    """A text stream that writes past pytest's output capture (progress during a test)."""

    def __init__(self, config: pytest.Config) -> None:
        self._capture = config.pluginmanager.get_plugin("capturemanager")
        self._stream = sys.__stderr__ or sys.stderr

    def write(self, text: str) -> int:
        if self._capture is None:
            return self._stream.write(text)
        with self._capture.global_and_fixture_disabled():
            n = self._stream.write(text)
            self._stream.flush()
        return n

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The results directory, last, where a reader looks for it."""
    run_dir = config.stash.get(RUN_DIR_KEY, None)
    if run_dir is not None:
        terminalreporter.write_line(f"tfbench results: {run_dir}")


@pytest.fixture(scope="session")
def tfbench_session(request: pytest.FixtureRequest) -> Iterator[_LazySession]:
    lazy = _LazySession(_profile(request.config), Path(request.config.getoption("--tfbench-out")),
                        request.config.stash.get(CELLS_KEY, []),
                        stream=_Uncaptured(request.config))  # type: ignore[arg-type]
    yield lazy
    lazy.close()
    if lazy.session is not None:
        request.config.stash[RUN_DIR_KEY] = lazy.session.run_dir


@pytest.fixture
def tfbench_cell_runner(tfbench_session: _LazySession, benchmark: Any) -> Any:
    """A function that runs one cell and reports it through the ``benchmark`` fixture."""
    return lambda cell: run_cell_as_benchmark(tfbench_session, cell, benchmark)


def run_cell_as_benchmark(session: _LazySession, cell: Cell, benchmark: Any) -> None:
    """Run one cell in its worker and report its measured steps as benchmark rounds."""
    from harness.pytest_bridge import replay_rounds

    outcome = session.outcome(cell)
    if outcome.status == "skipped":
        pytest.skip(outcome.reason)
    if outcome.status != "ok":
        pytest.fail(f"{outcome.status}: {outcome.reason}", pytrace=False)
    benchmark.group = f"{cell.mode}-{cell.model}"
    replay_rounds(benchmark, outcome.measured_durations(),
                  {**cell.factors(), "config_id": cell.config_id,
                   "run_id": outcome.row["run_id"],
                   "first_step_s": outcome.row["first_step_s"]})
