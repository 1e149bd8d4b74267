"""Charts from golden results directories: what each figure shows, before it is saved.

The golden directories under tests/data/results/ are written by
tests/data/make_golden.py (Jetson boards, GPU cells, engines with parity, power
samples, several batch sizes, skipped/failed/oom cells, two hosts) and by a real
``tfbench run`` of tiny models on this machine (real_tiny).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from PIL import Image

from harness import plots
from harness.cli import main
from harness.records import CONFIGS_COLUMNS, RunFiles, write_environment

RESULTS = Path(__file__).resolve().parent / "data" / "results"
NANO = RESULTS / "orin_nano"
MNV2_CPU = "infer-mobilenet_v2-cpu-tf-fp32-bs8"
MNV2_GPU = "infer-mobilenet_v2-gpu-tf-fp32-bs8"
TRT_INT8 = "infer-mobilenet_v2-gpu-tftrt-int8-bs8"
TRT_FP16 = "infer-mobilenet_v2-gpu-tftrt-fp16-bs8"
INC_CPU = "infer-inception_v3-cpu-tf-fp32-bs8"
NX = RESULTS / "orin_nano_super"
REAL = RESULTS / "real_tiny"


@pytest.fixture(scope="module")
def nano() -> plots.RunSet:
    return plots.load_runs([NANO])


@pytest.fixture(scope="module")
def both() -> plots.RunSet:
    return plots.load_runs([NANO, NX])


def _measure(run_dir: Path) -> pd.DataFrame:
    steps = pd.read_csv(run_dir / "steps.csv")
    return steps[steps["phase"] == "measure"]


def _configs(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "configs.csv", dtype={"base": str}).fillna({"base": ""})


def _ok_cells(run_dir: Path, mode: str | None = None) -> int:
    c = _configs(run_dir)
    c = c[c["status"] == "ok"]
    return int(len(c) if mode is None else (c["mode"] == mode).sum())


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def all_skipped_dir(root: Path) -> Path:
    """A results directory whose every cell was skipped (no GPU here)."""
    root.mkdir(parents=True)
    files = RunFiles(root)
    write_environment(files.environment, {"run_id": "20250101-000000-ci", "host": "ci"})
    rows = [{"run_id": "20250101-000000-ci", "config_id": f"c{i}", "model": "mobilenet_v2",
             "weights": "random", "input_size": 224, "device": "gpu", "mode": "infer",
             "base": "", "engine": "tf", "precision": "fp32", "batch_size": bs,
             "data": "synthetic", "status": "skipped", "reason": "device gpu: no GPU visible"}
            for i, bs in enumerate((8, 16))]
    files.appender("configs.csv").append(rows)
    return root


# ----------------------------------------------------------------------------- loading


def test_runs_are_labelled_by_host_and_cells_by_the_factors_that_vary(both: plots.RunSet
                                                                       ) -> None:
    assert both.labels == ["orin-nano", "orin-nano-super"]
    assert both.hue == "run"
    assert "input_size" not in both.varying  # each model has one size: the model says it
    assert both.constant == {"weights": "random", "data": "synthetic"}
    labels = set(both.configs["cell"])
    assert "inception_v3 · cpu · train frozen · tf fp32 · bs8" in labels
    assert "mobilenet_v2 · gpu · infer · tftrt int8 · bs8" in labels


def test_cell_table_recomputes_statistics_from_measured_steps(nano: plots.RunSet) -> None:
    table = plots.cell_table(nano).set_index("config_id")
    steps = _measure(NANO)
    for config_id, group in steps.groupby("config_id"):
        d = group["duration_s"].to_numpy()
        row = table.loc[config_id]
        assert row["step_s_median"] == pytest.approx(np.median(d))
        assert row["step_s_p90"] == pytest.approx(np.percentile(d, 90))
        assert row["images_per_s"] == pytest.approx(row["batch_size"] / np.median(d))
        assert row["images_per_s_ci_low"] < row["images_per_s"] < row["images_per_s_ci_high"]
    assert table.loc[TRT_INT8, "parity_flag"]  # tftrt int8: parity_ok false
    assert not table.loc[TRT_FP16, "parity_flag"]
    assert table[table["status"] != "ok"]["n_steps"].eq(0).all()


def test_a_directory_given_twice_keeps_the_runs_apart(tmp_path: Path) -> None:
    copy = _copy(NANO, tmp_path / "again")
    rs = plots.load_runs([NANO, copy])
    assert len(set(rs.labels)) == 2
    assert rs.configs.groupby("run").size().tolist() == [16, 16]


# ----------------------------------------------------------------------------- ratios


def test_speedup_ci_of_constant_steps_is_the_exact_ratio() -> None:
    value, low, high, _ = plots.speedup_ci([0.5] * 30, [1.5] * 30)
    assert (value, low, high) == (pytest.approx(3.0), pytest.approx(3.0), pytest.approx(3.0))


def test_speedup_ci_of_interleaved_blocks_is_a_paired_t_interval() -> None:
    # Four blocks; within a block A is constant, B is 2.0, 2.2, 1.8, 2.0 times A.
    a = [1.0] * 5 + [1.1] * 5 + [0.9] * 5 + [1.0] * 5
    factors = [2.0, 2.2, 1.8, 2.0]
    b = [x * factors[i // 5] for i, x in enumerate(a)]
    blocks = [i // 5 for i in range(20)]
    value, low, high, method = plots.speedup_ci(a, b, blocks, blocks)
    d = np.log(factors)
    half = 3.182446305284263 * np.std(d, ddof=1) / 2  # t(0.975, 3) · sd / sqrt(4)
    assert value == pytest.approx(math.exp(d.mean()))
    assert low == pytest.approx(math.exp(d.mean() - half))
    assert high == pytest.approx(math.exp(d.mean() + half))
    assert method.startswith("paired blocks")


def test_speedup_ci_covers_the_true_ratio_for_noisy_steps() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(200):
        a = 0.1 * np.exp(rng.normal(0, 0.05, 60))
        b = 0.25 * np.exp(rng.normal(0, 0.05, 60))
        _, low, high, _ = plots.speedup_ci(a, b)
        hits += low <= 2.5 <= high
    assert hits >= 180  # nominal 95%; independent steps here


def test_speedups_pair_cells_that_differ_in_one_factor(nano: plots.RunSet) -> None:
    ratios = plots.speedups(nano)
    kinds = pd.Series([r.kind for r in ratios]).value_counts().to_dict()
    # 4 cpu/gpu pairs; frozen vs unfrozen only for mobilenet_v2 (inception unfrozen was OOM);
    # tftrt fp16 and int8 against tf fp32; mobilenet_v2 vs inception_v3 in 4 settings.
    assert kinds == {"GPU over CPU": 4, "frozen over unfrozen": 1, "engine over tf fp32": 2,
                     "model over model": 4}
    steps = _measure(NANO)
    med = steps.groupby("config_id")["duration_s"].median()
    gpu_cpu = next(r for r in ratios if r.kind == "GPU over CPU"
                   and r.context == "mobilenet_v2 · infer · tf fp32 · bs8")
    assert gpu_cpu.value == pytest.approx(med[MNV2_CPU] / med[MNV2_GPU])
    assert gpu_cpu.low < gpu_cpu.value < gpu_cpu.high
    model = next(r for r in ratios if r.kind == "model over model")
    assert (model.a, model.b) == ("mobilenet_v2", "inception_v3")
    int8 = next(r for r in ratios if r.a == "tftrt int8")
    assert int8.parity_fail and int8.b == "tf fp32"


def test_two_runs_add_run_over_run_ratios(both: plots.RunSet) -> None:
    runs = [r for r in plots.speedups(both) if r.kind == "run over run"]
    assert len(runs) == _ok_cells(NANO)
    assert {(r.a, r.b) for r in runs} == {("orin-nano-super", "orin-nano")}
    # the generator made orin-nano-super 1/0.55 faster
    assert all(1.6 < r.value < 2.0 for r in runs)


# ----------------------------------------------------------------------------- charts


def test_step_time_chart_has_one_facet_per_mode_and_one_row_per_cell(nano: plots.RunSet
                                                                      ) -> None:
    chart = plots.step_time_chart(nano)
    assert chart.made and "orin-nano" in chart.title and "Jetson Orin Nano" in chart.title
    axes = chart.figure.axes
    assert [a.get_title(loc="left") for a in axes] == ["inference (8 cells)",
                                                       "training (5 cells)"]
    infer = axes[0]
    labels = [t.get_text() for t in infer.get_yticklabels()]
    assert len(labels) == _ok_cells(NANO, "infer")
    assert "mobilenet_v2 · gpu · infer · tftrt int8 · bs8 [parity FAIL]" in labels
    flagged = next(t for t in infer.get_yticklabels() if "parity FAIL" in t.get_text())
    assert to_rgba(flagged.get_color()) == to_rgba("firebrick")
    assert infer.get_xscale() == "log"  # 7 ms to 930 ms
    assert infer.get_xlabel() == "step time (ms, log scale)"


def test_throughput_chart_draws_each_cell_with_its_ci(both: plots.RunSet) -> None:
    chart = plots.throughput_chart(both)
    table = plots.cell_table(both)
    ok = table[table["status"] == "ok"]
    infer = chart.figure.axes[0]
    points = infer.containers  # one ErrorbarContainer per point
    assert len(points) == int((ok["mode"] == "infer").sum())  # both runs side by side
    xs = sorted(float(c.lines[0].get_xdata()[0]) for c in points)
    assert xs == pytest.approx(sorted(ok[ok["mode"] == "infer"]["images_per_s"]))
    assert "images/s" in infer.get_xlabel()
    legend = [t.get_text() for t in chart.figure.legends[0].get_texts()]
    assert legend == ["orin-nano", "orin-nano-super"]
    assert "orin-nano vs orin-nano-super" in chart.title


def test_speedup_chart_has_a_row_per_ratio_and_the_no_change_line(nano: plots.RunSet
                                                                   ) -> None:
    ratios = plots.speedups(nano)
    chart = plots.speedup_chart(nano, ratios)
    ax = chart.figure.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(ratios) == 11
    assert "GPU over CPU  [mobilenet_v2 · infer · tf fp32 · bs8]" in labels
    assert any(label.endswith("[parity FAIL]") and "tftrt int8" in label for label in labels)
    assert ax.get_xscale() == "log"
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in ax.get_lines())


def test_timeline_has_a_panel_per_cell_with_the_warmup_shaded(nano: plots.RunSet) -> None:
    chart = plots.step_timeline_chart(nano)
    axes = chart.figure.axes
    assert len(axes) == _ok_cells(NANO)
    for ax in axes:
        assert len(ax.get_lines()) == 1
        shade = [p for p in ax.patches]
        assert len(shade) == 1
        x0 = shade[0].get_x() if hasattr(shade[0], "get_x") else None
        verts = shade[0].get_xy() if x0 is None else None
        left = x0 if x0 is not None else float(np.min(np.asarray(verts)[:, 0]))
        assert left == pytest.approx(-0.5)
        assert ax.get_ylabel() == "step time (ms)"


def test_power_chart_shades_each_measured_window_per_run(both: plots.RunSet) -> None:
    chart = plots.power_chart(both)
    axes = [a for a in chart.figure.axes if a.axison]
    assert len(axes) == 2
    key = next(a for a in chart.figure.axes if not a.axison).texts[0].get_text()
    assert key.startswith("measured windows\n 1  mobilenet_v2 · cpu · infer")
    for ax, run in zip(axes, (NANO, NX), strict=True):
        assert ax.get_ylabel() == "total power (W)"
        assert len(ax.patches) == _ok_cells(run)
        assert len(ax.get_lines()) == 1


def test_energy_chart_draws_low_confidence_values_hollow(nano: plots.RunSet) -> None:
    chart = plots.energy_chart(nano)
    configs = _configs(NANO)
    ok = configs[configs["status"] == "ok"]
    low = int((ok["energy_confidence"] == "low").sum())
    faces = [c.lines[0].get_markerfacecolor() for ax in chart.figure.axes for c in ax.containers]
    assert len(faces) == len(ok)
    assert sum(to_rgba(f) == to_rgba("white") for f in faces) == low > 0
    texts = [t.get_text() for ax in chart.figure.axes for t in ax.texts]
    assert sum("(low confidence)" in t for t in texts) == low
    assert "mJ" in chart.figure.axes[0].get_xlabel()


def test_memory_chart_shows_host_and_device_panels(nano: plots.RunSet) -> None:
    chart = plots.memory_chart(nano)
    # The golden runs have no psutil sampler, so no timed-phase RSS: the lifetime panel
    # and the device panel are drawn, the timed-phase panel is not.
    host, device = chart.figure.axes
    assert host.get_xlabel() == "peak host RSS, worker lifetime (MiB)"
    assert device.get_xlabel() == "peak device memory (MiB)"
    bars = [p for p in device.patches if p.get_width() > 0]
    configs = _configs(NANO)
    assert len(bars) == int(((configs["status"] == "ok") & (configs["device"] == "gpu")).sum())
    widths = sorted(p.get_width() for p in host.patches if p.get_width() > 0)
    expected = sorted(configs[configs["status"] == "ok"]["host_rss_lifetime_peak_bytes"] / 2**20)
    assert widths == pytest.approx(expected)


def test_batch_size_chart_has_one_line_per_series(nano: plots.RunSet, both: plots.RunSet
                                                  ) -> None:
    one = plots.batch_size_chart(nano).figure.axes[0]
    assert len(one.containers) == 1
    assert list(one.get_xticks()) == [8, 16, 32]
    assert one.get_ylabel() == "throughput (images/s)"
    two = plots.batch_size_chart(both).figure.axes[0]
    assert [t.get_text() for t in two.get_legend().get_texts()] == [
        "mobilenet_v2 · gpu · infer · tf fp32 [orin-nano]",
        "mobilenet_v2 · gpu · infer · tf fp32 [orin-nano-super]"]


def test_charts_without_data_are_listed_as_not_made(tmp_path: Path) -> None:
    run = _copy(NANO, tmp_path / "run")
    (run / "samples.csv").unlink()
    configs = pd.read_csv(run / "configs.csv")
    configs = configs[configs["batch_size"] == 8]
    configs = configs.drop(columns=["energy_j_per_image", "device_mem_peak_bytes"])
    configs.to_csv(run / "configs.csv", index=False)
    charts = {c.name: c for c in plots.build_charts(plots.load_runs([run]))}
    assert not charts["power"].made and "power_total" in charts["power"].reason
    assert not charts["energy"].made and "energy_j_per_image" in charts["energy"].reason
    assert not charts["batch_size"].made and "batch size" in charts["batch_size"].reason
    assert charts["memory"].made and len(charts["memory"].figure.axes) == 1
    out = tmp_path / "charts"
    paths = plots.save_charts(list(charts.values()), out)
    assert not (out / "power.png").exists()
    index = (out / "index.md").read_text()
    assert "power: not made — samples.csv has no power_total" in index
    assert {p.name for p in paths} >= {"step_times.png", "step_times.svg", "index.md"}


# ----------------------------------------------------------------------------- CLI


def test_plot_command_writes_png_at_150_dpi_and_svg(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "charts"
    assert main(["plot", str(NANO), str(NX), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in plots.CHART_NAMES:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png.is_file() and svg.is_file(), name
        assert f"made      {name}" in printed
        with Image.open(png) as image:
            assert image.info["dpi"][0] >= 150
        assert svg.read_text().lstrip().startswith("<?xml")


def test_plot_command_default_out_and_format(tmp_path: Path) -> None:
    run = _copy(NANO, tmp_path / "run")
    assert main(["plot", str(run), "--format", "svg"]) == 0
    assert (run / "charts" / "throughput.svg").is_file()
    assert not (run / "charts" / "throughput.png").exists()


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_plot_bad_input_is_a_clear_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert "not a tfbench results directory" in _error(capsys, ["plot", str(tmp_path)])
    assert "does not exist" in _error(capsys, ["plot", str(tmp_path / "nope")])
    newer = _copy(NANO, tmp_path / "newer")
    env = json.loads((newer / "environment.json").read_text())
    (newer / "environment.json").write_text(json.dumps({**env, "schema_version": 99}))
    assert "schema_version 99 is newer" in _error(capsys, ["plot", str(newer)])
    cols = _copy(NANO, tmp_path / "cols")
    pd.read_csv(cols / "steps.csv").drop(columns=["duration_s"]).to_csv(cols / "steps.csv",
                                                                       index=False)
    assert "missing columns duration_s" in _error(capsys, ["plot", str(cols)])
    err = _error(capsys, ["plot", str(all_skipped_dir(tmp_path / "skipped"))])
    assert "no cell finished with status ok" in err and "2 skipped" in err
    assert "no GPU visible" in err
    err = _error(capsys, ["plot", str(NANO), "--format", "png,jpg"])
    assert "--format: 'png,jpg' is not valid; allowed: png, svg" in err


def test_write_run_charts_writes_into_the_run_and_never_raises_on_missing_data(
        tmp_path: Path) -> None:
    run = _copy(NANO, tmp_path / "run")
    paths = plots.write_run_charts(run)
    assert run / "charts" / "power.png" in paths
    skipped = all_skipped_dir(tmp_path / "skipped")
    assert plots.write_run_charts(skipped) == [skipped / "charts" / "index.md"]
    assert "no cell finished" in (skipped / "charts" / "index.md").read_text()


def test_configs_contract_columns_are_all_read(nano: plots.RunSet) -> None:
    assert set(CONFIGS_COLUMNS) <= set(nano.configs.columns)


# ----------------------------------------------------------------------------- real run


@pytest.mark.skipif(not REAL.is_dir(), reason="real_tiny results not committed yet")
def test_charts_of_a_real_tiny_run(tmp_path: Path) -> None:
    rs = plots.load_runs([REAL])
    charts = {c.name: c for c in plots.build_charts(rs)}
    for name in ("step_times", "throughput", "speedups", "step_timeline", "memory",
                 "batch_size"):
        assert charts[name].made, (name, charts[name].reason)
    assert not charts["power"].made  # psutil only: no power on this machine
    kinds = {r.kind for r in plots.speedups(rs)}
    assert {"frozen over unfrozen", "model over model"} <= kinds


def test_plot_and_report_never_import_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from harness.cli import main\n"
        "t = time.perf_counter()\n"
        f"out = {str(tmp_path / 'c')!r}\n"
        f"assert main(['plot', {str(REAL)!r}, '--out', out, '--format', 'png']) == 0\n"
        f"assert main(['report', {str(REAL)!r}, '--out', {str(tmp_path / 'r.html')!r}, "
        "'--html']) == 0\n"
        "print('seconds', time.perf_counter() - t)\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "assert 'keras' not in sys.modules, 'keras was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_interleaved_blocks_shade_each_warmup_and_pair_the_ratio(tmp_path: Path) -> None:
    run = _copy(NANO, tmp_path / "interleaved")
    steps = pd.read_csv(run / "steps.csv")
    blocks = []
    for config_id, factors in ((MNV2_CPU, (1.0, 1.08, 0.95)), (INC_CPU, (1.0, 1.02, 0.97))):
        cell = steps[steps["config_id"] == config_id]
        for block, factor in enumerate(factors):
            blocks.append(cell.assign(block=block, duration_s=cell["duration_s"] * factor))
    others = steps[~steps["config_id"].isin([MNV2_CPU, INC_CPU])]
    pd.concat([others, *blocks]).to_csv(run / "steps.csv", index=False)
    configs = pd.read_csv(run / "configs.csv", dtype=str, keep_default_na=False)
    configs.loc[configs["config_id"].isin([MNV2_CPU, INC_CPU]), "blocks"] = "3"
    unknown = plots.load_runs([run])  # no block_order column: not known to be interleaved
    ratio = next(r for r in plots.speedups(unknown) if r.kind == "model over model"
                 and r.context.startswith("cpu · infer"))
    assert ratio.method.startswith("chunk medians")
    configs["block_order"] = "sequential"
    configs.to_csv(run / "configs.csv", index=False)
    sequential = plots.load_runs([run])  # blocks back to back: never paired
    ratio = next(r for r in plots.speedups(sequential) if r.kind == "model over model"
                 and r.context.startswith("cpu · infer"))
    assert ratio.method.startswith("chunk medians")
    configs["block_order"] = "interleaved"
    configs.to_csv(run / "configs.csv", index=False)
    rs = plots.load_runs([run])
    chart = plots.step_timeline_chart(rs)
    panel = next(a for a in chart.figure.axes
                 if a.get_title().startswith("mobilenet_v2 · cpu · infer"))
    assert len(panel.patches) == 3  # one warm-up band per block
    ratio = next(r for r in plots.speedups(rs) if r.kind == "model over model"
                 and r.context.startswith("cpu · infer"))
    assert ratio.method == "paired blocks (n=3)"
    assert ratio.low < ratio.value < ratio.high
