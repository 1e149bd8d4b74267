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
         f"--benchmark-json={json_path}", "-p", "no:cacheprovider", "-q"],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads(json_path.read_text())
    (run_dir,) = list(out.iterdir())
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
