"""The strategy columns of a cell's configs.csv row, and its scaling efficiency.

``scaling_efficiency`` = images/s of the cell / (replicas x images/s of the
single-replica cell of the same run): the same factors with ``strategy`` ``none``,
recorded ``ok`` before this cell. Without that cell it is left empty (not
recorded), never guessed. No TensorFlow.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.config import Cell
from harness.records import CONFIGS_FILE, number, read_table, text


def strategy_columns(cell: Cell, result: dict[str, Any], ok: bool) -> dict[str, Any]:
    """``workers``, ``replicas``, ``global_batch_size`` (images in one timed global step).

    A ``none`` cell is one worker, one replica. A strategy cell takes its counts from the
    worker's result; a cell that did not run to the end has them empty."""
    if cell.strategy == "none":
        return {"workers": 1, "replicas": 1, "global_batch_size": cell.batch_size}
    if not ok or "replicas" not in result:
        return {"workers": None, "replicas": None, "global_batch_size": cell.batch_size}
    return {"workers": result.get("strategy_workers"), "replicas": result["replicas"],
            "global_batch_size": result["global_batch_size"]}


def scaling_efficiency(run_dir: Path, cell: Cell, row: dict[str, Any]) -> float | None:
    """images/s over replicas x the single-replica images/s (see the module text)."""
    replicas = row.get("replicas")
    ips = row.get("images_per_s")
    if cell.strategy == "none":
        return 1.0 if ips is not None else None
    if not replicas or ips is None or not (run_dir / CONFIGS_FILE).exists():
        return None
    baseline_id = replace(cell, strategy="none").config_id
    configs = read_table(run_dir, CONFIGS_FILE)
    for _, other in configs.iterrows():
        if text(other["config_id"]) == baseline_id and text(other["status"]) == "ok" \
                and text(other.get("host")) in ("", text(row.get("host"))):
            base = number(other["images_per_s"])
            if base:
                return float(ips) / (int(replicas) * base)
    return None
