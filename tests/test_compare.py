"""`tfbench compare` end to end on the committed results directories in tests/data/compare.

The directories come from tests/data/make_compare_data.py: five baseline
repeats, a candidate with known shifts (none, +25%, −20%), an A/A candidate,
another machine class, an interleaved run with a known 1.8× ratio, and
malformed inputs.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness import compare
from harness.cli import main

DATA = Path(__file__).resolve().parent / "data" / "compare"
BASES = [str(DATA / f"base_r{k}") for k in range(1, 6)]
UNCHANGED = "tiny_cnn/cpu/infer/bs8"
SLOWER = "tiny_cnn/cpu/train/frozen/bs8"  # +25%
FASTER = "tiny_mobilenet_v2/cpu/infer/bs8"  # −20%
FAILED = "tiny_mobilenet_v2/cpu/train/unfrozen/bs8"
BASE_ONLY = "tiny_cnn/cpu/infer/bs16"
CAND_ONLY = "tiny_cnn/cpu/infer/xla/bs8"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``tfbench compare`` judging step_s (the metric these tests are about) unless told."""
    code = main(["compare", *args, *([] if "--metric" in args else ["--metric", "step_s"])])
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run_cli(capsys, *args, "--format", "json")
    return code, json.loads(out)


def by_label(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["label"]: c for c in data["cells"]}


def test_known_shifts_with_several_baselines(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = as_json(capsys, *BASES, str(DATA / "candidate"))
    cells = by_label(data)
    assert code == 1
    assert data["regressions"] == 1
    assert cells[UNCHANGED]["verdict"] == "NO CHANGE"
    assert cells[SLOWER]["verdict"] == "REGRESSION"
    assert cells[SLOWER]["ci_low"] > 1.05
    assert cells[SLOWER]["ci_low"] <= 1.25 <= cells[SLOWER]["ci_high"]
    assert cells[FASTER]["verdict"] == "IMPROVEMENT"
    assert cells[FASTER]["ci_low"] <= 0.80 <= cells[FASTER]["ci_high"]
    for label in (UNCHANGED, SLOWER, FASTER):
        assert cells[label]["baseline_runs"] == 5
        assert cells[label]["run_spread_source"] == "estimated from 5 baseline runs"
        assert cells[label]["q_value"] >= cells[label]["p_value"]
    assert any("estimated per cell" in n for n in data["notes"])


def test_one_sided_and_failed_cells_are_listed_not_compared(
        capsys: pytest.CaptureFixture[str]) -> None:
    _, data = as_json(capsys, *BASES, str(DATA / "candidate"))
    cells = by_label(data)
    assert cells[BASE_ONLY]["status"] == "baseline only"
    assert cells[CAND_ONLY]["status"] == "candidate only"
    assert cells[FAILED]["status"] == "not compared"
    assert "candidate status failed: worker exited with code -9" in cells[FAILED]["note"]
    for label in (BASE_ONLY, CAND_ONLY, FAILED):
        assert cells[label]["verdict"] == ""
        assert cells[label]["ratio"] is None


def test_aa_candidate_has_no_regression_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = as_json(capsys, *BASES, str(DATA / "candidate_aa"))
    assert code == 0
    verdicts = {c["verdict"] for c in data["cells"]}
    assert verdicts <= {"NO CHANGE", "INCONCLUSIVE"}
    assert len(data["cells"]) == 5


def test_single_baseline_uses_assumed_spread_and_says_so(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, BASES[0], str(DATA / "candidate"))
    assert code == 1
    assert "between-run spread: assumed 2% (--run-spread)" in out
    assert re.search(r"step_s \[tiny_cnn/cpu/infer/bs8\] ratio [\d.]+× .* INCONCLUSIVE", out)
    code, data = as_json(capsys, BASES[0], str(DATA / "candidate"), "--run-spread", "1%")
    cells = by_label(data)
    assert cells[SLOWER]["verdict"] == "REGRESSION"
    assert cells[SLOWER]["run_spread"] == pytest.approx(0.00995, abs=1e-5)  # ln 1.01
    assert cells[SLOWER]["run_spread_source"] == "assumed (--run-spread)"


def test_table_line_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *BASES, str(DATA / "candidate"))
    assert code == 1
    line = re.compile(r"^step_s \[tiny_cnn/cpu/train/frozen/bs8\] ratio (\d\.\d{3})× "
                      r"\(95% CI (\d\.\d{3})–(\d\.\d{3})\) REGRESSION \(δ=5%\)$", re.M)
    m = line.search(out)
    assert m, out
    low, ratio, high = float(m[2]), float(m[1]), float(m[3])
    assert low < ratio < high
    assert "summary: 1 REGRESSION, 1 IMPROVEMENT, 1 NO CHANGE, 0 INCONCLUSIVE, 3 listed only" \
        in out
    assert f"  {CAND_ONLY}: candidate only" in out


def test_images_per_s_inverts_the_direction(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = as_json(capsys, *BASES, str(DATA / "candidate"), "--metric", "images_per_s")
    cells = by_label(data)
    assert code == 1
    assert cells[SLOWER]["verdict"] == "REGRESSION"
    assert cells[SLOWER]["ratio"] < 1 / 1.05
    assert cells[FASTER]["verdict"] == "IMPROVEMENT"
    assert cells[FASTER]["ratio"] > 1.05


def test_energy_metric_from_configs(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = as_json(capsys, *BASES, str(DATA / "candidate"), "--metric",
                         "energy_j_per_image")
    cells = by_label(data)
    assert code == 1
    assert cells[SLOWER]["verdict"] == "REGRESSION"
    assert cells[FASTER]["verdict"] == "IMPROVEMENT"
    assert cells[UNCHANGED]["verdict"] in ("NO CHANGE", "INCONCLUSIVE")


def test_energy_missing_is_listed_not_zero(capsys: pytest.CaptureFixture[str]) -> None:
    _, data = as_json(capsys, *BASES, str(DATA / "candidate_aa"), "--metric",
                      "energy_j_per_image")
    cell = by_label(data)[BASE_ONLY]
    assert cell["status"] == "not compared"
    assert "no energy_j_per_image recorded" in cell["note"]
    assert cell["ratio"] is None


def test_csv_and_markdown_formats(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, *BASES, str(DATA / "candidate"), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == compare.CSV_COLUMNS
    slower = next(r for r in rows if r["cell"] == SLOWER)
    assert (slower["verdict"], slower["model"], slower["base"]) == \
        ("REGRESSION", "tiny_cnn", "frozen")
    assert float(slower["ci_low"]) > 1.05
    only = next(r for r in rows if r["cell"] == CAND_ONLY)
    assert (only["status"], only["ratio"]) == ("candidate only", "")
    _, out, _ = run_cli(capsys, *BASES, str(DATA / "candidate"), "--format", "markdown")
    assert "| cell | baseline | candidate | ratio | CI | verdict | BH q | note |" in out
    assert f"| {SLOWER} |" in out and "**REGRESSION**" in out


def test_threshold_changes_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    # The +25% cell (measured ≈1.22×) is no regression against a 30% threshold.
    code, data = as_json(capsys, *BASES, str(DATA / "candidate"), "--threshold", "30%")
    assert code == 0
    assert by_label(data)[SLOWER]["verdict"] in ("INCONCLUSIVE", "NO CHANGE")
    assert data["threshold"] == pytest.approx(0.30)


# --- machine class --------------------------------------------------------------------------


def test_machine_class_mismatch_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, BASES[0], str(DATA / "other_machine"))
    assert code == 2
    assert out == ""
    assert "machine class differs" in err
    assert "cpu_model" in err and "AMD EPYC 7B13" in err
    assert "tensorflow_version" in err and "2.20.0" in err
    assert "--force" in err
    assert "Traceback" not in err


def test_machine_class_mismatch_forced_warns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, BASES[0], str(DATA / "other_machine"), "--force")
    assert code == 1
    assert "warning: machine class differs" in err
    assert "warning: machine class differs" in out


def test_volatile_fields_do_not_count(capsys: pytest.CaptureFixture[str]) -> None:
    # volatile_only differs in the measured clock (cpu_freq_mhz) and the host name only.
    code, out, err = run_cli(capsys, *BASES, str(DATA / "volatile_only"))
    assert code == 0
    assert "machine class" not in err + out


def test_machine_class_fields() -> None:
    jetson: dict[str, Any] = {"model": "Jetson Orin Nano", "jetpack": "6.2", "l4t": "36.4.3",
                              "nvpmodel": "15W", "jetson_clocks": "running", "gpu_freq_mhz": 624}
    env: dict[str, Any] = {
        "cpu_model": "Xeon", "cpu_count": 2, "cpu_freq_mhz": 2200.0, "host": "a",
        "tensorflow_version": "2.16.1", "keras_version": "3.3",
        "tensorflow_build": {"cuda_version": "12.2", "is_cuda_build": True},
        "gpus": [{"name": "/physical_device:GPU:0", "device_name": "Orin"}],
        "jetson": jetson,
    }
    mc = compare.machine_class(env)
    assert mc["class"] == {
        "cpu_model": "Xeon", "tensorflow_version": "2.16.1",
        "tensorflow_build.cuda_version": "12.2", "gpus.0.name": "/physical_device:GPU:0",
        "gpus.0.device_name": "Orin", "jetson.model": "Jetson Orin Nano",
        "jetson.jetpack": "6.2", "jetson.l4t": "36.4.3",
    }
    assert mc["settings"] == {"jetson.nvpmodel": "15W", "jetson.jetson_clocks": "running"}
    other = {**env, "jetson": {**jetson, "nvpmodel": "MAXN", "gpu_freq_mhz": 1020}}
    classes, settings = compare.class_differences([("a", env), ("b", other)])
    assert classes == []
    assert settings == ["jetson.nvpmodel: '15W' in a, 'MAXN' in b"]
    newer = {**env, "jetson": {**jetson, "jetpack": "6.1"}}
    classes, _ = compare.class_differences([("a", env), ("b", newer)])
    assert classes == ["jetson.jetpack: '6.2' in a, '6.1' in b"]


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "message"), [
    ("newer_schema", "schema_version 99 is newer"),
    ("missing_column", "missing columns duration_s"),
    ("bad_status", "status: 'crashed' is not valid"),
    ("not_results", "is not a tfbench results directory"),
    ("bad_json", "not valid JSON"),
])
def test_malformed_results_exit_2(capsys: pytest.CaptureFixture[str], name: str,
                                  message: str) -> None:
    code, out, err = run_cli(capsys, BASES[0], str(DATA / "malformed" / name))
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--threshold", "5"], "--threshold: '5' is not valid"),
    (["--threshold", "abc"], "--threshold: 'abc' is not valid"),
    (["--threshold", "0%"], "--threshold: '0%' is not valid"),
    (["--run-spread=-1%"], "--run-spread: '-1%' is not valid"),
    (["--metric", "fps"], "--metric: 'fps' is not valid; allowed: all, step_s"),
    (["--pair", "a", "b"], "--pair: only with --within"),
])
def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str], args: list[str],
                            message: str) -> None:
    code, _, err = run_cli(capsys, BASES[0], str(DATA / "candidate"), *args)
    assert code == 2
    assert message in err


def test_needs_two_directories(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, BASES[0])
    assert code == 2
    assert "at least two" in err
    code, _, err = run_cli(capsys, BASES[0], str(DATA / "does_not_exist"))
    assert code == 2
    assert "does not exist" in err


def test_parse_fraction() -> None:
    assert compare.parse_fraction("5%", "x") == pytest.approx(0.05)
    assert compare.parse_fraction("0.05", "x") == pytest.approx(0.05)
    assert compare.parse_fraction("0%", "x", allow_zero=True) == 0.0
    assert compare.parse_fraction("12.5%", "x") == pytest.approx(0.125)


# --- within-run paired comparison -----------------------------------------------------------


def test_within_paired_ratio_covers_known_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    # The interleaved run has bs16 at 1.8× the bs8 step, with 5% drift between blocks.
    code, data = as_json(capsys, "--within", str(DATA / "interleaved"),
                         "--pair", "tiny_cnn/cpu/infer/bs8", "tiny_cnn/cpu/infer/bs16")
    (cell,) = data["cells"]
    assert cell["status"] == "compared"
    assert cell["ci_low"] <= 1.8 <= cell["ci_high"]
    assert cell["baseline_runs"] == 6
    assert cell["run_spread_source"] == "paired over 6 interleaved blocks"
    assert cell["verdict"] == "REGRESSION" and code == 1  # B is slower than A beyond δ
    # images_per_s: bs16 processes 16/1.8 images per 8 → 1.11× the throughput; higher is
    # better, so the verdict is never REGRESSION and the exit code is 0.
    code, data = as_json(capsys, "--within", str(DATA / "interleaved"),
                         "--pair", "batch_size=8", "batch_size=16", "--metric", "images_per_s")
    (cell,) = data["cells"]
    assert code == 0
    assert cell["verdict"] in ("IMPROVEMENT", "INCONCLUSIVE")
    assert cell["ci_low"] <= 16 / (1.8 * 8) <= cell["ci_high"]


def test_within_selectors_and_default_pair(capsys: pytest.CaptureFixture[str]) -> None:
    run = str(DATA / "interleaved")
    _, by_id = as_json(capsys, "--within", run, "--pair", "infer-tiny_cnn-cpu-tf-fp32-bs8",
                       "infer-tiny_cnn-cpu-tf-fp32-bs16")
    _, default = as_json(capsys, "--within", run)
    assert by_id["cells"][0]["ratio"] == default["cells"][0]["ratio"]
    code, _, err = run_cli(capsys, "--within", run, "--pair", "model=tiny_cnn", "batch_size=16")
    assert code == 2 and "matches 2 cells" in err
    code, _, err = run_cli(capsys, "--within", run, "--pair", "bs8", "batch_size=16")
    assert code == 2 and "--pair cell in" in err and "infer-tiny_cnn-cpu-tf-fp32-bs8" in err
    code, _, err = run_cli(capsys, "--within", run, "--pair", "colour=red", "batch_size=16")
    assert code == 2 and "--pair selector factor: 'colour' is not valid" in err


def test_within_needs_interleaved_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--within", str(DATA / "not_interleaved"))
    assert code == 2
    assert "tfbench run --interleave K" in err
    code, _, err = run_cli(capsys, "--within", str(DATA / "interleaved"), BASES[0])
    assert code == 2
    code, _, err = run_cli(capsys, "--within", str(DATA / "interleaved"), "--metric",
                           "energy_j_per_image")
    assert code == 2 and "--metric (with --within)" in err


def test_compare_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from harness.cli import main; "
        f"rc = main(['compare', {BASES[0]!r}, {str(DATA / 'candidate')!r}, '--format', 'csv']); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr


# --- defects of issue 14 -------------------------------------------------------------------


def test_within_refuses_blocks_recorded_as_sequential(capsys: pytest.CaptureFixture[str]) -> None:
    # Same steps as the interleaved run, but configs.csv says the blocks ran back to back.
    code, out, err = run_cli(capsys, "--within", str(DATA / "sequential"))
    assert code == 2 and out == ""
    assert "block_order 'sequential'" in err and "--interleave K" in err
    code, _, err = run_cli(capsys, "--within", str(DATA / "sequential"), "--force")
    assert code == 2 and "block_order 'sequential'" in err  # --force never pairs these


def test_within_refuses_unrecorded_block_order_unless_forced(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--within", str(DATA / "order_unrecorded"))
    assert code == 2 and "does not record block_order" in err and "--force" in err
    code, data = as_json(capsys, "--within", str(DATA / "order_unrecorded"), "--force")
    (cell,) = data["cells"]
    assert cell["status"] == "compared"
    assert "block_order not recorded" in cell["note"] and "(--force)" in cell["note"]


def test_empty_status_is_refused_not_counted_as_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, BASES[0], str(DATA / "malformed" / "empty_status"))
    assert code == 2 and out == ""
    assert "configs.csv: line 2, column status: '' is not valid; allowed: ok," in err


def test_bad_step_values_are_not_reported_as_too_few_steps(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import shutil

    cand = tmp_path / "candidate"
    shutil.copytree(DATA / "candidate", cand)
    steps = (cand / "steps.csv").read_text().splitlines()
    header = steps[0].split(",")
    dur, cid, phase = (header.index(c) for c in ("duration_s", "config_id", "phase"))
    for i, line in enumerate(steps[1:], start=1):
        fields = line.split(",")
        if fields[cid] == "infer-tiny_cnn-cpu-tf-fp32-bs8" and fields[phase] == "measure":
            fields[dur] = "0.0"
            steps[i] = ",".join(fields)
            break
    (cand / "steps.csv").write_text("\n".join(steps) + "\n")
    _, data = as_json(capsys, *BASES, str(cand))
    cell = by_label(data)[UNCHANGED]
    assert cell["status"] == "not compared"
    assert "not a finite number > 0" in cell["note"]
    assert "need at least" not in cell["note"]


def test_default_judges_every_metric_with_values_and_fails_on_energy_alone(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Same speed, 25% more energy per image: `compare` (default --metric all) fails the
    gate on energy; judging step_s alone passes."""
    cand = tmp_path / "hungry"
    shutil.copytree(DATA / "candidate_aa", cand)
    configs = pd.read_csv(cand / "configs.csv")
    configs["energy_j_per_image"] *= 1.25
    configs.to_csv(cand / "configs.csv", index=False)
    code = main(["compare", *BASES, str(cand), "--format", "json",
                 "--threshold", "step_s=5%,energy_j_per_image=8%"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    comps = {c["metric"]: c for c in data["comparisons"]}
    assert list(comps) == ["step_s", "images_per_s", "energy_j_per_image"]  # values only
    assert comps["energy_j_per_image"]["threshold"] == pytest.approx(0.08)
    assert not any(c["verdict"] == "REGRESSION" for c in comps["step_s"]["cells"])
    assert any(c["verdict"] == "REGRESSION" for c in comps["energy_j_per_image"]["cells"])
    assert data["regressions"] == sum(
        c["verdict"] == "REGRESSION" for m in comps.values() for c in m["cells"])
    notes = " ".join(comps["step_s"]["notes"])
    assert "host_rss_peak_bytes: not judged" in notes
    assert "device_mem_peak_bytes: not judged" in notes
    assert main(["compare", *BASES, str(cand), "--metric", "step_s"]) == 0
    capsys.readouterr()
    assert main(["compare", *BASES, str(cand)]) == 1
    table = capsys.readouterr().out
    assert "== energy_j_per_image (δ=5%)" in table
    assert table.rstrip().endswith("FAIL: REGRESSION in energy_j_per_image")
