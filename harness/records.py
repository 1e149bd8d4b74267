"""The results-directory contract: file names, columns, writers and a reader.

A run writes ``results/<run_id>/`` with ``environment.json``, ``configs.csv``
(one row per cell), ``steps.csv`` (one row per step) and ``samples.csv`` (one
row per sensor reading). Rows are appended as cells finish, so an interrupted
run keeps every finished cell. This module never imports TensorFlow.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
ENVIRONMENT_FILE = "environment.json"
CONFIGS_FILE = "configs.csv"
STEPS_FILE = "steps.csv"
SAMPLES_FILE = "samples.csv"

STATUSES = ("ok", "skipped", "failed", "oom", "timeout")
PHASES = ("warmup", "measure")

FACTOR_COLUMNS = (
    "model", "weights", "input_size", "device", "mode", "base", "engine", "precision",
    "batch_size", "data",
)
CONFIGS_COLUMNS = (
    "run_id", "config_id", *FACTOR_COLUMNS, "status", "reason",
    "warmup_steps", "measured_steps", "first_step_s",
    "step_s_median", "step_s_p90", "step_s_p99", "step_s_mean", "step_s_std",
    "step_s_median_ci_low", "step_s_median_ci_high",
    "images_per_s", "images_per_s_ci_low", "images_per_s_ci_high",
    "power_w_mean", "energy_j_per_image", "energy_confidence", "power_samples",
    "host_rss_peak_bytes", "device_mem_peak_bytes",
    "device_used", "xla", "convert_s", "build_s", "input_wait_s_median",
    "parity_max_rel_err", "parity_cosine", "parity_ok", "engine_detail",
    "blocks", "measure_start_s", "measure_end_s", "wall_s",
)
STEPS_COLUMNS = (
    "run_id", "config_id", "model", "device", "mode", "base", "engine", "precision",
    "batch_size", "block", "step", "phase", "start_s", "duration_s", "input_wait_s",
    "images", "loss",
)
SAMPLES_COLUMNS = ("run_id", "config_id", "sampler", "metric", "unit", "t_s", "value")

# The DESIGN.md minimum; a reader accepts files with at least these.
REQUIRED_CONFIGS = CONFIGS_COLUMNS[: CONFIGS_COLUMNS.index("first_step_s") + 1]
REQUIRED_STEPS = tuple(c for c in STEPS_COLUMNS if c not in ("block", "input_wait_s"))
REQUIRED_SAMPLES = SAMPLES_COLUMNS

_COLUMNS = {CONFIGS_FILE: CONFIGS_COLUMNS, STEPS_FILE: STEPS_COLUMNS, SAMPLES_FILE: SAMPLES_COLUMNS}
_REQUIRED = {CONFIGS_FILE: REQUIRED_CONFIGS, STEPS_FILE: REQUIRED_STEPS,
             SAMPLES_FILE: REQUIRED_SAMPLES}


def _cell_text(value: Any) -> str:
    """CSV text for one value: empty for None, repr-precise floats, no NaN sentinels."""
    if value is None:
        return ""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # numpy scalars: np.float64's repr is 'np.float64(...)'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(value)
    return str(value)


class CsvAppender:
    """Appends rows to one CSV file of the contract, writing the header once.

    Each `append` opens, writes and flushes, so a crash loses at most the row
    being written, and several processes never hold the file open together.
    """

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = tuple(columns)

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        rows = list(rows)
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(self.columns)
            for row in rows:
                unknown = set(row) - set(self.columns)
                if unknown:
                    raise ValueError(f"{self.path.name}: unknown columns {sorted(unknown)}")
                writer.writerow([_cell_text(row.get(c)) for c in self.columns])
            fh.flush()
            os.fsync(fh.fileno())
        return len(rows)


@dataclass(frozen=True)
class RunFiles:
    """The paths of one results directory."""

    root: Path

    @property
    def environment(self) -> Path:
        return self.root / ENVIRONMENT_FILE

    @property
    def configs(self) -> Path:
        return self.root / CONFIGS_FILE

    @property
    def steps(self) -> Path:
        return self.root / STEPS_FILE

    @property
    def samples(self) -> Path:
        return self.root / SAMPLES_FILE

    def appender(self, name: str) -> CsvAppender:
        return CsvAppender(self.root / name, _COLUMNS[name])


def write_environment(path: Path, environment: Mapping[str, Any]) -> None:
    """Write environment.json atomically (temp file, then rename)."""
    data = {"schema_version": SCHEMA_VERSION, **environment}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def read_environment(run_dir: Path) -> dict[str, Any]:
    """Read and check environment.json of a results directory."""
    path = Path(run_dir) / ENVIRONMENT_FILE
    if not Path(run_dir).is_dir():
        raise UserError(f"results directory: {str(run_dir)!r} does not exist or is not a directory")
    if not path.is_file():
        raise UserError(
            f"results directory: {str(run_dir)!r} is not a tfbench results directory "
            f"(no {ENVIRONMENT_FILE})"
        )
    try:
        env: dict[str, Any] = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    check_schema_version(env.get("schema_version"), path)
    return env


def check_schema_version(version: Any, where: Path | str) -> None:
    if not isinstance(version, int):
        raise UserError(f"{where}: schema_version {version!r} is not valid; allowed: integers")
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{where}: schema_version {version} is newer than this tfbench understands "
            f"({SCHEMA_VERSION}); upgrade tfbench (pip install -U tfbench) to read it"
        )


def read_table(run_dir: Path, name: str) -> pd.DataFrame:
    """Read one CSV of a results directory, checking the required columns.

    A missing ``samples.csv`` or ``steps.csv`` reads as an empty table with the
    contract's columns (a run may have no samples); a missing ``configs.csv``
    is an error.
    """
    import pandas as pd

    path = Path(run_dir) / name
    columns = _COLUMNS[name]
    if not path.is_file() or path.stat().st_size == 0:
        if name == CONFIGS_FILE:
            raise UserError(f"results directory: {str(run_dir)!r} has no {CONFIGS_FILE}")
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    try:
        frame = pd.read_csv(path, keep_default_na=True, dtype={"base": str, "reason": str,
                                                              "config_id": str, "data": str})
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid CSV file ({exc})") from None
    missing = [c for c in _REQUIRED[name] if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing columns {', '.join(missing)}")
    for c in columns:
        if c not in frame.columns:
            frame[c] = pd.NA
    if "base" in frame.columns:
        frame["base"] = frame["base"].fillna("")
    if name == CONFIGS_FILE:
        bad = sorted(set(frame["status"].dropna()) - set(STATUSES))
        if bad:
            raise UserError.invalid(f"{path}: status", bad[0], STATUSES)
    return frame


@dataclass
class Results:
    """A results directory loaded into pandas frames."""

    root: Path
    environment: dict[str, Any]
    configs: pd.DataFrame
    steps: pd.DataFrame
    samples: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.environment.get("run_id", self.root.name))


def load_results(run_dir: Path | str) -> Results:
    """Load and validate a whole results directory (the one reader analysis code uses)."""
    root = Path(run_dir)
    env = read_environment(root)
    return Results(
        root=root,
        environment=env,
        configs=read_table(root, CONFIGS_FILE),
        steps=read_table(root, STEPS_FILE),
        samples=read_table(root, SAMPLES_FILE),
    )
