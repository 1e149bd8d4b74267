"""Runs a matrix of cells: one worker process per cell, a sampler process beside them.

The orchestrator never imports TensorFlow. For each cell (or each block of a
cell when interleaving) it starts ``python -m harness.worker``, tells the
sampler process which cell is active, waits with the cell's timeout, turns the
worker's exit into a status, and appends the cell's rows to the results
directory as soon as the cell is complete. A crash, an OOM kill or a timeout
costs one cell.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import stats
from harness.attribution import combine_attributions
from harness.ci_target import ci_target_met
from harness.config import Cell, RunSettings
from harness.drift import drift_columns  # [ab hook]
from harness.envmodel import Environment
from harness.errors import UserError
from harness.lifecycle import Interrupted, RunLock, stop_group, stop_signals
from harness.load import LoadMeter, LoadWindow, load_averages, record_run_load  # [ab hook]
from harness.load import cell_columns as cell_load_columns  # [ab hook]
from harness.oom_evidence import OomWatch
from harness.progress import Progress
from harness.records import (
    CONFIGS_FILE,
    OPS_FILE,
    SAMPLES_FILE,
    STEPS_FILE,
    RunFiles,
    read_environment,
    read_table,
    write_atomic,
    write_environment,
)
from harness.run_availability import RunAvailability, decide
from harness.run_progress import cell_summary, unit_label, unit_plans
from harness.scaling import scaling_efficiency, strategy_columns
from harness.step_progress import StepProgress
from harness.worker import settings_to_dict
from harness.worker_exit import (
    _exit_reason,
    _kill_group_leftovers,
    _read_result,
    _wait,
)

WORK_DIR = ".work"
BLOCK_ORDERS = ("interleaved", "sequential")
LOGS_DIR = "logs"


def make_run_id(now: datetime | None = None, host: str | None = None) -> str:
    """``YYYYmmdd-HHMMSS-<host>`` in UTC."""
    now = now or datetime.now(timezone.utc)
    host = (host or socket.gethostname()).split(".")[0] or "host"
    return f"{now:%Y%m%d-%H%M%S}-{host}"


def check_writable(parent: Path) -> None:
    """Fail early (before any results exist) if the output directory cannot be written."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".tfbench-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"out: {str(parent)!r} cannot be written ({exc.strerror})") from None


def new_run_dir(parent: Path, run_id: str) -> Path:
    """Create ``parent/run_id`` (with a numeric suffix if that run id is taken)."""
    check_writable(parent)
    candidate, n = parent / run_id, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{run_id}-{n}"
    candidate.mkdir()
    return candidate


@dataclass
class BlockOutcome:
    """What one worker process produced for one block of one cell."""

    status: str
    reason: str
    result: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    load: LoadWindow | None = None  # [ab hook] other processes' CPU during the block
    host: str | None = None  # None: the session's host (a local run)
    node_id: str | None = None  # the Ray node that ran it (fleet runs)

    @property
    def steps(self) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = self.result.get("steps", [])
        return steps


@dataclass
class CellOutcome:
    """A finished cell: its configs.csv row and its step rows."""

    cell: Cell
    row: dict[str, Any]
    steps: list[dict[str, Any]]

    @property
    def status(self) -> str:
        return str(self.row["status"])

    @property
    def reason(self) -> str:
        return str(self.row.get("reason") or "")

    def measured_durations(self) -> list[float]:
        return [s["duration_s"] for s in self.steps if s["phase"] == "measure"]


class RunSession:
    """One results directory being filled, cell by cell."""

    def __init__(self, run_dir: Path, settings: RunSettings, *, run_id: str, t0_ns: int,
                 worker_env: dict[str, str] | None = None,
                 worker_command: Sequence[str] | None = None, name_prefix: str = "",
                 host: str | None = None) -> None:
        self.run_dir = run_dir
        # [ab hook] the interpreter (and its flags) that runs workers; a log/spec name prefix
        self.worker_command = list(worker_command or [sys.executable])
        self.name_prefix = name_prefix
        self.host = host or socket.gethostname()
        self.remote_samples = False  # fleet runs: samples come back from the nodes
        self.files = RunFiles(run_dir)
        self.settings = settings
        self.run_id = run_id
        self.t0_ns = t0_ns
        self.worker_env = worker_env or {}
        self.sampler: Any = None
        self.sampler_status: dict[str, str] = {}
        self.availability = RunAvailability({}, ())
        (run_dir / WORK_DIR).mkdir(exist_ok=True)
        (run_dir / LOGS_DIR).mkdir(exist_ok=True)

    # -- samplers -------------------------------------------------------------------------
    def start_samplers(self) -> dict[str, str]:
        names = [n for n in self.settings.samplers if n != "none"]
        if not names:
            return {}
        from harness.samplers.host import SamplerHost

        self.sampler = SamplerHost(self.run_dir, self.run_id, self.t0_ns, names,
                                   self.settings.sample_interval_s, host=self.host)
        self.sampler_status = self.sampler.start()
        return self.sampler_status

    def stop_samplers(self) -> dict[str, Any]:
        if self.sampler is None:
            return {}
        summary: dict[str, Any] = self.sampler.stop()
        self.sampler = None
        return summary

    def decide_availability(self, cells: Sequence[Cell]) -> RunAvailability:
        """Decide once, from the environment's probe and the samplers' status, which cells
        cannot run here (they are skipped without a worker); record it in
        environment.json. Call after `start_samplers`."""
        env = Environment.from_json(read_environment(self.run_dir))
        self.availability = decide(cells, env, self.sampler_status)
        path = self.run_dir / "environment.json"
        recorded = {k: v for k, v in env.to_json().items() if k != "schema_version"}
        recorded["unavailable"] = [u.to_json() for u in self.availability.unavailable]
        write_environment(path, recorded)
        return self.availability

    def runnable(self, cells: Sequence[Cell]) -> list[Cell]:
        return [c for c in cells if c.config_id not in self.availability.skip]

    # -- cells ----------------------------------------------------------------------------
    def run_block(self, cell: Cell, block: int = 0,
                  on_step: Callable[[StepProgress], None] | None = None) -> BlockOutcome:
        """Run one worker process for one block of a cell; ``on_step`` gets the worker's
        step progress while it runs (polled every `POLL_S`).

        The spec carries a fresh attempt token; a result file counts only if it carries the
        same token, so a leftover (from an orphaned worker of an earlier, killed run) is
        discarded with a note in the cell's log, never recorded as this attempt's result.
        On a stop signal (`Interrupted`) the worker's process group is stopped and the
        exception goes on: the cell is not finished and nothing is recorded for it."""
        name = f"{self.name_prefix}{cell.config_id}-b{block}"  # [ab hook] prefix
        spec_path = self.run_dir / WORK_DIR / f"{name}.json"
        result_path = self.run_dir / WORK_DIR / f"{name}.result.json"
        progress_path = self.run_dir / WORK_DIR / f"{name}.progress.json"
        log_path = self.run_dir / LOGS_DIR / f"{name}.log"
        progress_path.unlink(missing_ok=True)
        attempt = uuid.uuid4().hex
        notes = []
        if result_path.exists():
            result_path.unlink()
            notes.append(f"tfbench: discarded a leftover {result_path.name} from an earlier "
                         "attempt (not this worker's result)\n")
        spec: dict[str, Any] = {"cell": cell.factors(),
                                "settings": settings_to_dict(self.settings), "t0_ns": self.t0_ns,
                                "attempt": attempt, "parent_pid": os.getpid(),
                                "progress_path": str(progress_path)}
        if self.settings.trace_steps:  # profiling hook: where the worker writes its trace
            spec["trace_dir"] = str(self.files.trace_dir(cell.config_id))
        write_atomic(spec_path, json.dumps(spec))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
               **self.worker_env}
        watch = OomWatch.start()
        start = time.perf_counter()
        meter = LoadMeter()  # [ab hook]
        with log_path.open("w") as log:
            log.writelines(notes)
            log.flush()
            proc = subprocess.Popen(
                [*self.worker_command, "-m", "harness.worker", str(spec_path),
                 str(result_path)],  # [ab hook] worker_command instead of sys.executable
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
            try:
                if self.sampler is not None:
                    self.sampler.set_active(cell.config_id, proc.pid)
                timed_out = _wait(proc, start + self.settings.timeout_s, progress_path, on_step)
            except BaseException as exc:
                stop_group(proc)
                why = (signal.Signals(exc.signum).name if isinstance(exc, Interrupted)
                       else type(exc).__name__)
                log.write(f"tfbench: run interrupted ({why}); worker stopped, "
                          "cell not finished\n")
                spec_path.unlink(missing_ok=True)
                result_path.unlink(missing_ok=True)
                progress_path.unlink(missing_ok=True)
                raise
            _kill_group_leftovers(proc)
        if self.sampler is not None:
            self.sampler.set_active("", None)
        wall_s = time.perf_counter() - start
        load = meter.stop()  # [ab hook]
        spec_path.unlink(missing_ok=True)
        progress_path.unlink(missing_ok=True)
        if timed_out:
            result_path.unlink(missing_ok=True)
            return BlockOutcome("timeout", f"cell exceeded timeout_s={self.settings.timeout_s:g}; "
                                "worker killed", wall_s=wall_s, load=load)
        result = _read_result(result_path, attempt, log_path)
        if result is not None:
            return BlockOutcome(result["status"], result.get("reason", ""), result, wall_s, load)
        status, reason = _exit_reason(proc.returncode, log_path, proc.pid, watch)
        return BlockOutcome(status, reason, wall_s=wall_s, load=load)

    def record(self, cell: Cell, blocks: Sequence[BlockOutcome],
               block_order: str = "sequential",
               extra: Mapping[str, Any] | None = None) -> CellOutcome:
        """Summarise a cell's blocks into its configs row and append its rows to the CSVs.

        ``block_order`` is ``interleaved`` when the blocks alternated with other cells'
        blocks, ``sequential`` when they ran back to back (or there is one block).
        ``extra`` columns (such as ``side`` in a `tfbench ab` run) go into every row."""
        if block_order not in BLOCK_ORDERS:
            raise ValueError(f"block_order {block_order!r} not in {BLOCK_ORDERS}")
        steps = [{**s, **(extra or {})} for s in self._step_rows(cell, blocks)]
        row = {**self._config_row(cell, blocks, steps), **(extra or {})}
        row["block_order"] = block_order
        ops_rows = []
        if self.settings.trace_steps:  # profiling hook: ops.csv rows and the trace columns
            from harness.opstats import record_cell_profile

            ops_rows = record_cell_profile(
                row, [b.result for b in blocks], {"run_id": self.run_id,
                                                  "config_id": cell.config_id,
                                                  **cell.factors()})
        # The cell is recorded whole or not at all: on a failed write (a full disk) the
        # files written so far for it are cut back, so no steps of a cell without its row.
        written: list[tuple[Any, int]] = []
        try:
            for name, rows in ((OPS_FILE, ops_rows), (STEPS_FILE, steps),
                               (CONFIGS_FILE, [row])):
                if name == OPS_FILE and not self.settings.trace_steps:
                    continue
                appender = self.files.appender(name)
                written.append((appender, appender.size()))
                appender.append(rows)
        except BaseException:
            for appender, size in written:
                appender.truncate(size)
            raise
        return CellOutcome(cell, row, steps)

    def run_cell(self, cell: Cell) -> CellOutcome:
        """Run all blocks of one cell back to back and record it (``sequential``)."""
        if cell.config_id in self.availability.skip:
            return self.record_unavailable(cell)
        blocks = [self.run_block(cell, b) for b in range(self.settings.interleave)]
        return self.record(cell, blocks, "sequential")

    def record_unavailable(self, cell: Cell) -> CellOutcome:
        """Record a cell the run decided cannot run here: skipped, no worker started."""
        return self.record(cell, [BlockOutcome("skipped", self.availability.skip[cell.config_id])])

    def _step_rows(self, cell: Cell, blocks: Sequence[BlockOutcome]) -> list[dict[str, Any]]:
        rows = []
        for b, outcome in enumerate(blocks):
            for s in outcome.steps:
                rows.append({
                    "run_id": self.run_id, "config_id": cell.config_id, "model": cell.model,
                    "device": cell.device, "mode": cell.mode, "base": cell.base,
                    "engine": cell.engine, "precision": cell.precision,
                    "batch_size": cell.batch_size, "block": b, **s,
                    "host": outcome.host or self.host, "node_id": outcome.node_id,
                })
        return rows

    def _config_row(self, cell: Cell, blocks: Sequence[BlockOutcome],
                    steps: list[dict[str, Any]]) -> dict[str, Any]:
        bad = next((b for b in blocks if b.status != "ok"), None)
        first = blocks[0].result
        row: dict[str, Any] = {
            "run_id": self.run_id, "config_id": cell.config_id, **cell.factors(),
            "status": bad.status if bad else "ok", "reason": bad.reason if bad else "",
            "warmup_steps": self.settings.warmup_steps,
            "blocks": len(blocks), "wall_s": sum(b.wall_s for b in blocks),
            "target_ci_rel": self.settings.target_ci_rel,
            "host": blocks[0].host or self.host, "node_id": blocks[0].node_id,
            **cell_load_columns([b.load for b in blocks]),  # [ab hook] harness/load.py
        }
        row.update(strategy_columns(cell, first, bad is None))
        for key in ("convert_s", "build_s", "xla", "device_used"):
            row[key] = first.get(key)
        if first.get("engine_detail"):
            row["engine_detail"] = json.dumps(first["engine_detail"], sort_keys=True)
        row.update(first.get("parity", {}))
        row.update(first.get("fit", {}))  # accuracy columns of fit / cached cells (harness.fit)
        # The worker reports its lifetime peak (ru_maxrss): model build and parity reference
        # included. The timed phase's peak comes from the samples (in _attribute).
        lifetime = [b.result.get("host_rss_peak_bytes") for b in blocks]
        row["host_rss_lifetime_peak_bytes"] = max((p for p in lifetime if p is not None),
                                                  default=None)
        dev_peaks = [b.result.get("device_mem_peak_bytes") for b in blocks]
        row["device_mem_peak_bytes"] = max((p for p in dev_peaks if p is not None), default=None)
        measured = [s for s in steps if s["phase"] == "measure"]
        if bad is not None or not measured:
            return row
        durations = [s["duration_s"] for s in measured]
        row.update(drift_columns(durations))  # [ab hook] harness/drift.py
        summary = stats.summarize(durations)
        images = row["global_batch_size"]  # batch_size x replicas: one global step
        row.update({
            "measured_steps": len(measured),
            "first_step_s": first.get("first_step_s"),
            "step_s_median": summary["median"], "step_s_p90": summary["p90"],
            "step_s_p99": summary["p99"], "step_s_mean": summary["mean"],
            "step_s_std": summary["std"],
            "step_s_median_ci_low": summary["median_ci_low"],
            "step_s_median_ci_high": summary["median_ci_high"],
            "step_s_lag1_autocorr": summary["lag1_autocorr"],
            "images_per_s": images / summary["median"],
            "images_per_s_ci_low": images / summary["median_ci_high"],
            "images_per_s_ci_high": images / summary["median_ci_low"],
            "input_wait_s_median": stats.summarize([s["input_wait_s"] for s in measured])["median"],
            "ci_target_met": ci_target_met(summary["median"], summary["median_ci_low"],
                                           summary["median_ci_high"],
                                           self.settings.target_ci_rel),
        })
        windows = []
        for b in range(len(blocks)):
            block_steps = [s for s in measured if s["block"] == b]
            if block_steps:
                start = block_steps[0]["start_s"] - block_steps[0]["input_wait_s"]
                end = block_steps[-1]["start_s"] + block_steps[-1]["duration_s"]
                windows.append((start, end, sum(s["images"] for s in block_steps)))
        row["measure_start_s"] = windows[0][0]
        row["measure_end_s"] = windows[-1][1]
        row.update(self._attribute(cell, windows))
        row["scaling_efficiency"] = scaling_efficiency(self.run_dir, cell, row)
        sampled = row.pop("_rss_max_bytes", None)
        if sampled is not None and (row["host_rss_lifetime_peak_bytes"] is None
                                    or sampled > row["host_rss_lifetime_peak_bytes"]):
            # ru_maxrss is the kernel's high-water mark, updated lazily: it can trail an
            # rss sample by some hundred kB. A peak is at least every observation.
            row["host_rss_lifetime_peak_bytes"] = sampled
        return row

    def _attribute(self, cell: Cell, windows: list[tuple[float, float, int]]) -> dict[str, Any]:
        """Power, energy and the timed phase's RSS peak from the samples inside the measure
        windows; one energy source for all of a cell's blocks (the counter only where it
        brackets every window)."""
        if self.sampler is None and not self.remote_samples:
            why = "no sampler ran in this run (samplers: none)"
            return {"host_rss_peak_reason": why, "energy_reason": why}
        from harness.attribution import attribute, counter_covers, power_sampler, sample_interval_s

        if self.sampler is not None:
            self.sampler.flush()
        samples = read_table(self.run_dir, SAMPLES_FILE)
        sampler = power_sampler(samples)
        interval = sample_interval_s(samples, sampler) if sampler is not None else None
        use_counter = sampler is not None and all(
            counter_covers(samples, sampler, start, end) for start, end, _ in windows)
        parts = [attribute(samples, cell.config_id, start, end, images, interval,
                           use_counter=use_counter)
                 for start, end, images in windows]
        out = combine_attributions(parts, windows)
        rss = samples[(samples["metric"] == "rss")
                      & (samples["config_id"].fillna("").astype(str) == cell.config_id)]
        if len(rss):
            out["_rss_max_bytes"] = int(rss["value"].max())
        return out

    def close(self) -> dict[str, Any]:
        summary = self.stop_samplers()
        shutil.rmtree(self.run_dir / WORK_DIR, ignore_errors=True)
        return summary


def block_order(cells: Sequence[Cell], blocks: int) -> str:
    """``interleaved`` when `schedule` alternates the cells' blocks, else ``sequential``."""
    return "interleaved" if blocks > 1 and len(cells) > 1 else "sequential"


def schedule(cells: Sequence[Cell], blocks: int) -> list[tuple[Cell, int]]:
    """The order of work: each cell once, or K rounds of all cells (A B A B ...) when
    interleaving, so that slow drifts of the machine hit every cell alike."""
    if blocks <= 1:
        return [(c, 0) for c in cells]
    return [(c, b) for b in range(blocks) for c in cells]


def completed_config_ids(run_dir: Path) -> set[str]:
    if not (run_dir / CONFIGS_FILE).exists():
        return set()
    return set(read_table(run_dir, CONFIGS_FILE)["config_id"].astype(str))


def run_schedule(session: RunSession, cells: Sequence[Cell], progress: Progress,
                 on_cell: Callable[[CellOutcome], None] | None = None) -> list[CellOutcome]:
    """Run the cells' blocks in `schedule` order (interleaved when there are several blocks
    and several cells), recording each cell as its last block ends. ``progress`` hears of
    each unit's start, its worker's steps while it runs, and its end."""
    pending: dict[str, list[BlockOutcome]] = {}
    total_blocks = session.settings.interleave
    order = block_order(cells, total_blocks)
    outcomes = []

    def on_step(p: StepProgress) -> None:
        progress.step(p.calls, p.phase, p.step_s_mean)

    for cell in cells:
        if cell.config_id in session.availability.skip:
            result = session.record_unavailable(cell)
            progress.note(f"{cell.config_id}: skipped ({result.reason}); no worker started")
            outcomes.append(result)
            if on_cell:
                on_cell(result)
    for cell, block in schedule(session.runnable(cells), total_blocks):
        label = unit_label(cell, block, total_blocks)
        progress.started(label)
        outcome = session.run_block(cell, block, on_step)
        durations = [float(s["duration_s"]) for s in outcome.steps]
        calls = len(durations) + (1 if outcome.steps else 0)
        mean = sum(durations) / len(durations) if durations else None
        pending.setdefault(cell.config_id, []).append(outcome)
        if len(pending[cell.config_id]) == total_blocks:
            result = session.record(cell, pending.pop(cell.config_id), order)
            progress.finished(cell.config_id, result.status,
                              cell_summary(result, session.settings), steps=calls,
                              step_s_mean=mean)
            outcomes.append(result)
            if on_cell:
                on_cell(result)
        else:
            progress.finished(label, outcome.status, "", steps=calls, step_s_mean=mean)
    return outcomes


def run_cells(
    cells: Sequence[Cell],
    settings: RunSettings,
    out_parent: Path,
    *,
    environment: Callable[[str, int], dict[str, Any]],
    progress: Progress | None = None,
    resume: Path | None = None,
    on_cell: Callable[[CellOutcome], None] | None = None,
    fleet: Any = None,
) -> Path:
    """Run the cells into a new results directory (or resume one); return its path.

    With ``fleet`` (a `harness.fleet.Fleet`) each cell runs as a Ray task on a node. The
    directory is locked (`lifecycle.RunLock`) while the run writes it, and SIGTERM, SIGHUP
    and SIGINT stop the current worker and the sampler before `Interrupted` goes on to the
    caller (the cell that was running is not recorded, so a resume reruns it)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(stop_signals())
        if resume is not None:
            from harness.fleet import drop_cells, lost_config_ids

            stack.enter_context(RunLock(resume))
            env = read_environment(resume)
            run_dir, run_id, t0_ns = resume, str(env["run_id"]), int(env["clock_origin_ns"])
            drop_cells(resume, lost_config_ids(resume))  # results lost on a fleet run again
            done = completed_config_ids(resume)
            cells = [c for c in cells if c.config_id not in done]
        else:
            run_id = make_run_id()
            t0_ns = time.perf_counter_ns()
            run_dir = new_run_dir(out_parent, run_id)
            stack.enter_context(RunLock(run_dir))
            run_id = run_dir.name
            write_environment(run_dir / "environment.json", environment(run_id, t0_ns))
            if settings.trace_steps:  # profiling hook: the roofline's ceilings, per device
                from harness.peak import record_peaks

                record_peaks(run_dir, sorted({c.device for c in cells}))
        session = RunSession(run_dir, settings, run_id=run_id, t0_ns=t0_ns)
        run_meter, load_at_start = LoadMeter(), load_averages()  # [ab hook]
        sampler_summary: dict[str, Any] = {}
        try:
            if fleet is not None:  # each node samples its own cells; the driver runs none
                progress = progress or Progress(unit_plans(cells, settings))
                fleet.start(session)
                fleet.run_schedule(session, cells, progress, on_cell)
                return run_dir
            status = session.start_samplers()
            record_samplers(run_dir, status, None)
            availability = session.decide_availability(cells)
            progress = progress or Progress(unit_plans(session.runnable(cells), settings))
            for line in availability.lines():
                progress.note(f"note: {line}")
            run_schedule(session, cells, progress, on_cell)
        finally:
            sampler_summary = session.close()
            record_samplers(run_dir, session.sampler_status, sampler_summary)
            record_run_load(run_dir, run_meter.stop(), load_at_start)  # [ab hook]
            if progress is not None:
                progress.close()
    return run_dir


def record_samplers(run_dir: Path, status: dict[str, str], summary: dict[str, Any] | None) -> None:
    """Add which samplers were active (and how sampling ended) to environment.json."""
    path = run_dir / "environment.json"
    env = json.loads(path.read_text())
    env["samplers"] = status
    if summary is not None:
        env["sampling"] = summary
    write_environment(path, {k: v for k, v in env.items() if k != "schema_version"})
