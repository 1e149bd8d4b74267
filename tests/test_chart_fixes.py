"""The chart fixes of issue 13, on golden runs edited here: engines by colour and marker
with labelled line ends, median labels, bar values, input wait beside compute, the
comparison colours, short run labels, and the energy-per-image vs batch-size chart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.colors import to_hex

from harness import plots
from harness.chartkit import palette

NANO = Path(__file__).resolve().parent / "data" / "results" / "orin_nano"
SERIES = ["infer-mobilenet_v2-gpu-tf-fp32-bs8", "infer-mobilenet_v2-gpu-tf-fp32-bs16",
          "infer-mobilenet_v2-gpu-tf-fp32-bs32"]


def _two_engine_run(tmp_path: Path) -> Path:
    """The golden batch series again as an xla series (steps 0.8x as long)."""
    run = tmp_path / "run"
    shutil.copytree(NANO, run)
    configs = pd.read_csv(run / "configs.csv", dtype=str, keep_default_na=False)
    steps = pd.read_csv(run / "steps.csv")
    new_c = configs[configs["config_id"].isin(SERIES)].copy()
    new_s = steps[steps["config_id"].isin(SERIES)].copy()
    for frame in (new_c, new_s):
        frame["config_id"] = frame["config_id"].str.replace("-tf-", "-xla-")
        frame["engine"] = "xla"
    new_s["duration_s"] *= 0.8
    pd.concat([configs, new_c]).to_csv(run / "configs.csv", index=False)
    pd.concat([steps, new_s]).to_csv(run / "steps.csv", index=False)
    return run


def test_batch_size_chart_tells_engines_apart_by_colour_and_marker(tmp_path: Path) -> None:
    rs = plots.load_runs([_two_engine_run(tmp_path)])
    ax = plots.batch_size_chart(rs).figure.axes[0]
    lines = [c.lines[0] for c in ax.containers]
    assert len(lines) == 2
    assert len({to_hex(ln.get_color()) for ln in lines}) == 2
    assert {ln.get_marker() for ln in lines} == {"o", "s"}
    ends = [t.get_text() for t in ax.texts]
    assert any("tf fp32" in t and t.endswith("328 images/s") for t in ends)
    assert any("xla fp32" in t for t in ends)


def test_energy_per_image_against_batch_size(tmp_path: Path) -> None:
    chart = plots.energy_batch_size_chart(plots.load_runs([NANO]))
    assert chart.made
    ax = chart.figure.axes[0]
    assert ax.get_ylabel() == "energy per image (mJ/image)"
    (line,) = [c.lines[0] for c in ax.containers]
    assert list(line.get_xdata()) == [8, 16, 32]
    assert any(t.get_text().endswith("38.1 mJ/image") for t in ax.texts)


def test_step_time_boxes_carry_their_medians_and_input_wait(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(NANO, run)
    configs = pd.read_csv(run / "configs.csv", dtype=str, keep_default_na=False)
    configs.loc[configs["config_id"] == SERIES[0], "data"] = "/data/flowers"
    configs.to_csv(run / "configs.csv", index=False)
    steps = pd.read_csv(run / "steps.csv")
    steps.loc[steps["config_id"] == SERIES[0], "input_wait_s"] = 0.012
    steps.to_csv(run / "steps.csv", index=False)
    chart = plots.step_time_chart(plots.load_runs([run]))
    infer = chart.figure.axes[0]
    texts = [t.get_text() for t in infer.texts]
    assert "median 925 ms" in texts and "median 54.2 ms" in texts
    assert "median 31.9 ms; input wait 12 ms" in texts  # beside the compute box and cross
    assert any(ln.get_marker() == "x" for ln in infer.lines)
    legend = [t.get_text() for t in chart.figure.legends[0].get_texts()]
    assert any("median input wait" in t for t in legend)


def test_memory_bars_carry_their_values() -> None:
    chart = plots.memory_chart(plots.load_runs([NANO]))
    labels = [t.get_text() for ax in chart.figure.axes for t in ax.texts]
    assert "1,888" in labels and "954" in labels


def test_comparison_colours_are_not_model_colours() -> None:
    models = {to_hex(c) for c in palette("model", ["mobilenet_v2", "inception_v3",
                                                    "mobilenet_v1", "tiny_cnn",
                                                    "tiny_mobilenet_v2"]).values()}
    kinds = ["GPU over CPU", "frozen over unfrozen", "engine over tf fp32",
             "model over model", "run over run"]
    comparisons = {to_hex(c) for c in palette("comparison", kinds).values()}
    assert len(comparisons) == 5 and not comparisons & models


@pytest.mark.parametrize(("second", "expected"), [
    ("2025-03-01T14:05:00+00:00", ["orin-nano 03-01 10:15", "orin-nano 03-01 14:05"]),
    ("2025-03-01T10:15:30+00:00", ["orin-nano 03-01 10:15:00", "orin-nano 03-01 10:15:30"]),
])
def test_two_runs_of_one_host_get_short_host_date_labels(tmp_path: Path, second: str,
                                                         expected: list[str]) -> None:
    other = tmp_path / "other"
    shutil.copytree(NANO, other)
    env = json.loads((other / "environment.json").read_text())
    env["started_at_utc"] = second
    env["run_id"] = "20250301-141500-orin-nano"
    (other / "environment.json").write_text(json.dumps(env))
    assert plots.load_runs([NANO, other]).labels == expected
