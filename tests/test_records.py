"""The results-directory contract: CSV round trip, column checks, schema versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.records import (
    CONFIGS_COLUMNS,
    CONFIGS_FILE,
    SAMPLES_COLUMNS,
    SAMPLES_FILE,
    SCHEMA_VERSION,
    STEPS_COLUMNS,
    STEPS_FILE,
    RunFiles,
    load_results,
    read_environment,
    write_environment,
)

DESIGN_CONFIGS = (
    "run_id, config_id, model, weights, input_size, device, mode, base, engine, precision, "
    "batch_size, data, status, reason, warmup_steps, measured_steps, first_step_s, "
    "step_s_median, step_s_p90, step_s_p99, step_s_mean, step_s_std, step_s_median_ci_low, "
    "step_s_median_ci_high, images_per_s, power_w_mean, energy_j_per_image, "
    "host_rss_peak_bytes, device_mem_peak_bytes"
).split(", ")
DESIGN_STEPS = ("run_id, config_id, model, device, mode, base, engine, precision, batch_size, "
                "step, phase, start_s, duration_s, images, loss").split(", ")
DESIGN_SAMPLES = "run_id, config_id, sampler, metric, unit, t_s, value".split(", ")


def test_columns_include_the_design_minimum() -> None:
    assert set(DESIGN_CONFIGS) <= set(CONFIGS_COLUMNS)
    assert set(DESIGN_STEPS) <= set(STEPS_COLUMNS)
    # the design's columns first, in order; fleet runs add host and node_id (issue 16)
    assert list(SAMPLES_COLUMNS) == [*DESIGN_SAMPLES, "host", "node_id"]


def _write_run(root: Path) -> RunFiles:
    files = RunFiles(root)
    write_environment(files.environment, {"run_id": "r1", "host": "h"})
    files.appender(CONFIGS_FILE).append([
        {"run_id": "r1", "config_id": "infer-a", "model": "tiny_cnn", "base": "", "mode": "infer",
         "status": "ok", "step_s_median": 0.1234567890123, "batch_size": 8, "xla": False},
        {"run_id": "r1", "config_id": "train-b", "model": "tiny_cnn", "base": "frozen",
         "mode": "train", "status": "skipped", "reason": "no GPU, visible", "batch_size": 8,
         "step_s_median": float("nan")},
    ])
    files.appender(STEPS_FILE).append([
        {"run_id": "r1", "config_id": "infer-a", "step": i, "phase": "measure",
         "duration_s": 0.1 + i / 1000, "loss": None, "block": 0} for i in range(3)
    ])
    return files


def test_round_trip_keeps_values_and_statuses(tmp_path: Path) -> None:
    _write_run(tmp_path)
    results = load_results(tmp_path)
    assert results.run_id == "r1"
    assert results.environment.schema_version == SCHEMA_VERSION
    configs = results.configs
    assert list(configs["config_id"]) == ["infer-a", "train-b"]
    assert configs.loc[0, "step_s_median"] == 0.1234567890123  # repr-precise floats
    assert configs.loc[0, "base"] == ""
    assert configs.loc[1, "reason"] == "no GPU, visible"
    # a skipped cell has no number, not NaN text or 0
    assert (tmp_path / CONFIGS_FILE).read_text().splitlines()[2].count("nan") == 0
    assert list(results.steps["duration_s"]) == [0.1 + i / 1000 for i in range(3)]
    assert results.samples.empty and list(results.samples.columns) == list(SAMPLES_COLUMNS)


def test_header_written_once_when_appending(tmp_path: Path) -> None:
    files = _write_run(tmp_path)
    files.appender(STEPS_FILE).append([{"run_id": "r1", "config_id": "x", "step": 9}])
    lines = files.steps.read_text().splitlines()
    assert lines[0].startswith("run_id,config_id")
    assert sum(line.startswith("run_id,") for line in lines) == 1
    assert len(lines) == 5


def test_numpy_scalars_are_written_as_plain_numbers(tmp_path: Path) -> None:
    import numpy as np

    files = RunFiles(tmp_path)
    files.appender(SAMPLES_FILE).append([{"t_s": np.float64(0.25), "value": np.int64(7),
                                          "unit": np.str_("W"), "config_id": np.bool_(True)}])
    assert files.samples.read_text().splitlines()[1] == ",true,,,W,0.25,7,,"  # host, node_id


def test_unknown_column_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown columns"):
        RunFiles(tmp_path).appender(SAMPLES_FILE).append([{"watts": 3}])


def test_reader_refuses_newer_schema(tmp_path: Path) -> None:
    _write_run(tmp_path)
    env = json.loads((tmp_path / "environment.json").read_text())
    env["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "environment.json").write_text(json.dumps(env))
    with pytest.raises(UserError, match="newer than this tfbench understands"):
        load_results(tmp_path)


def test_reader_names_missing_columns(tmp_path: Path) -> None:
    _write_run(tmp_path)
    text = (tmp_path / CONFIGS_FILE).read_text().replace("status", "state", 1)
    (tmp_path / CONFIGS_FILE).write_text(text)
    with pytest.raises(UserError, match="missing columns status"):
        load_results(tmp_path)


def test_reader_refuses_unknown_status(tmp_path: Path) -> None:
    files = _write_run(tmp_path)
    files.appender(CONFIGS_FILE).append([{"run_id": "r1", "config_id": "c", "status": "0 FPS"}])
    with pytest.raises(UserError, match="status: '0 FPS' is not valid"):
        load_results(tmp_path)


def test_not_a_results_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a tfbench results directory"):
        read_environment(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        read_environment(tmp_path / "nope")
    (tmp_path / "environment.json").write_text("{broken")
    with pytest.raises(UserError, match="not valid JSON"):
        read_environment(tmp_path)


# --- the typed environment and the one value normaliser (issue 14) --------------------------


def test_environment_is_typed_and_refuses_wrong_types(tmp_path: Path) -> None:
    from harness.records import Environment, load_environment

    write_environment(tmp_path / "environment.json",
                      Environment(run_id="r1", host="h", cpu_count=4,
                                  command_line=("tfbench", "run")))
    env = load_environment(tmp_path)
    assert (env.run_id, env.host, env.cpu_count, env.command_line) == \
        ("r1", "h", 4, ("tfbench", "run"))
    assert env.gpus is None and env.jetson is None  # not recorded, not guessed
    raw = json.loads((tmp_path / "environment.json").read_text())
    raw["cpu_count"] = "six"
    (tmp_path / "environment.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match="cpu_count: 'six' is not valid; allowed: an integer"):
        load_environment(tmp_path)
    with pytest.raises(UserError, match=r"jetson\.nvpmodel"):
        write_environment(tmp_path / "environment.json",
                          {"run_id": "r1", "jetson": {"nvpmodel": ["15W"]}})


def test_sampler_problems_are_typed_and_described() -> None:
    from harness.records import Environment

    env = Environment.from_json({"run_id": "r", "sampling": {
        "active": ["psutil"], "problems": [{"sampler": "nvml", "message": "stopped at t=3 s"}],
        "died_at_s": None}})
    assert env.warnings() == ["sampler nvml: stopped at t=3 s"]


def test_value_normaliser() -> None:
    import numpy as np
    import pandas as pd

    from harness.records import flag, number, text

    assert [text(v) for v in (None, float("nan"), pd.NA, 8.0, np.float64(8.0), 8.5, "gpu",
                              True, np.int64(3))] == \
        ["", "", "", "8", "8", "8.5", "gpu", "true", "3"]
    assert [flag(v) for v in ("true", "false", True, np.bool_(False), "", None,
                              float("nan"))] == [True, False, True, False, None, None, None]
    with pytest.raises(UserError, match="boolean column"):
        flag("yes please")
    assert number("") is None and number(float("nan")) is None and number("2.5") == 2.5


def test_environment_collect_builds_the_typed_model() -> None:
    from harness.environment import build_environment, platform_facts

    env = build_environment(run_id="r", started_at_utc="2026-01-01T00:00:00+00:00",
                            clock_origin_ns=5, command_line=["tfbench", "run"], profile="quick",
                            platform_facts=platform_facts(),
                            tensorflow={"tensorflow_error": "probe timed out after 120 s"},
                            jetson=None)
    assert env.tensorflow_version is None and env.gpus is None  # unknown, not "no GPU"
    assert env.warnings() == ["TensorFlow probe: probe timed out after 120 s"]
    assert env.cpu_count is not None and env.host
    assert json.loads(json.dumps(env.to_json()))["tensorflow_error"].startswith("probe")


def test_analysis_modules_read_the_typed_environment_only() -> None:
    # The first wave's report and plots guessed about 35 alternative key paths (env_get).
    import re

    root = Path(__file__).resolve().parent.parent / "harness"
    readers = ["plots", "report", "report_doc", "runset", "speedups", "chartkit",
               "charts_cells", "charts_time", "comparison", "compare", "compare_render",
               "machine_class"]
    raw_access = re.compile(r"env_get|environment\[|environment\.get\(|env\.get\(|env\[")
    for name in readers:
        source = (root / f"{name}.py").read_text()
        assert not raw_access.search(source), f"harness/{name}.py reads environment keys"
