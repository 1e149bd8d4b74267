"""The strategy factor: validation, and real mirrored / multi-worker training on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.config import Cell, Profile, RunSettings, expand_matrix
from harness.distributed import free_ports, merge_results, root_cause, tf_config
from harness.errors import UserError
from harness.orchestrator import RunSession
from harness.records import CONFIGS_FILE, STEPS_FILE, read_table

TRAIN = {"model": "tiny_cnn", "mode": "train", "base": "unfrozen", "batch_size": 4}


def test_workers_below_one_is_refused() -> None:
    with pytest.raises(UserError, match="workers: 0"):
        RunSettings(workers=0)


def test_multiworker_inference_is_refused() -> None:
    with pytest.raises(UserError, match="'multiworker' is for mode 'train'"):
        Cell(model="tiny_cnn", mode="infer", strategy="multiworker")


def test_strategy_needs_a_tf_engine() -> None:
    with pytest.raises(UserError, match="runs on engines tf, xla"):
        Cell(model="tiny_cnn", engine="litert", strategy="mirrored")


def test_matrix_runs_none_first_and_drops_multiworker_inference() -> None:
    profile = Profile("p", {"models": ("tiny_cnn",), "modes": ("infer", "train"),
                            "bases": ("frozen",),
                            "strategies": ("multiworker", "none")}, RunSettings())
    ids = [c.config_id for c in expand_matrix(profile)]
    assert ids == ["infer-tiny_cnn-cpu-tf-fp32-bs8", "train-tiny_cnn-cpu-frozen-tf-fp32-bs8",
                   "train-tiny_cnn-cpu-frozen-tf-fp32-bs8-multiworker"]
    only_infer = Profile("p", {"models": ("tiny_cnn",), "strategies": ("multiworker",)},
                         RunSettings())
    with pytest.raises(UserError, match="multiworker"):
        expand_matrix(only_infer)


@pytest.mark.parametrize("args", [["--workers", "0"], ["--strategies", "multiworker"]])
def test_cli_refuses_before_writing(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--models", "tiny_cnn",
                           "--modes", "infer", *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_free_ports_are_distinct_and_tf_config_names_the_task() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3
    config = tf_config([f"127.0.0.1:{p}" for p in ports], 2)
    assert config["task"] == {"type": "worker", "index": 2}
    assert len(config["cluster"]["worker"]) == 3


def test_merge_fails_when_replicas_disagree() -> None:
    ok = {"status": "ok", "steps": [{}, {}], "replica_weights_sha1": ["a"]}
    assert merge_results([ok, {**ok, "replica_weights_sha1": ["a"]}])["status"] == "ok"
    bad = merge_results([ok, {**ok, "replica_weights_sha1": ["b"]}])
    assert bad["status"] == "failed" and "different weights" in bad["reason"]
    worker_failed = merge_results([ok, {"status": "oom", "reason": "ResourceExhausted"}])
    assert worker_failed == {"status": "oom",
                             "reason": "multiworker worker 1: ResourceExhausted"}


def test_root_cause_skips_the_workers_that_only_lost_a_peer() -> None:
    lost = "UnavailableError: Graph execution error: CollectiveReduceV2"
    assert root_cause([(0, lost), (1, "killed by SIGKILL")]) == \
        (1, "killed by SIGKILL (worker 0 then lost its collective peer)")
    assert root_cause([(0, "ValueError: x"), (2, "killed by SIGTERM")]) == (0, "ValueError: x")
    assert root_cause([(0, lost), (1, "CancelledError: y")]) == \
        (0, lost)  # every one lost a peer: the first
    assert merge_results([{"status": "failed", "reason": lost},
                          {"status": "failed", "reason": "killed by SIGKILL"}])["reason"] == \
        "multiworker worker 1: killed by SIGKILL (worker 0 then lost its collective peer)"


def _session(tmp_path: Path, **settings: object) -> RunSession:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    s = RunSettings(warmup_steps=1, measured_steps=4, samplers=("none",), plots=False,
                    timeout_s=300, **settings)  # type: ignore[arg-type]
    return RunSession(run_dir, s, run_id="r", t0_ns=0)


def _descendants_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any(marker in part for part in p.cmdline()):
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
def test_multiworker_two_workers_train_in_sync(tmp_path: Path) -> None:
    session = _session(tmp_path, workers=2)
    cell = Cell(**TRAIN, strategy="multiworker")  # type: ignore[arg-type]
    baseline = session.run_cell(Cell(**TRAIN))  # type: ignore[arg-type]
    outcome = session.run_cell(cell)
    assert baseline.status == "ok"
    assert outcome.status == "ok", outcome.reason
    row = outcome.row
    assert (row["strategy"], row["workers"], row["replicas"], row["global_batch_size"]) == \
        ("multiworker", 2, 2, 8)
    detail = json.loads(row["engine_detail"])
    digests = detail["replica_weights_sha1"]
    assert len(digests) == 2 and digests[0] == digests[1]  # both replicas, same weights
    assert digests[0] != detail["initial_weights_sha1"]  # ... after real updates
    assert detail["worker_steps"] == [5, 5]
    steps = read_table(session.run_dir, STEPS_FILE)
    mine = steps[steps["config_id"] == cell.config_id]
    # one row per global step (the chief's), not one per worker
    assert len(mine) == 1 + 4 and sorted(mine["step"]) == list(range(5))
    assert set(mine["images"]) == {8}
    assert row["images_per_s"] == pytest.approx(8 / row["step_s_median"])
    configs = read_table(session.run_dir, CONFIGS_FILE)
    base_ips = float(configs.loc[configs["strategy"] == "none", "images_per_s"].iloc[0])
    assert row["scaling_efficiency"] == pytest.approx(row["images_per_s"] / (2 * base_ips))
    assert not _descendants_with(str(session.run_dir))


@pytest.mark.slow
def test_multiworker_worker_killed_fails_the_cell_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = _session(tmp_path, workers=2)
    session.worker_env = {"TFBENCH_FAULT": "kill", "TFBENCH_FAULT_TASK": "1"}
    outcome = session.run_cell(Cell(**TRAIN, strategy="multiworker"))  # type: ignore[arg-type]
    assert outcome.status == "failed"
    assert outcome.reason == ("multiworker worker 1 of 2 killed by SIGKILL; "
                              "the other workers were stopped")
    assert not _descendants_with(str(session.run_dir))
    assert read_table(session.run_dir, CONFIGS_FILE)["status"].tolist() == ["failed"]


@pytest.mark.slow
def test_mirrored_over_logical_cpu_devices(tmp_path: Path) -> None:
    session = _session(tmp_path, mirrored_cpu_devices=2)
    outcome = session.run_cell(Cell(**TRAIN, strategy="mirrored"))  # type: ignore[arg-type]
    assert outcome.status == "ok", outcome.reason
    assert (outcome.row["replicas"], outcome.row["global_batch_size"]) == (2, 8)
    detail = json.loads(outcome.row["engine_detail"])
    digests = detail["replica_weights_sha1"]
    assert len(digests) == 2 and len(set(digests)) == 1
    assert digests[0] != detail["initial_weights_sha1"]
    assert os.environ.get("TFBENCH_FAULT") is None
