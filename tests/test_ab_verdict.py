"""Verdicts of an ab run from its files (harness/ab_verdict.py), on seeded simulated blocks.

Each test writes a real results directory (environment.json with its ``ab``
entry, configs.csv and steps.csv with a ``side`` column, blocks.csv) through
the records layer, then reads it back the way `tfbench ab` does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import ab_verdict
from harness.commands.ab import pair_order, schedule
from harness.config import Cell
from harness.errors import UserError
from harness.gates import parse_thresholds
from harness.records import BLOCKS_FILE, CONFIGS_FILE, STEPS_FILE, RunFiles, write_environment

CELL = {"model": "tiny_cnn", "weights": "random", "input_size": 32, "device": "cpu",
        "mode": "infer", "base": "", "engine": "tf", "precision": "fp32", "batch_size": 8,
        "data": "synthetic"}
CID = "infer-tiny_cnn-cpu-tf-fp32-bs8"


def write_ab(root: Path, seed: int, *, slowdown: float = 0.0, pairs: int = 8,
             block_sd: float = 0.015, steps: int = 20, candidate_status: str = "ok",
             rss_growth: float = 0.0, loads: dict[tuple[str, int], float] | None = None,
             disturb: dict[int, float] | None = None) -> Path:
    """An ab run: per block a shared machine factor (both sides of a pair see it) plus
    block noise; the candidate is ``slowdown`` slower and ``rss_growth`` hungrier."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    write_environment(root / "environment.json",
                      {"run_id": root.name, "cpu_count": 2,
                       "ab": {"interleave": pairs, "thresholds": parse_thresholds("5%")}})
    files = RunFiles(root)
    steps_rows: list[dict[str, Any]] = []
    block_rows: list[dict[str, Any]] = []
    t = 0.0
    machine = np.exp(rng.normal(0, 0.10, pairs))  # drift between pairs: cancels in a pair
    for side in ("baseline", "candidate"):
        bad = side == "candidate" and candidate_status != "ok"
        for k in range(pairs):
            level = 0.004 * machine[k] * math.exp(rng.normal(0, block_sd))
            if side == "candidate":
                level *= 1 + slowdown
            if disturb and side == "candidate" and k in disturb:
                level *= disturb[k]
            durs = level * np.exp(rng.normal(0, 0.03, steps))
            if not bad:
                for i, d in enumerate(durs):
                    steps_rows.append({"run_id": root.name, "config_id": CID, "side": side,
                                       "model": "tiny_cnn", "batch_size": 8, "block": k,
                                       "step": i, "phase": "measure", "start_s": t,
                                       "duration_s": float(d), "images": 8})
                    t += float(d)
            rss = 1e9 * (1 + (rss_growth if side == "candidate" else 0)) * (1 + 1e-3 * k)
            block_rows.append({
                "run_id": root.name, "config_id": CID, "side": side, "pair": k, "block": k,
                "order": 2 * k + (side == "candidate"),
                "status": candidate_status if side == "candidate" else "ok",
                "reason": "RuntimeError: injected crash" if bad else "",
                "step_s_median": None if bad else float(np.median(durs)),
                "host_rss_peak_bytes": None if bad else rss,
                "other_cpu_cores": (loads or {}).get((side, k), 0.5)})
    for side in ("baseline", "candidate"):
        bad = side == "candidate" and candidate_status != "ok"
        files.appender(CONFIGS_FILE).append([{
            "run_id": root.name, "config_id": CID, **CELL, "side": side,
            "status": candidate_status if side == "candidate" else "ok",
            "reason": "RuntimeError: injected crash" if bad else "", "other_cpu_cores": 0.5}])
    files.appender(STEPS_FILE).append(steps_rows)
    files.appender(BLOCKS_FILE).append(block_rows)
    return root


def metric(result: ab_verdict.ABResult, name: str) -> ab_verdict.MetricVerdict:
    (cell,) = result.cells
    return next(m for m in cell.metrics if m.metric == name)


def test_pairs_run_in_abba_order() -> None:
    assert [pair_order(k) for k in range(4)] == [(0, 1), (1, 0), (0, 1), (1, 0)]
    a, b = Cell("tiny_cnn"), Cell("tiny_cnn", batch_size=4)
    order = [(k, c.batch_size, s) for k, c, s in schedule([a, b], 2)]
    assert order == [(0, 8, 0), (0, 8, 1), (0, 4, 0), (0, 4, 1),
                     (1, 8, 1), (1, 8, 0), (1, 4, 1), (1, 4, 0)]


def test_a_a_never_regresses_over_seeds(tmp_path: Path) -> None:
    verdicts = [metric(ab_verdict.analyse(write_ab(tmp_path / f"aa{s}", s)), "step_s").verdict
                for s in range(40)]
    assert "REGRESSION" not in verdicts and "IMPROVEMENT" not in verdicts
    assert verdicts.count("NO CHANGE") >= 30


def test_a_15_percent_slowdown_is_a_regression_with_exit_1(tmp_path: Path) -> None:
    result = ab_verdict.analyse(write_ab(tmp_path / "slow", 3, slowdown=0.15))
    step = metric(result, "step_s")
    assert step.verdict == "REGRESSION" and step.pairs == 8
    assert step.ci_low is not None and step.ci_high is not None
    assert step.ci_low <= 1.15 <= step.ci_high and step.ci_low > 1.05
    assert metric(result, "images_per_s").verdict == "REGRESSION"  # lower throughput
    assert len(step.block_ratios) == 8
    assert result.exit_code == 1
    assert "step_s ratio" in ab_verdict.render_table(result)


def test_memory_gate_catches_a_hungrier_candidate_at_equal_speed(tmp_path: Path) -> None:
    result = ab_verdict.analyse(write_ab(tmp_path / "rss", 4, rss_growth=0.15),
                                parse_thresholds("5%,host_rss_peak_bytes=10%"))
    assert metric(result, "host_rss_peak_bytes").verdict == "REGRESSION"
    assert metric(result, "step_s").verdict != "REGRESSION"
    energy = metric(result, "energy_j_per_image")
    assert energy.ratio is None and "no power sensor" in energy.note


def test_a_candidate_that_crashes_in_every_block(tmp_path: Path) -> None:
    result = ab_verdict.analyse(write_ab(tmp_path / "crash", 5, candidate_status="failed"))
    (cell,) = result.cells
    assert cell.candidate_status == "failed" and "injected crash" in cell.reason
    assert {m.verdict for m in cell.metrics} == {"INCONCLUSIVE"}
    assert result.exit_code == 1


def test_one_disturbed_pair_does_not_make_a_regression(tmp_path: Path) -> None:
    # A/A except one candidate block slowed 2.5x by a neighbour using 1.6 cores then.
    loads = {("candidate", 2): 1.6, ("baseline", 2): 0.1}
    root = write_ab(tmp_path / "burst", 6, pairs=4, block_sd=0.005, loads=loads,
                    disturb={2: 2.5})
    unguarded = ab_verdict.stats.verdict(
        ab_verdict.paired_ci(*_blocks(root)), 0.05)
    step = metric(ab_verdict.analyse(root), "step_s")
    assert step.verdict != "REGRESSION"
    assert unguarded in ("REGRESSION", "INCONCLUSIVE")
    if unguarded == "REGRESSION":
        assert "machine busy" in step.note and "pair 3" in step.note


def _blocks(root: Path) -> tuple[list[list[float]], list[list[float]]]:
    import pandas as pd

    steps = pd.read_csv(root / "steps.csv")
    side = {s: [g["duration_s"].tolist() for _, g in steps[steps["side"] == s].groupby("block")]
            for s in ("baseline", "candidate")}
    return side["baseline"], side["candidate"]


def test_not_an_ab_run(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    write_environment(root / "environment.json", {"run_id": "plain"})
    RunFiles(root).appender(CONFIGS_FILE).append([{"run_id": "plain", "config_id": CID,
                                                   **CELL, "status": "ok"}])
    with pytest.raises(UserError, match="not a tfbench ab run"):
        ab_verdict.analyse(root)


def test_plot_and_report_of_an_ab_run(tmp_path: Path) -> None:
    from harness.plots import build_charts, load_runs
    from harness.report import build_report

    root = write_ab(tmp_path / "slow", 3, slowdown=0.15, pairs=4)
    rs = load_runs([root])
    charts = build_charts(rs)
    assert [c.name for c in charts] == ["ab_ratios", "ab_blocks"]
    assert all(c.made for c in charts)
    doc, _, title = build_report(rs)
    assert title.startswith("tfbench ab report")
    tables = [b[1] for b in doc.blocks if b[0] == "table"]
    verdict_rows = tables[-1][1]
    assert verdict_rows[0][:2] == ["tiny_cnn/cpu/infer/bs8", "step_s"]
    assert verdict_rows[0][4] == "REGRESSION"
