"""`tfbench run --trace` for real on a tiny model: traces, ops.csv, FLOPs, the peak probe,
the charts; and the paths where no trace can be had (converter missing, an engine
without a TensorFlow profiler), which leave the cell ok with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.records import OPS_COLUMNS, load_results, read_ops

pytestmark = pytest.mark.slow


def _run(out: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Path, str]:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=900, check=False,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir, proc.stderr


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("traced"), "--models", "tiny_mobilenet_v2",
                "--modes", "infer,train", "--bases", "unfrozen", "--batch-sizes", "4",
                "--measured-steps", "10", "--trace", "--samplers", "none")[0]


def test_traces_in_tensorboard_layout_and_ops_rows(traced_run: Path) -> None:
    results = load_results(traced_run)
    configs = results.configs
    assert set(configs["status"]) == {"ok"} and set(configs["trace"]) == {"ok"}
    ops = read_ops(traced_run)
    assert list(ops.columns) == list(OPS_COLUMNS)
    for cid in configs["config_id"]:
        assert list((traced_run / "traces" / cid).glob("plugins/profile/*/*.xplane.pb"))
        assert (ops["config_id"] == cid).sum() > 10
    train = ops[ops["mode"] == "train"]
    assert {"forward", "backward", "optimizer"} <= set(train["category"])
    assert set(ops[ops["mode"] == "infer"]["category"]) <= {"forward", "input"}
    assert (ops["run_id"] == results.run_id).all()
    assert (ops["device"] == "cpu").all()  # the factor, not where the op ran
    assert set(ops["op_device"]) <= {"Host", "Device"}


def test_op_self_times_add_up_to_the_traced_step(traced_run: Path) -> None:
    results = load_results(traced_run)
    ops = read_ops(traced_run)
    steps = results.steps
    for cid, cell_ops in ops.groupby("config_id"):
        traced = steps[(steps["config_id"] == cid) & (steps["phase"] == "trace")]
        assert len(traced) == 5  # --trace's default
        op_time = cell_ops[cell_ops["category"] != "input"]["self_s_per_step"].sum()
        ratio = op_time / traced["duration_s"].median()
        assert 0.5 <= ratio <= 1.5, (cid, ratio)


def test_traced_steps_stay_out_of_the_statistics(traced_run: Path) -> None:
    results = load_results(traced_run)
    for _, row in results.configs.iterrows():
        cell = results.steps[results.steps["config_id"] == row["config_id"]]
        measured = cell[cell["phase"] == "measure"]["duration_s"]
        assert row["measured_steps"] == len(measured)
        assert row["step_s_median"] == pytest.approx(float(measured.median()), rel=1e-12)
        assert list(cell["phase"])[-5:] == ["trace"] * 5


def test_flops_cross_check_and_peak(traced_run: Path) -> None:
    results = load_results(traced_run)
    peak = results.environment.peak["cpu"]  # the typed probe (envmodel.PeakProbe)
    assert peak.status == "ok" and peak.peak_flops_per_s is not None
    assert peak.peak_flops_per_s > 1e8
    assert peak.peak_bytes_per_s is not None and peak.peak_bytes_per_s > 1e8
    for _, row in results.configs.iterrows():
        detail = pd.read_json(pd.io.common.StringIO(row["engine_detail"]), typ="series")
        analytic = float(detail["analytic_flops_per_step"])
        assert 0.8 <= row["flops_per_step"] / analytic <= 1.25
        assert row["achieved_flops_per_s"] == pytest.approx(
            row["flops_per_step"] / row["step_s_median"])
        assert row["bytes_per_step"] > 0


def test_profiling_charts_and_report_section(traced_run: Path) -> None:
    charts = traced_run / "charts"
    for name in ("op_categories", "top_ops", "roofline"):
        assert (charts / f"{name}.png").stat().st_size > 10_000
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(traced_run)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    text = (traced_run / "report.md").read_text()
    assert "## Where the time goes" in text
    assert "of its step in the backward pass" in text


def test_no_converter_and_engine_without_profiler_skip_the_trace_only(
        tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "xprof"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('xprof removed for this test')\n")
    path = os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])
    run_dir, console = _run(tmp_path / "out", "--models", "tiny_cnn", "--engines", "tf,litert",
                   "--modes", "infer",
                   "--batch-sizes", "4", "--warmup-steps", "1", "--measured-steps", "3",
                   "--trace", "--trace-steps", "2", "--samplers", "none", "--no-plots",
                   env={"PYTHONPATH": path})
    configs = load_results(run_dir).configs.set_index("engine")
    assert set(configs["status"]) == {"ok"}
    assert configs.loc["tf", "trace"].startswith("skipped (no profile converter: xprof is "
                                                 "not importable")
    assert configs.loc["litert", "trace"].startswith("skipped (engine litert has no "
                                                     "TensorFlow profiler trace")
    assert configs["flops_per_step"].isna().all()
    assert read_ops(run_dir).empty
    # the console says it too, per cell (not only the CSV)
    assert "trace skipped (engine litert has no TensorFlow profiler trace" in console
    assert "trace skipped (no profile converter" in console
