"""One pytest-benchmark test per cell of the chosen profile (see conftest.py)."""

from __future__ import annotations

from typing import Any

from harness.config import Cell


def test_infer(tfbench_cell: Cell, tfbench_cell_runner: Any) -> None:
    tfbench_cell_runner(tfbench_cell)


def test_train(tfbench_cell: Cell, tfbench_cell_runner: Any) -> None:
    tfbench_cell_runner(tfbench_cell)
