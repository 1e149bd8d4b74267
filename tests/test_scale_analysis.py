"""Strategy columns, scaling efficiency, fleet runs split by host, the scaling chart —
from files written by the harness's own writers (no TensorFlow, no Ray)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import Cell, RunSettings
from harness.envmodel import FleetHost
from harness.orchestrator import BlockOutcome, RunSession
from harness.records import host_results, load_results, write_environment
from harness.runset import load_runs

TRAIN = {"model": "tiny_cnn", "mode": "train", "base": "unfrozen", "batch_size": 4}


def _steps(duration: float, images: int, n: int = 12) -> list[dict[str, object]]:
    return [{"step": i, "phase": "measure", "start_s": i * duration, "duration_s": duration,
             "input_wait_s": 0.0, "images": images, "loss": 1.0} for i in range(n)]


def _result(duration: float, replicas: int | None = None) -> dict[str, object]:
    out: dict[str, object] = {"first_step_s": 0.1, "steps": _steps(duration, 4 * (replicas or 1))}
    if replicas:
        out.update(replicas=replicas, strategy_workers=replicas, global_batch_size=4 * replicas)
    return out


def _run(root: Path, hosts: dict[str, str] | None = None) -> tuple[RunSession, Path]:
    root.mkdir()
    env: dict[str, object] = {"run_id": "r1", "host": "driver", "clock_origin_ns": 0}
    if hosts:
        env["fleet_hosts"] = [FleetHost(h, nid, f"environments/{h}.json", 5, 0.01, 0.002,
                                        {"board": h}).to_json() for h, nid in hosts.items()]
        (root / "environments").mkdir()
        for h in hosts:
            write_environment(root / "environments" / f"{h}.json",
                              {"run_id": "r1", "host": h, "machine": "aarch64",
                               "cpu_model": f"cpu-{h}", "cpu_count": 6})
    write_environment(root / "environment.json", env)
    return RunSession(root, RunSettings(samplers=("none",)), run_id="r1", t0_ns=0), root


def test_scaling_efficiency_against_the_single_replica_cell(tmp_path: Path) -> None:
    session, _ = _run(tmp_path / "run")
    base = session.record(Cell(**TRAIN), [BlockOutcome("ok", "", _result(0.010))])  # type: ignore[arg-type]
    # 2 replicas, 8 images a step in 0.016 s: 500 img/s over 2 x 400 img/s
    mirrored = session.record(Cell(**TRAIN, strategy="mirrored"),  # type: ignore[arg-type]
                              [BlockOutcome("ok", "", _result(0.016, replicas=2))])
    assert base.row["scaling_efficiency"] == 1.0
    assert (base.row["workers"], base.row["replicas"], base.row["global_batch_size"]) == (1, 1, 4)
    assert mirrored.row["images_per_s"] == pytest.approx(8 / 0.016)
    assert mirrored.row["scaling_efficiency"] == pytest.approx(500 / (2 * 400))
    assert mirrored.row["host"] == session.host


def test_without_its_single_replica_cell_efficiency_is_not_recorded(tmp_path: Path) -> None:
    session, _ = _run(tmp_path / "run")
    alone = session.record(Cell(**TRAIN, strategy="multiworker"),  # type: ignore[arg-type]
                           [BlockOutcome("ok", "", _result(0.016, replicas=2))])
    assert alone.row["scaling_efficiency"] is None
    failed = session.record(Cell(**{**TRAIN, "batch_size": 8}, strategy="mirrored"),  # type: ignore[arg-type]
                            [BlockOutcome("failed", "boom")])
    assert (failed.row["replicas"], failed.row["workers"]) == (None, None)


def _fleet_run(tmp_path: Path) -> Path:
    session, root = _run(tmp_path / "fleet", {"nano": "n" * 8, "nx": "x" * 8})
    for host, nid, bs, d in (("nano", "n" * 8, 4, 0.02), ("nx", "x" * 8, 8, 0.01)):
        session.record(Cell(model="tiny_cnn", batch_size=bs),
                       [BlockOutcome("ok", "", {"first_step_s": 0.1,
                                                "steps": _steps(d, bs)}, host=host,
                                     node_id=nid)])
    return root


def test_a_fleet_run_reads_as_one_entry_per_host(tmp_path: Path) -> None:
    root = _fleet_run(tmp_path)
    parts = host_results(load_results(root))
    assert [p.environment.host for p in parts] == ["nano", "nx"]
    assert [p.environment.cpu_model for p in parts] == ["cpu-nano", "cpu-nx"]
    assert [list(p.configs["batch_size"]) for p in parts] == [[4], [8]]
    assert [set(p.steps["node_id"]) for p in parts] == [{"n" * 8}, {"x" * 8}]
    rs = load_runs([root])
    assert rs.labels == ["nano", "nx"] and rs.hue == "run"


def test_compare_refuses_a_fleet_spanning_machine_classes(tmp_path: Path) -> None:
    root = _fleet_run(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(root), str(root)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "machine class differs" in proc.stderr and "[nano]" in proc.stderr


def test_scaling_chart_is_made_only_with_a_baseline(tmp_path: Path) -> None:
    from harness.charts_scale import scaling_chart

    session, root = _run(tmp_path / "run")
    session.record(Cell(**TRAIN, strategy="mirrored"),  # type: ignore[arg-type]
                   [BlockOutcome("ok", "", _result(0.016, replicas=2))])
    chart = scaling_chart(load_runs([root]))
    assert chart.figure is None and "single-replica" in chart.reason
    session.record(Cell(**{**TRAIN, "batch_size": 8}),  # type: ignore[arg-type]
                   [BlockOutcome("ok", "", _result(0.010))])
    session.record(Cell(**{**TRAIN, "batch_size": 8}, strategy="mirrored"),  # type: ignore[arg-type]
                   [BlockOutcome("ok", "", _result(0.016, replicas=2))])
    assert scaling_chart(load_runs([root])).figure is not None
    assert json.loads((root / "environment.json").read_text())["run_id"] == "r1"
