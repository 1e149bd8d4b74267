"""The one schema of the results CSVs: a type and a range per column, checked line by line.

`validate_csv` reads a file with the `csv` module (which knows line numbers) before
pandas does, and refuses, as a `UserError` naming the file, the line, the column and what
is wrong: a row cut short (no newline at the end, fewer fields than the header), a
number that is not one (or NaN/inf), a value out of its range, a status or phase outside
its choices, a header without rows in ``configs.csv``, a cell listed twice. Pandas'
parsing alone would read a row cut mid-number as a shorter number. No TensorFlow here.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError


@dataclass(frozen=True)
class Column:
    """``kind``: int, float, bool, choice or text; ``low``: the least allowed number."""

    kind: str
    low: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False  # may not be empty


_NONNEG = Column("float", 0.0)
_COUNT = Column("int", 0)

def _columns() -> dict[str, Column]:
    """The schema; factor and status choices from their one definition (config, records)."""
    from harness.config import BASES, MODES
    from harness.records import PHASES, STATUSES

    return {**_FIXED,
            "mode": Column("choice", choices=("", *MODES)),
            "base": Column("choice", choices=("", *BASES)),
            "status": Column("choice", choices=STATUSES, required=True),
            "phase": Column("choice", choices=("", *PHASES))}


_FIXED: Mapping[str, Column] = {
    "run_id": Column("text", required=True),
    "config_id": Column("text"),  # empty in samples.csv between cells; see `required`
    "input_size": Column("int", 1), "batch_size": Column("int", 1),
    "warmup_steps": _COUNT, "measured_steps": _COUNT, "first_step_s": _NONNEG,
    "step_s_median": _NONNEG, "step_s_p90": _NONNEG, "step_s_p99": _NONNEG,
    "step_s_mean": _NONNEG, "step_s_std": _NONNEG,
    "step_s_median_ci_low": _NONNEG, "step_s_median_ci_high": _NONNEG,
    "images_per_s": _NONNEG, "images_per_s_ci_low": _NONNEG, "images_per_s_ci_high": _NONNEG,
    "power_w_mean": _NONNEG, "energy_j_per_image": _NONNEG,
    "energy_confidence": Column("choice", choices=("", "ok", "low")),
    "power_samples": _COUNT, "host_rss_peak_bytes": _NONNEG, "device_mem_peak_bytes": _NONNEG,
    "xla": Column("bool"), "convert_s": _NONNEG, "build_s": _NONNEG,
    "input_wait_s_median": _NONNEG, "parity_max_rel_err": _NONNEG,
    "parity_cosine": Column("float"), "parity_ok": Column("bool"),
    "blocks": Column("int", 1), "measure_start_s": Column("float"),
    "measure_end_s": Column("float"), "wall_s": _NONNEG,
    "step_s_lag1_autocorr": Column("float", -1.0),
    "block_order": Column("choice", choices=("", "interleaved", "sequential")),
    "energy_source": Column("choice", choices=("", "counter", "trapezoid")),
    "host_rss_lifetime_peak_bytes": _NONNEG,
    # steps.csv
    "block": _COUNT, "step": _COUNT,
    "start_s": Column("float"), "duration_s": Column("float", 0.0),
    "input_wait_s": _NONNEG, "images": _COUNT, "loss": Column("float"),
    # samples.csv
    "t_s": Column("float"), "value": Column("float"),
}


def _problem(path: Path, line: int, column: str | None, what: str) -> UserError:
    where = f"{path}: line {line}" + (f", column {column}" if column else "")
    return UserError(f"{where}: {what}")


def _check_value(path: Path, line: int, name: str, value: str, column: Column) -> None:
    if value == "":
        if column.required:
            allowed = (", ".join(c for c in column.choices if c) if column.choices
                       else "a value (the column is required)")
            raise _problem(path, line, name, f"'' is not valid; allowed: {allowed}")
        return
    if column.kind in ("int", "float"):
        try:
            number = float(value)
            if column.kind == "int" and not number.is_integer():
                raise ValueError(value)  # '30.0' (pandas' integer with gaps) is an integer
        except ValueError:
            allowed = "an integer" if column.kind == "int" else "a finite number"
            raise _problem(path, line, name, f"{value!r} is not valid; allowed: {allowed}"
                           " or empty") from None
        if not math.isfinite(number):
            raise _problem(path, line, name, f"{value!r} is not valid; allowed: a finite "
                           "number or empty")
        if column.low is not None and number < column.low:
            raise _problem(path, line, name, f"{value!r} is not valid; allowed: numbers "
                           f">= {column.low:g}")
    elif column.kind == "bool":
        if value not in ("true", "false", "True", "False", "1", "0"):
            raise _problem(path, line, name, f"{value!r} is not valid; allowed: true, false "
                           "or empty")
    elif column.kind == "choice" and value not in column.choices:
        raise _problem(path, line, name, f"{value!r} is not valid; allowed: "
                       f"{', '.join(c or 'empty' for c in column.choices)}")


def validate_csv(path: Path, *, need_rows: bool = False, unique: tuple[str, ...] = (),
                 required: tuple[str, ...] = ()) -> None:
    """Check a results CSV against the schema (`_columns`); `UserError` if broken.
    ``required`` names further columns that may not be empty in this file; ``unique`` the
    columns (those of them the header has) whose values may not repeat together."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _problem(path, line, None, "is not UTF-8 text") from None
    if text and not text.endswith("\n"):
        line = text.count("\n") + 1
        raise _problem(path, line, None, "the last row is cut short (no newline at its end: "
                       "the file was cut while being written)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise _problem(path, 1, None, f"not valid CSV ({exc})") from None
    seen: dict[tuple[str, ...], int] = {}
    keys = [header.index(c) for c in unique if c in header]
    rows = 0
    schema = _columns()
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            rows += 1
            if len(row) != len(header):
                raise _problem(path, line, None, f"has {len(row)} fields, the header has "
                               f"{len(header)} (a row cut short or with extra fields)")
            for name, value in zip(header, row, strict=True):
                column = schema.get(name)
                if name in required:
                    column = Column(column.kind if column else "text", required=True)
                if column is not None:
                    _check_value(path, line, name, value, column)
            if keys:
                key = tuple(row[i] for i in keys)
                if key in seen:
                    shown = key[0] if len(key) == 1 else key
                    raise _problem(path, line, unique[0], f"{shown!r} is listed twice (first "
                                   f"on line {seen[key]}); allowed: one row per cell")
                seen[key] = line
    except csv.Error as exc:
        raise _problem(path, reader.line_num, None, f"not valid CSV ({exc})") from None
    if need_rows and rows == 0:
        raise _problem(path, 2, None, "has a header but no rows; a results directory lists "
                       "at least one cell")
