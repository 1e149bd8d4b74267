"""The report's checks on golden runs edited here: best batch size, implausible results
(stated only when the CI excludes the plausible side), missed confidence targets, input
wait and unavailable pieces in the first lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness import report_checks as checks
from harness.cli import main
from harness.runset import cell_table, load_runs
from harness.speedups import Ratio

NANO = Path(__file__).resolve().parent / "data" / "results" / "orin_nano"


def _copy(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(NANO, run)
    return run


def _scale_steps(run: Path, config_id: str, factor: float) -> None:
    steps = pd.read_csv(run / "steps.csv")
    steps.loc[steps["config_id"] == config_id, "duration_s"] *= factor
    steps.to_csv(run / "steps.csv", index=False)


def _edit_configs(run: Path, config_id: str, **values: object) -> None:
    configs = pd.read_csv(run / "configs.csv", dtype=str, keep_default_na=False)
    for key, value in values.items():
        configs.loc[configs["config_id"] == config_id, key] = value
    configs.to_csv(run / "configs.csv", index=False)


def _report(run: Path) -> str:
    out = run / "report.md"
    assert main(["report", str(run), "--out", str(out)]) == 0
    return out.read_text()


def test_golden_run_has_a_best_batch_size_and_nothing_implausible() -> None:
    rs = load_runs([NANO])
    table = cell_table(rs)
    (best,) = checks.best_batch_sizes(rs, table)
    assert best.startswith("Best batch size for mobilenet_v2 · gpu · infer · tf fp32: 32 by "
                           "throughput (328 images/s")
    assert "and 32 by energy per image (38.1 mJ/image (low confidence" in best
    assert checks.plausibility(rs, table, []) == []


def test_train_faster_than_inference_is_flagged_only_beyond_its_ci(tmp_path: Path) -> None:
    run = _copy(tmp_path)
    # inception_v3 CPU: infer 925 ms, train frozen 1,340 ms; make training 0.5x as long
    _scale_steps(run, "train-inception_v3-cpu-frozen-tf-fp32-bs8", 0.5)
    md = _report(run)
    line = next(ln for ln in md.splitlines() if ln.startswith("- Implausible: inception_v3"))
    assert "train frozen" in line and "the time of its inference steps" in line
    assert "expect about 1.0×" in line
    # within noise (a 2% difference the CI cannot separate from 1): not flagged
    run2 = tmp_path / "r2"
    shutil.copytree(NANO, run2)
    steps = pd.read_csv(run2 / "steps.csv")
    infer = steps["config_id"] == "infer-inception_v3-cpu-tf-fp32-bs8"
    train = steps["config_id"] == "train-inception_v3-cpu-frozen-tf-fp32-bs8"
    steps.loc[train, "duration_s"] *= (steps.loc[infer & (steps["phase"] == "measure"),
                                                 "duration_s"].median() * 0.98
                                       / steps.loc[train & (steps["phase"] == "measure"),
                                                   "duration_s"].median())
    steps.to_csv(run2 / "steps.csv", index=False)
    rs = load_runs([run2])
    assert checks.train_faster_than_inference(rs, cell_table(rs)) == []


def test_throughput_falling_with_batch_size_is_flagged(tmp_path: Path) -> None:
    run = _copy(tmp_path)
    _scale_steps(run, "infer-mobilenet_v2-gpu-tf-fp32-bs32", 3.0)
    md = _report(run)
    assert "- Implausible: throughput of mobilenet_v2 · gpu · infer · tf fp32 · bs32 falls " \
           "to 109 images/s from 295 at batch 16" in md
    assert "Best batch size for mobilenet_v2 · gpu · infer · tf fp32: 16 by throughput" in md


def test_a_speed_up_far_from_the_stored_baseline_is_flagged() -> None:
    rows = pd.DataFrame([{"key": "a", "model": "mobilenet_v2", "device": "cpu",
                          "mode": "infer", "batch_size": 1, "engine": "onnxruntime",
                          "precision": "fp32", "cell": "ort", "run": "r"}])

    def ratio(value: float, low: float, high: float) -> Ratio:
        return Ratio("engine over tf fp32", "onnxruntime fp32", "tf fp32", "", "r",
                     value, low, high, "m", "a", "b")

    rs = type("RS", (), {"several": False})()
    far = checks.far_from_baseline(rs, rows, [ratio(1.9, 1.5, 2.4)])  # type: ignore[arg-type]
    assert len(far) == 1 and "against 5.61× in docs/engines.md" in far[0]
    assert checks.far_from_baseline(rs, rows, [ratio(3.0, 2.5, 3.6)]) == []  # type: ignore[arg-type]


def test_a_missed_ci_target_is_in_the_notes_and_findings(tmp_path: Path) -> None:
    run = _copy(tmp_path)
    _edit_configs(run, "infer-mobilenet_v2-cpu-tf-fp32-bs8", ci_target_met="false",
                  target_ci_rel="0.01")
    md = _report(run)
    assert "### Confidence target missed" in md
    line = next(ln for ln in md.splitlines()
                if ln.startswith("- mobilenet_v2 · cpu · infer · tf fp32 · bs8: CI "))
    assert "missed the ±1% target after" in line and "load figures not recorded" in line
    row = next(ln for ln in md.splitlines()
               if ln.startswith("| mobilenet_v2 · cpu · infer · tf fp32 · bs8 |"))
    assert "**CI target missed** (±1%; see findings)" in row


def test_input_wait_of_an_image_folder_cell_is_shown(tmp_path: Path) -> None:
    run = _copy(tmp_path)
    _edit_configs(run, "infer-mobilenet_v2-cpu-tf-fp32-bs8", data="/data/images",
                  input_wait_s_median="0.3")
    md = _report(run)
    assert "input wait (ms, share)" in md
    assert "waits 300 ms for input per step against 209 ms of compute (59% of the time): " \
           "input-bound" in md


def test_unavailable_pieces_are_in_the_first_lines(tmp_path: Path) -> None:
    run = _copy(tmp_path)
    env = json.loads((run / "environment.json").read_text())
    env["unavailable"] = [
        {"kind": "sampler", "name": "jtop", "reason": "no jtop service", "cells": None},
        {"kind": "engine", "name": "litert", "reason": "not installed", "cells": 1}]
    (run / "environment.json").write_text(json.dumps(env))
    md = _report(run)
    head = md[:md.index("Made from")]  # right under the title
    assert "- sampler jtop unavailable: no jtop service" in head
    assert "- engine litert unavailable (1 cell skipped): not installed" in head


@pytest.mark.parametrize("status", ["unavailable: no NVML"])
def test_older_runs_list_their_unavailable_samplers(tmp_path: Path, status: str) -> None:
    run = _copy(tmp_path)
    env = json.loads((run / "environment.json").read_text())
    env["samplers"] = {"tegrastats": "active", "nvml": status}
    (run / "environment.json").write_text(json.dumps(env))
    rs = load_runs([run])
    assert checks.unavailable_lines(rs) == [f"sampler nvml unavailable: {status}"]
