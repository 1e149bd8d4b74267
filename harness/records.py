"""The results-directory contract: file names, columns, writers and a reader.

A run writes ``results/<run_id>/`` with ``environment.json``, ``configs.csv``
(one row per cell), ``steps.csv`` (one row per step) and ``samples.csv`` (one
row per sensor reading). Rows are appended as cells finish, so an interrupted
run keeps every finished cell. This module never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.envmodel import SCHEMA_VERSION, Environment
from harness.errors import NoSpace, UserError
from harness.schema import validate_csv

if TYPE_CHECKING:
    import pandas as pd

ENVIRONMENT_FILE = "environment.json"
CONFIGS_FILE = "configs.csv"
STEPS_FILE = "steps.csv"
SAMPLES_FILE = "samples.csv"
OPS_FILE = "ops.csv"  # profiling: one row per cell and op (harness.opstats)
TRACES_DIR = "traces"  # profiling: traces/<config_id>/plugins/profile/<run>/<host>.xplane.pb

STATUSES = ("ok", "skipped", "failed", "oom", "timeout")
# trace: profiled steps after the measured ones; eval: fit mode's validation passes.
# Statistics use measure rows only.
PHASES = ("warmup", "measure", "trace", "eval")

# The factors a cell is matched by. ``learning_rate`` (fit mode) and ``strategy``
# (tf.distribute) came later: their columns sit further right in configs.csv and ops.csv,
# so the files keep their column order; files without them ran the defaults
# (`read_table` fills ``strategy`` in).
_FIRST_FACTORS = (
    "model", "weights", "input_size", "device", "mode", "base", "engine", "precision",
    "batch_size", "data",
)
FACTOR_COLUMNS: tuple[str, ...] = (*_FIRST_FACTORS, "learning_rate", "strategy")
CONFIGS_COLUMNS = (
    "run_id", "config_id", *_FIRST_FACTORS, "status", "reason",
    "warmup_steps", "measured_steps", "first_step_s",
    "step_s_median", "step_s_p90", "step_s_p99", "step_s_mean", "step_s_std",
    "step_s_median_ci_low", "step_s_median_ci_high",
    "images_per_s", "images_per_s_ci_low", "images_per_s_ci_high",
    "power_w_mean", "energy_j_per_image", "energy_confidence", "power_samples",
    "host_rss_peak_bytes", "device_mem_peak_bytes",
    "device_used", "xla", "convert_s", "build_s", "input_wait_s_median",
    "parity_max_rel_err", "parity_cosine", "parity_ok", "engine_detail",
    "blocks", "measure_start_s", "measure_end_s", "wall_s",
    "step_s_lag1_autocorr",
    "block_order", "energy_source", "energy_reason", "host_rss_lifetime_peak_bytes",
    "host_rss_peak_reason",
    # profiling (harness.trace / harness.opstats): trace is "ok" or "skipped (<reason>)",
    # empty when no trace was asked for; FLOPs and bytes are per step, from ops.csv.
    "trace", "flops_per_step", "achieved_flops_per_s", "bytes_per_step",
    # accuracy (fit mode, learning rate, bottleneck cache; harness.fit)
    "learning_rate", "optimizer", "epochs", "target_accuracy", "train_images", "val_images",
    "val_accuracy_final", "val_loss_final", "val_accuracy_best", "target_reached",
    "steps_to_target", "time_to_target_s", "train_time_s", "eval_time_s",
    "cache_build_s", "cache_hit", "model_path",
    "parity_reason",
    # ab engineer: machine load during the cell (harness/load.py), drift (harness/drift.py),
    # and which side of a `tfbench ab` run the row belongs to
    "load_avg_1m", "other_cpu_cores", "step_s_level_shift", "step_s_drift", "side",
    # whether the median's 95% CI reached target_ci_rel (empty: no target set; harness.ci_target)
    # and the target itself (the run setting; 0: none)
    "ci_target_met", "target_ci_rel",
    "strategy", "workers", "replicas", "global_batch_size", "scaling_efficiency",
    "host", "node_id",
)
STEPS_COLUMNS = (
    "run_id", "config_id", "model", "device", "mode", "base", "engine", "precision",
    "batch_size", "block", "step", "phase", "start_s", "duration_s", "input_wait_s",
    "images", "loss",
    # fit mode: training accuracy of the step's batch; eval rows' validation results
    "accuracy", "val_loss", "val_accuracy",
    "side",  # tfbench ab: baseline or candidate
    "host", "node_id",  # fleet runs (harness.fleet): which host and Ray node ran the step
)
FIT_STEPS_COLUMNS = ("accuracy", "val_loss", "val_accuracy")  # optional when reading
SAMPLES_COLUMNS = ("run_id", "config_id", "sampler", "metric", "unit", "t_s", "value",
                   "host", "node_id")
OPS_COLUMNS = (
    "run_id", "config_id", *_FIRST_FACTORS, "learning_rate", "op_type", "op_name",
    "category", "op_device",
    "occurrences_per_step", "self_s_per_step", "total_s_per_step", "flops_per_step",
    "bytes_per_step", "strategy",
)
# op_device: where the op ran, as the profiler says ("Host" or "Device"); the factor
# column `device` (cpu, gpu:N) keeps its meaning, so the "device" is op_device here.
OP_CATEGORIES = ("forward", "backward", "optimizer", "input", "other")

# ab engineer: one row per block of one side of one cell of a `tfbench ab` run
BLOCKS_FILE = "blocks.csv"
BLOCKS_COLUMNS = (
    "run_id", "config_id", "side", "pair", "block", "order", "status", "reason",
    "start_s", "end_s", "measured_steps", "step_s_median", "images_per_s",
    "energy_j_per_image", "host_rss_peak_bytes", "device_mem_peak_bytes",
    "other_cpu_cores", "load_avg_1m",
)

# The DESIGN.md minimum; a reader accepts files with at least these.
REQUIRED_CONFIGS = CONFIGS_COLUMNS[: CONFIGS_COLUMNS.index("first_step_s") + 1]
REQUIRED_STEPS = tuple(c for c in STEPS_COLUMNS
                       if c not in ("block", "input_wait_s", "side", *FIT_STEPS_COLUMNS,
                                    "host", "node_id"))
REQUIRED_SAMPLES = SAMPLES_COLUMNS[: SAMPLES_COLUMNS.index("value") + 1]
REQUIRED_OPS = OPS_COLUMNS[: OPS_COLUMNS.index("total_s_per_step") + 1]

_COLUMNS = {CONFIGS_FILE: CONFIGS_COLUMNS, STEPS_FILE: STEPS_COLUMNS, SAMPLES_FILE: SAMPLES_COLUMNS,
            OPS_FILE: OPS_COLUMNS, BLOCKS_FILE: BLOCKS_COLUMNS}
_REQUIRED = {CONFIGS_FILE: REQUIRED_CONFIGS, STEPS_FILE: REQUIRED_STEPS,
             SAMPLES_FILE: REQUIRED_SAMPLES, OPS_FILE: REQUIRED_OPS,
             BLOCKS_FILE: BLOCKS_COLUMNS}


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
        """Append whole rows: all rows are formatted first and written in one go; if the
        write fails (a full disk) the file is cut back to its old length, so a reader never
        sees a partial row, and `NoSpace` (or the OSError) is raised."""
        rows = list(rows)
        size = self.path.stat().st_size if self.path.exists() else 0
        buf = io.StringIO()
        writer = csv.writer(buf)
        if size == 0:
            writer.writerow(self.columns)
        for row in rows:
            unknown = set(row) - set(self.columns)
            if unknown:
                raise ValueError(f"{self.path.name}: unknown columns {sorted(unknown)}")
            writer.writerow([_cell_text(row.get(c)) for c in self.columns])
        data = buf.getvalue().encode("utf8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            os.close(fd)
            if size == 0:
                self.path.unlink(missing_ok=True)  # no header-only file for readers
            raise _write_error(exc, self.path) from None
        os.close(fd)
        return len(rows)

    def size(self) -> int:
        """The file's length now (0 if it does not exist), for `truncate`."""
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (a length `size` returned): undo appends."""
        if size == 0:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            os.truncate(self.path, size)


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

    @property
    def ops(self) -> Path:
        return self.root / OPS_FILE

    def trace_dir(self, config_id: str) -> Path:
        return self.root / TRACES_DIR / config_id

    def appender(self, name: str) -> CsvAppender:
        return CsvAppender(self.root / name, _COLUMNS[name])


def write_environment(path: Path, environment: Environment | Mapping[str, Any]) -> None:
    """Write environment.json atomically (temp file, then rename).

    An `Environment` is written as its `to_json`; a plain mapping (the
    orchestrator's end-of-run update) is first checked against the typed model,
    so nothing is written that a reader would refuse.
    """
    if isinstance(environment, Environment):
        data = environment.to_json()
    else:
        data = {"schema_version": SCHEMA_VERSION, **environment}
        Environment.from_json(data)
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_atomic(path: Path, content: str | bytes, durable: bool = True) -> None:
    """Write a whole file by write-then-rename: readers see the old file or the new one,
    never a part. The temporary file is this process's own (``.<name>.<pid>.tmp``), so two
    writers of one file never rename each other's away. ``durable`` syncs it to disk first
    (records); a file rewritten every half second between timed steps (step progress)
    skips that. On failure the temp file is removed (`NoSpace` on a full disk)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = content.encode("utf8") if isinstance(content, str) else content
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _write_error(exc, path) from None


def _write_error(exc: OSError, path: Path) -> Exception:
    """`NoSpace` for a full disk or quota, else the OSError itself."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(path.parent, path.name)
    return exc


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
    if not isinstance(env, dict):
        raise UserError(f"{path}: holds a JSON {type(env).__name__}, not an object; allowed: "
                        "a JSON object with run_id, schema_version, ...")
    check_schema_version(env.get("schema_version"), path)
    return env


def load_environment(run_dir: Path | str) -> Environment:
    """The typed environment.json of a results directory (what every reader uses)."""
    root = Path(run_dir)
    return Environment.from_json(read_environment(root), default_run_id=root.name)


def check_schema_version(version: Any, where: Path | str) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserError(f"{where}: schema_version {version!r} is not valid; allowed: "
                        "integers >= 1")
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
    validate_csv(path, need_rows=name == CONFIGS_FILE,
                 unique=("config_id", "side") if name == CONFIGS_FILE else (),
                 required=("config_id",) if name in (CONFIGS_FILE, STEPS_FILE) else ())
    try:
        frame = pd.read_csv(path, keep_default_na=True, dtype={
            "base": str, "reason": str, "config_id": str, "data": str,
            "trace": str, "op_name": str})
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
        frame["strategy"] = frame["strategy"].astype("object").fillna("none")  # older files
        bad = sorted(set(frame["status"].dropna()) - set(STATUSES))
        if bad:
            raise UserError.invalid(f"{path}: status", bad[0], STATUSES)
    return frame


@dataclass
class Results:
    """A results directory: its typed environment and its three tables as pandas frames."""

    root: Path
    environment: Environment
    configs: pd.DataFrame
    steps: pd.DataFrame
    samples: pd.DataFrame

    @property
    def run_id(self) -> str:
        return self.environment.run_id


def load_results(run_dir: Path | str) -> Results:
    """Load and validate a whole results directory (the one reader analysis code uses)."""
    root = Path(run_dir)
    env = load_environment(root)
    return Results(
        root=root,
        environment=env,
        configs=read_table(root, CONFIGS_FILE),
        steps=read_table(root, STEPS_FILE),
        samples=read_table(root, SAMPLES_FILE),
    )


def host_results(results: Results) -> list[Results]:
    """A fleet run (environment.json lists ``fleet_hosts``) as one `Results` per host that
    ran cells: that host's own environment (``environments/<host>.json``) and its rows, so
    analysis treats each host like a run of its own (the same cell on two boards side by
    side; machine classes per host). A local run is returned as it is."""
    if not results.environment.fleet_hosts:
        return [results]
    out = []
    ran = [h for h in dict.fromkeys(results.configs["host"].map(text)) if h]
    files = {h.host: h.environment_file for h in results.environment.fleet_hosts}
    for host in ran:
        if host not in files:
            raise UserError(f"{results.root}: configs.csv names host {host!r}, which "
                            "environment.json's fleet_hosts does not list")
        env = load_host_environment(results.root / files[host], results.run_id)
        pick = {name: frame[frame["host"].map(text) == host]
                for name, frame in (("configs", results.configs), ("steps", results.steps),
                                    ("samples", results.samples))}
        out.append(Results(root=results.root, environment=env, **pick))
    return out


def load_host_environment(path: Path, run_id: str) -> Environment:
    """One node's environments/<host>.json of a fleet run (typed)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as a fleet host's environment ({exc})") from None
    check_schema_version(data.get("schema_version"), path)
    return Environment.from_json(data, default_run_id=run_id)


# -- reading values back -------------------------------------------------------------------
# The one normaliser of CSV values for readers: the inverse of `_cell_text`.


def text(value: Any) -> str:
    """A CSV value as text: ``""`` for missing (None, NaN, pandas NA), integral floats
    without ``.0`` (pandas reads an integer column with gaps as floats)."""
    if value is None or value is _pd_na():
        return ""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value)


def flag(value: Any) -> bool | None:
    """A CSV boolean as written by `CsvAppender` (``true``/``false``; bools) or None if empty.

    Anything else is a bug in the writer or a hand-edited file: a `UserError`.
    """
    t = text(value).strip().lower()
    if t == "":
        return None
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    raise UserError.invalid("boolean column", value, "true, false or empty")


def number(value: Any) -> float | None:
    """A CSV number as float, or None when the cell is empty (never NaN)."""
    t = text(value)
    if t == "":
        return None
    try:
        out = float(t)
    except ValueError:
        raise UserError.invalid("numeric column", value, "a number or empty") from None
    return None if math.isnan(out) else out


def _pd_na() -> Any:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return None
    return pd.NA


def read_ops(run_dir: Path | str) -> pd.DataFrame:
    """ops.csv of a results directory (an empty table with the columns when the run was
    not traced). Analysis of op statistics reads through here, never TensorFlow."""
    return read_table(Path(run_dir), OPS_FILE)
