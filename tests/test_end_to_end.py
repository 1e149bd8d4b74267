"""One real run of a tiny model through `tfbench run`, checked file by file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.records import CONFIGS_COLUMNS, STEPS_COLUMNS, load_results
from harness.stats import autocorr_median_ci, lag1_autocorr

pytestmark = pytest.mark.slow
TINY_PROFILE = Path(__file__).parent / "data" / "profiles" / "tiny.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--profile", str(TINY_PROFILE),
         "--no-plots", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1
    assert proc.stdout.strip() == str(dirs[0])
    return dirs[0]


def test_every_cell_ok_with_design_columns(run_dir: Path) -> None:
    results = load_results(run_dir)
    configs, steps = results.configs, results.steps
    assert list(configs.columns) == list(CONFIGS_COLUMNS)
    assert list(steps.columns) == list(STEPS_COLUMNS)
    assert sorted(configs["config_id"]) == [
        "infer-tiny_cnn-cpu-tf-fp32-bs8",
        "train-tiny_cnn-cpu-frozen-tf-fp32-bs8",
        "train-tiny_cnn-cpu-unfrozen-tf-fp32-bs8",
    ]
    assert set(configs["status"]) == {"ok"}
    assert (configs["measured_steps"] == 12).all()
    assert (configs["device_used"] == "/device:CPU:0").all()
    # The worker's lifetime peak covers the build; the timed phase's peak comes from rss
    # samples inside the measure window, or is empty with the reason.
    assert (configs["host_rss_lifetime_peak_bytes"] > 50e6).all()
    timed = configs["host_rss_peak_bytes"]
    assert (timed.dropna() <= configs.loc[timed.notna(), "host_rss_lifetime_peak_bytes"]).all()
    assert configs.loc[timed.isna(), "host_rss_peak_reason"].str.contains(
        "no rss sample inside").all()
    assert configs.loc[timed.notna(), "host_rss_peak_reason"].isna().all()
    assert set(configs["block_order"]) == {"sequential"}
    # psutil measures no power: no energy, no source, and the reason says so
    assert configs["energy_source"].isna().all() and configs["power_w_mean"].isna().all()
    assert set(configs["energy_reason"]) == {"no power sampler in this run"}


def test_statistics_use_measure_rows_only(run_dir: Path) -> None:
    results = load_results(run_dir)
    for _, row in results.configs.iterrows():
        cell_steps = results.steps[results.steps["config_id"] == row["config_id"]]
        assert list(cell_steps["phase"]) == ["warmup"] * 2 + ["measure"] * 12
        measured = cell_steps[cell_steps["phase"] == "measure"]["duration_s"].to_numpy()
        assert row["step_s_median"] == pytest.approx(float(np.median(measured)), rel=1e-12)
        low, high = autocorr_median_ci(measured)
        assert (row["step_s_median_ci_low"], row["step_s_median_ci_high"]) == (low, high)
        assert row["step_s_lag1_autocorr"] == pytest.approx(lag1_autocorr(measured), rel=1e-12)
        assert row["images_per_s"] == pytest.approx(8 / row["step_s_median"])
        # the first call (tracing) is apart from the steps and slower than a steady step
        assert row["first_step_s"] > row["step_s_median"]
        assert not (cell_steps["duration_s"] == row["first_step_s"]).any()


def test_training_records_a_loss_per_step(run_dir: Path) -> None:
    steps = load_results(run_dir).steps
    train = steps[steps["mode"] == "train"]
    infer = steps[steps["mode"] == "infer"]
    assert train["loss"].notna().all() and (train["loss"] > 0).all()
    assert infer["loss"].isna().all()


def test_steps_share_the_run_clock(run_dir: Path) -> None:
    results = load_results(run_dir)
    steps = results.steps
    starts = steps["start_s"].to_numpy()
    assert (np.diff(starts) > 0).all()  # cells ran one after another on one clock
    for _, row in results.configs.iterrows():
        s = steps[(steps["config_id"] == row["config_id"]) & (steps["phase"] == "measure")]
        assert row["measure_start_s"] <= s["start_s"].min()
        assert row["measure_end_s"] == pytest.approx((s["start_s"] + s["duration_s"]).max())


def test_environment_records_provenance(run_dir: Path) -> None:
    env = json.loads((run_dir / "environment.json").read_text())
    for key in ("schema_version", "run_id", "started_at_utc", "host", "os", "python",
                "tensorflow_version", "keras_version", "tensorflow_build", "cpu_model",
                "cpu_count", "tfbench_version", "git_commit", "command_line", "gpus",
                "samplers", "clock_origin_ns"):
        assert key in env, key
    assert env["run_id"] == run_dir.name
    assert env["command_line"][:2] == ["tfbench", "run"]


def _cut_to_first_cell(run: Path) -> None:
    """What an interrupted run leaves: the rows of the cells that finished (whole rows)."""
    for name in ("configs.csv", "steps.csv"):
        lines = (run / name).read_text().splitlines(keepends=True)
        keep = [ln for ln in lines[1:] if ",infer-" in ln]
        (run / name).write_text(lines[0] + "".join(keep))


def test_resume_runs_only_the_missing_cells(tmp_path: Path) -> None:
    # The run is cut after its first cell; --resume (with the same flags, or none) restores
    # the stored profile and settings and runs the two missing cells.
    common = [sys.executable, "-m", "harness.cli", "run", "--profile", str(TINY_PROFILE),
              "--measured-steps", "3", "--warmup-steps", "1", "--samplers", "none", "--no-plots"]
    first = subprocess.run([*common, "--out", str(tmp_path)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert first.returncode == 0, first.stderr
    run = Path(first.stdout.strip())
    _cut_to_first_cell(run)
    before = load_results(run)
    resumed = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--resume", str(run)],
                             capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr
    after = load_results(run)
    assert list(after.configs["config_id"]) == [
        "infer-tiny_cnn-cpu-tf-fp32-bs8",
        "train-tiny_cnn-cpu-frozen-tf-fp32-bs8",
        "train-tiny_cnn-cpu-unfrozen-tf-fp32-bs8",
    ]
    assert after.configs.iloc[0].equals(before.configs.iloc[0])
    # the resumed cells continue on the same clock, after the first ones
    infer_end = after.steps[after.steps["mode"] == "infer"]["start_s"].max()
    assert after.steps[after.steps["mode"] == "train"]["start_s"].min() > infer_end
