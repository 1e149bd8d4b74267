"""`tfbench run --interleave` and `--repeat` through the real command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import Cell
from harness.orchestrator import schedule
from harness.records import load_results

pytestmark = pytest.mark.slow
TINY_PROFILE = Path(__file__).parent / "data" / "profiles" / "tiny.toml"


def tfbench_run(*args: str) -> list[Path]:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--profile", str(TINY_PROFILE),
         "--modes", "infer", "--warmup-steps", "1", "--measured-steps", "3",
         "--samplers", "none", "--no-plots", *args],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [Path(line) for line in proc.stdout.split()]


def test_schedule_alternates_cells_in_blocks() -> None:
    a, b = Cell(model="tiny_cnn", batch_size=2), Cell(model="tiny_cnn", batch_size=4)
    assert schedule([a, b], 1) == [(a, 0), (b, 0)]
    assert schedule([a, b], 3) == [(a, 0), (b, 0), (a, 1), (b, 1), (a, 2), (b, 2)]


def test_interleaved_blocks_alternate_and_aggregate(tmp_path: Path) -> None:
    (run,) = tfbench_run("--batch-sizes", "2,4", "--interleave", "2", "--out", str(tmp_path))
    results = load_results(run)
    configs = results.configs.set_index("config_id")
    assert list(configs["blocks"]) == [2, 2]
    assert list(configs["block_order"]) == ["interleaved", "interleaved"]
    assert list(configs["measured_steps"]) == [6, 6]  # 3 per block, both blocks counted
    steps = results.steps[results.steps["phase"] == "measure"]
    first = steps.groupby(["config_id", "block"])["start_s"].min().sort_values()
    assert list(first.index) == [
        ("infer-tiny_cnn-cpu-tf-fp32-bs2", 0), ("infer-tiny_cnn-cpu-tf-fp32-bs4", 0),
        ("infer-tiny_cnn-cpu-tf-fp32-bs2", 1), ("infer-tiny_cnn-cpu-tf-fp32-bs4", 1),
    ]


def test_one_cell_in_blocks_is_sequential(tmp_path: Path) -> None:
    (run,) = tfbench_run("--batch-sizes", "2", "--interleave", "2", "--out", str(tmp_path))
    configs = load_results(run).configs
    assert list(configs["blocks"]) == [2]
    assert list(configs["block_order"]) == ["sequential"]  # nothing to alternate with


def test_block_order_follows_the_schedule() -> None:
    from harness.orchestrator import block_order

    a, b = Cell(model="tiny_cnn", batch_size=2), Cell(model="tiny_cnn", batch_size=4)
    assert block_order([a, b], 3) == "interleaved"
    assert block_order([a, b], 1) == "sequential"
    assert block_order([a], 3) == "sequential"


def test_repeat_writes_one_results_directory_per_repeat(tmp_path: Path) -> None:
    runs = tfbench_run("--batch-sizes", "2", "--repeat", "2", "--out", str(tmp_path))
    assert len(runs) == 2 and len(set(runs)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in runs)
    for run in runs:
        assert list(load_results(run).configs["status"]) == ["ok"]
