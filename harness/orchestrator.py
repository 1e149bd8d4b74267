"""Runs a matrix of cells: one worker process per cell, a sampler process beside them.

The orchestrator never imports TensorFlow. For each cell (or each block of a
cell when interleaving) it starts ``python -m harness.worker``, tells the
sampler process which cell is active, waits with the cell's timeout, turns the
worker's exit into a status, and appends the cell's rows to the results
directory as soon as the cell is complete. A crash, an OOM kill or a timeout
costs one cell.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import stats
from harness.config import Cell, RunSettings
from harness.errors import UserError
from harness.progress import Progress
from harness.records import (
    CONFIGS_FILE,
    SAMPLES_FILE,
    STEPS_FILE,
    RunFiles,
    read_environment,
    read_table,
    write_environment,
)
from harness.worker import settings_to_dict

WORK_DIR = ".work"
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


def _exit_reason(returncode: int, log_path: Path) -> tuple[str, str]:
    tail = ""
    if log_path.exists():
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        tail = lines[-1][:300] if lines else ""
    if returncode < 0:
        sig = signal.Signals(-returncode)
        if sig == signal.SIGKILL:
            return "oom", ("worker killed by SIGKILL (the kernel's out-of-memory killer "
                           "or another process)")
        return "failed", f"worker died with signal {sig.name}; last log line: {tail}"
    return "failed", f"worker exited with code {returncode} without a result; last log line: {tail}"


class RunSession:
    """One results directory being filled, cell by cell."""

    def __init__(self, run_dir: Path, settings: RunSettings, *, run_id: str, t0_ns: int,
                 worker_env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.files = RunFiles(run_dir)
        self.settings = settings
        self.run_id = run_id
        self.t0_ns = t0_ns
        self.worker_env = worker_env or {}
        self.sampler: Any = None
        self.sampler_status: dict[str, str] = {}
        (run_dir / WORK_DIR).mkdir(exist_ok=True)
        (run_dir / LOGS_DIR).mkdir(exist_ok=True)

    # -- samplers -------------------------------------------------------------------------
    def start_samplers(self) -> dict[str, str]:
        names = [n for n in self.settings.samplers if n != "none"]
        if not names:
            return {}
        from harness.samplers.host import SamplerHost

        self.sampler = SamplerHost(self.run_dir, self.run_id, self.t0_ns, names,
                                   self.settings.sample_interval_s)
        self.sampler_status = self.sampler.start()
        return self.sampler_status

    def stop_samplers(self) -> dict[str, Any]:
        if self.sampler is None:
            return {}
        summary: dict[str, Any] = self.sampler.stop()
        self.sampler = None
        return summary

    # -- cells ----------------------------------------------------------------------------
    def run_block(self, cell: Cell, block: int = 0) -> BlockOutcome:
        """Run one worker process for one block of a cell."""
        name = f"{cell.config_id}-b{block}"
        spec_path = self.run_dir / WORK_DIR / f"{name}.json"
        result_path = self.run_dir / WORK_DIR / f"{name}.result.json"
        log_path = self.run_dir / LOGS_DIR / f"{name}.log"
        spec_path.write_text(json.dumps({"cell": cell.factors(),
                                         "settings": settings_to_dict(self.settings),
                                         "t0_ns": self.t0_ns}))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
               **self.worker_env}
        start = time.perf_counter()
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.worker", str(spec_path), str(result_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
            if self.sampler is not None:
                self.sampler.set_active(cell.config_id, proc.pid)
            try:
                proc.wait(timeout=self.settings.timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                timed_out = True
        if self.sampler is not None:
            self.sampler.set_active("", None)
        wall_s = time.perf_counter() - start
        spec_path.unlink(missing_ok=True)
        if timed_out:
            result_path.unlink(missing_ok=True)
            return BlockOutcome("timeout", f"cell exceeded timeout_s={self.settings.timeout_s:g}; "
                                "worker killed", wall_s=wall_s)
        if result_path.exists():
            result = json.loads(result_path.read_text())
            result_path.unlink()
            return BlockOutcome(result["status"], result.get("reason", ""), result, wall_s)
        status, reason = _exit_reason(proc.returncode, log_path)
        return BlockOutcome(status, reason, wall_s=wall_s)

    def record(self, cell: Cell, blocks: Sequence[BlockOutcome]) -> CellOutcome:
        """Summarise a cell's blocks into its configs row and append its rows to the CSVs."""
        steps = self._step_rows(cell, blocks)
        row = self._config_row(cell, blocks, steps)
        self.files.appender(STEPS_FILE).append(steps)
        self.files.appender(CONFIGS_FILE).append([row])
        return CellOutcome(cell, row, steps)

    def run_cell(self, cell: Cell) -> CellOutcome:
        """Run all blocks of one cell back to back and record it."""
        blocks = [self.run_block(cell, b) for b in range(max(self.settings.interleave, 1))]
        return self.record(cell, blocks)

    def _step_rows(self, cell: Cell, blocks: Sequence[BlockOutcome]) -> list[dict[str, Any]]:
        rows = []
        for b, outcome in enumerate(blocks):
            for s in outcome.steps:
                rows.append({
                    "run_id": self.run_id, "config_id": cell.config_id, "model": cell.model,
                    "device": cell.device, "mode": cell.mode, "base": cell.base,
                    "engine": cell.engine, "precision": cell.precision,
                    "batch_size": cell.batch_size, "block": b, **s,
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
        }
        for key in ("convert_s", "build_s", "xla", "device_used"):
            row[key] = first.get(key)
        if first.get("engine_detail"):
            row["engine_detail"] = json.dumps(first["engine_detail"], sort_keys=True)
        row.update(first.get("parity", {}))
        peaks = [b.result.get("host_rss_peak_bytes") for b in blocks]
        row["host_rss_peak_bytes"] = max((p for p in peaks if p), default=None)
        dev_peaks = [b.result.get("device_mem_peak_bytes") for b in blocks]
        row["device_mem_peak_bytes"] = max((p for p in dev_peaks if p is not None), default=None)
        measured = [s for s in steps if s["phase"] == "measure"]
        if bad is not None or not measured:
            return row
        durations = [s["duration_s"] for s in measured]
        summary = stats.summarize(durations)
        row.update({
            "measured_steps": len(measured),
            "first_step_s": first.get("first_step_s"),
            "step_s_median": summary["median"], "step_s_p90": summary["p90"],
            "step_s_p99": summary["p99"], "step_s_mean": summary["mean"],
            "step_s_std": summary["std"],
            "step_s_median_ci_low": summary["median_ci_low"],
            "step_s_median_ci_high": summary["median_ci_high"],
            "images_per_s": cell.batch_size / summary["median"],
            "images_per_s_ci_low": cell.batch_size / summary["median_ci_high"],
            "images_per_s_ci_high": cell.batch_size / summary["median_ci_low"],
            "input_wait_s_median": stats.summarize([s["input_wait_s"] for s in measured])["median"],
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
        row.update(self._attribute(cell, windows, row.get("host_rss_peak_bytes")))
        return row

    def _attribute(self, cell: Cell, windows: list[tuple[float, float, int]],
                   rss_peak: int | None) -> dict[str, Any]:
        """Power, energy and RSS from the sampler's samples inside the measure windows."""
        if self.sampler is None:
            return {}
        from harness.attribution import attribute

        self.sampler.flush()
        samples = read_table(self.run_dir, SAMPLES_FILE)
        power = samples[(samples["metric"] == "power_total")]
        gaps = power.groupby("sampler")["t_s"].diff().dropna()
        interval = float(gaps.median()) if len(gaps) else 0.5
        parts = [attribute(samples, cell.config_id, start, end, images, interval)
                 for start, end, images in windows]
        attributed = combine_attributions(parts, windows)
        sampled_rss = attributed.get("host_rss_peak_bytes")
        attributed["host_rss_peak_bytes"] = max(
            (v for v in (rss_peak, sampled_rss) if v is not None and not _isnan(v)), default=None)
        return attributed

    def close(self) -> dict[str, Any]:
        summary = self.stop_samplers()
        shutil.rmtree(self.run_dir / WORK_DIR, ignore_errors=True)
        return summary


def combine_attributions(parts: Sequence[dict[str, Any]],
                         windows: Sequence[tuple[float, float, int]]) -> dict[str, Any]:
    """Merge per-block attributions: energy summed over images, power weighted by time."""
    if len(parts) == 1:
        return dict(parts[0])
    merged: dict[str, Any] = {}
    images = [w[2] for w in windows]
    spans = [w[1] - w[0] for w in windows]
    energies = [_number(p.get("energy_j_per_image")) for p in parts]
    powers = [_number(p.get("power_w_mean")) for p in parts]
    if None not in energies:
        total = sum(e * n for e, n in zip(energies, images, strict=True) if e is not None)
        merged["energy_j_per_image"] = total / sum(images)
    if None not in powers:
        weighted = sum(p * d for p, d in zip(powers, spans, strict=True) if p is not None)
        merged["power_w_mean"] = weighted / sum(spans)
    confidences = [p.get("energy_confidence") for p in parts]
    if any(c is not None for c in confidences):
        merged["energy_confidence"] = "low" if "low" in confidences else "ok"
    merged["power_samples"] = sum(int(p.get("power_samples") or 0) for p in parts)
    rss = [int(p["host_rss_peak_bytes"]) for p in parts if p.get("host_rss_peak_bytes")]
    merged["host_rss_peak_bytes"] = max(rss) if rss else None
    return merged


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


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


def run_cells(
    cells: Sequence[Cell],
    settings: RunSettings,
    out_parent: Path,
    *,
    environment: Callable[[str, int], dict[str, Any]],
    progress: Progress | None = None,
    resume: Path | None = None,
    on_cell: Callable[[CellOutcome], None] | None = None,
) -> Path:
    """Run the cells into a new results directory (or resume one); return its path."""
    if resume is not None:
        env = read_environment(resume)
        run_dir, run_id, t0_ns = resume, str(env["run_id"]), int(env["clock_origin_ns"])
        done = completed_config_ids(resume)
        cells = [c for c in cells if c.config_id not in done]
    else:
        run_id = make_run_id()
        t0_ns = time.perf_counter_ns()
        run_dir = new_run_dir(out_parent, run_id)
        run_id = run_dir.name
        write_environment(run_dir / "environment.json", environment(run_id, t0_ns))
    session = RunSession(run_dir, settings, run_id=run_id, t0_ns=t0_ns)
    progress = progress or Progress(len(cells))
    sampler_summary: dict[str, Any] = {}
    try:
        status = session.start_samplers()
        record_samplers(run_dir, status, None)
        pending: dict[str, list[BlockOutcome]] = {}
        total_blocks = max(settings.interleave, 1)
        for cell, block in schedule(cells, settings.interleave):
            label = cell.config_id + (f" [block {block + 1}/{total_blocks}]"
                                      if total_blocks > 1 else "")
            progress.started(label)
            outcome = session.run_block(cell, block)
            pending.setdefault(cell.config_id, []).append(outcome)
            if len(pending[cell.config_id]) == total_blocks:
                result = session.record(cell, pending.pop(cell.config_id))
                detail = (f"median {result.row['step_s_median'] * 1e3:.2f} ms"
                          if result.status == "ok" else result.reason)
                progress.finished(cell.config_id, result.status, detail)
                if on_cell:
                    on_cell(result)
            else:
                progress.finished(label, outcome.status, "")
    finally:
        sampler_summary = session.close()
        record_samplers(run_dir, session.sampler_status, sampler_summary)
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
