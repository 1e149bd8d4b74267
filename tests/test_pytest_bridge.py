"""pytest-benchmark entry: per-step rounds that agree with the run's CSV files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.pytest_bridge import ReplayTimer
from harness.records import load_results

REPO = Path(__file__).resolve().parent.parent


def test_replay_timer_yields_the_recorded_durations() -> None:
    timer = ReplayTimer([0.5, 0.25])
    assert [timer() for _ in range(4)] == [0.0, 0.5, 0.0, 0.25]


@pytest.mark.slow
def test_benchmark_json_agrees_with_the_csvs(tmp_path: Path) -> None:
    out = tmp_path / "results"
    json_path = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "benchmarks"), "--benchmark-only",
         "--tfbench-profile", str(REPO / "tests" / "data" / "profiles" / "tiny.toml"),
         "--tfbench-measured-steps", "9",
         "--tfbench-samplers", "none", "--tfbench-no-plots", "--tfbench-out", str(out),
         f"--benchmark-json={json_path}", f"--benchmark-histogram={tmp_path / 'hist'}",
         "-p", "no:cacheprovider", "-q"],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads(json_path.read_text())
    (run_dir,) = list(out.iterdir())
    # the histogram extra is installed: one SVG per benchmark group
    svgs = sorted(tmp_path.glob("hist*.svg"))
    assert svgs and all(p.read_text().lstrip().startswith(("<?xml", "<svg")) for p in svgs)
    # per-cell progress past pytest's capture, and the results directory at the end
    assert "[3/3] train-tiny_cnn-cpu-unfrozen-tf-fp32-bs8: ok (median" in proc.stderr
    assert f"tfbench results: {run_dir}" in proc.stdout
    results = load_results(run_dir)
    configs = results.configs.set_index("config_id")
    benches = {b["extra_info"]["config_id"]: b for b in report["benchmarks"]}
    assert set(benches) == set(configs.index)
    assert {b["name"] for b in report["benchmarks"]} == {
        "test_infer[tiny_cnn-cpu-tf-fp32-bs8]",
        "test_train[tiny_cnn-cpu-frozen-tf-fp32-bs8]",
        "test_train[tiny_cnn-cpu-unfrozen-tf-fp32-bs8]",
    }
    for config_id, bench in benches.items():
        row = configs.loc[config_id]
        assert bench["stats"]["rounds"] == row["measured_steps"] == 9
        assert bench["stats"]["iterations"] == 1
        assert bench["stats"]["median"] == pytest.approx(row["step_s_median"], rel=1e-9)
        steps = results.steps[(results.steps["config_id"] == config_id)
                              & (results.steps["phase"] == "measure")]
        assert bench["stats"]["min"] == pytest.approx(steps["duration_s"].min(), rel=1e-9)
        assert bench["stats"]["mean"] == pytest.approx(np.mean(steps["duration_s"]), rel=1e-9)
        assert bench["extra_info"]["model"] == "tiny_cnn"
        assert bench["extra_info"]["run_id"] == run_dir.name
        assert row["block_order"] == "sequential"  # pytest runs a cell's blocks back to back


@pytest.mark.slow
def test_pytest_entry_interleaves_blocks_when_asked(tmp_path: Path) -> None:
    profile = tmp_path / "two.toml"
    profile.write_text('[matrix]\nmodels = ["tiny_cnn"]\nmodes = ["infer"]\n'
                       'batch_sizes = [2, 4]\n[settings]\nwarmup_steps = 1\n'
                       'measured_steps = 3\nsamplers = []\ninterleave = 2\nplots = false\n')
    out = tmp_path / "results"
    json_path = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "benchmarks"), "--benchmark-only",
         "--tfbench-profile", str(profile), "--tfbench-out", str(out),
         f"--benchmark-json={json_path}", "-p", "no:cacheprovider", "-q"],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    (run_dir,) = list(out.iterdir())
    results = load_results(run_dir)
    configs = results.configs.set_index("config_id")
    assert list(configs["block_order"]) == ["interleaved", "interleaved"]
    assert list(configs["blocks"]) == [2, 2]
    measured = results.steps[results.steps["phase"] == "measure"]
    first = measured.groupby(["config_id", "block"])["start_s"].min().sort_values()
    assert [(c.split("-")[-1], b) for c, b in first.index] == [
        ("bs2", 0), ("bs4", 0), ("bs2", 1), ("bs4", 1)]
    benches = {b["extra_info"]["config_id"]: b for b in json.loads(json_path.read_text())
               ["benchmarks"]}
    for config_id, bench in benches.items():
        assert bench["stats"]["rounds"] == configs.loc[config_id, "measured_steps"] == 6
