"""Fleet runs on a real local Ray cluster: a head and a second node on this machine.

The cluster (Ray's own `ray.cluster_utils.Cluster`, ``tfbench`` resource 1 and one
CPU per node, small object store, no dashboard) starts once for the module. The
node-selection logic is tested on `ray.nodes()`-shaped tables without Ray.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from processes import wait_until

from harness.config import Cell, RunSettings
from harness.errors import UserError
from harness.fleet import (
    LOST_REASON,
    Fleet,
    FleetNode,
    check_reachable,
    nodes_from,
    select_nodes,
)
from harness.orchestrator import run_cells
from harness.records import load_environment, load_results


def _table(*nodes: tuple[str, str, dict[str, str], float]) -> list[dict[str, Any]]:
    return [{"NodeID": nid, "Alive": True, "NodeManagerHostname": host, "Labels": labels,
             "Resources": {"CPU": 1.0, "tfbench": res}} for nid, host, labels, res in nodes]


def test_nodes_offering_tfbench_get_unique_host_labels() -> None:
    table = _table(("bb" * 10, "lab", {"board": "orin_nx"}, 1.0),
                   ("aa" * 10, "lab", {"board": "orin_nano"}, 1.0),
                   ("cc" * 10, "desk", {}, 1.0), ("dd" * 10, "other", {}, 0.0))
    nodes = nodes_from(table)
    assert [n.host for n in nodes] == ["lab-aaaaaaaa", "lab-bbbbbbbb", "desk"]
    assert [n.host for n in select_nodes(nodes, ["board=orin_nx", "desk"])] == \
        ["lab-bbbbbbbb", "desk"]
    assert select_nodes(nodes, []) == nodes


def test_selector_matching_nothing_names_the_nodes() -> None:
    nodes = [FleetNode("aa", "lab", "lab", {"board": "orin_nano"})]
    with pytest.raises(UserError, match=r"nodes: 'board=agx' matches no node.*orin_nano"):
        select_nodes(nodes, ["board=agx"])


def test_no_node_offering_tfbench_is_refused() -> None:
    with pytest.raises(UserError, match="no alive node offers the resource 'tfbench'"):
        select_nodes(nodes_from(_table(("aa", "lab", {}, 0.0))), [])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cells_are_failed_when_no_selected_node_is_left(tmp_path: Path) -> None:
    from harness.orchestrator import RunSession

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    session = RunSession(run_dir, RunSettings(samplers=("none",)), run_id="r", t0_ns=0)
    session.remote_samples = True

    class Quiet:
        def started(self, label: str) -> None: ...
        def finished(self, label: str, status: str, detail: str) -> None: ...

    outcomes = Fleet([]).run_schedule(session, _cells(1, 2), Quiet())  # type: ignore[arg-type]
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert {o.reason for o in outcomes} == {f"{LOST_REASON}: no selected node is alive"}


def test_multiworker_needing_more_nodes_than_selected_is_refused() -> None:
    fleet = Fleet([FleetNode("aa", "lab", "lab")])
    fleet.check(_cells(1), RunSettings(workers=2))  # plain cells take one node each
    with pytest.raises(UserError, match=r"workers: 2 exceeds the 1 selected fleet node"):
        fleet.check([MULTIWORKER], RunSettings(workers=2))


def test_unreachable_address_is_refused() -> None:
    with pytest.raises(UserError, match=r"ray-address: .127.0.0.1:\d+. is not reachable"):
        check_reachable(f"127.0.0.1:{_closed_port()}", timeout_s=2)


def _cli(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", "--models", "tiny_cnn",
                           "--out", str(out), *args],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.parametrize("args", [["--ray-address", "127.0.0.1:{port}"], ["--nodes", "board=x"]])
def test_cli_bad_fleet_input_exits_2_before_writing(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "results"
    proc = _cli(out, *[a.format(port=_closed_port()) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists()


# -- a real cluster --------------------------------------------------------------------
NODE_ARGS = {"num_cpus": 1, "resources": {"tfbench": 1},
             "object_store_memory": 80 * 1024 * 1024}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        **NODE_ARGS, "labels": {"board": "head"}, "include_dashboard": False})
    c.add_node(**NODE_ARGS, labels={"board": "second"})
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _nodes() -> list[FleetNode]:
    import ray

    return nodes_from(ray.nodes())


def _settings() -> RunSettings:
    return RunSettings(warmup_steps=1, measured_steps=3, samplers=("psutil",),
                       sample_interval_s=0.05, plots=False, timeout_s=300)


def _env(run_id: str, t0: int) -> dict[str, Any]:
    return {"run_id": run_id, "clock_origin_ns": t0, "host": socket.gethostname()}


MULTIWORKER = Cell(model="tiny_cnn", mode="train", base="unfrozen", batch_size=4,
                   strategy="multiworker")


def _cells(*batch_sizes: int) -> list[Cell]:
    return [Cell(model="tiny_cnn", batch_size=b) for b in batch_sizes]


def _workers_of(run_id: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if f"tfbench-{run_id}-" in cmd and "harness.worker" in cmd:
            found.append(p)
    return found


@pytest.mark.ray
@pytest.mark.slow
def test_cells_over_two_nodes_merge_into_one_directory(cluster: Any, tmp_path: Path) -> None:
    nodes = select_nodes(_nodes(), ["board=head", "board=second"])
    assert len(nodes) == 2
    raising = Cell(model="tiny_cnn", batch_size=3)
    fleet = Fleet(nodes, per_cell_env={raising.config_id: {"TFBENCH_FAULT": "task-raise"}})
    run_dir = run_cells([*_cells(1, 2), raising], _settings(), tmp_path, environment=_env,
                        fleet=fleet)
    results = load_results(run_dir)
    every = results.configs.set_index("config_id")
    assert every.loc[raising.config_id, "status"] == "failed"
    assert "raised RuntimeError: injected" in every.loc[raising.config_id, "reason"]
    configs = results.configs[results.configs["config_id"] != raising.config_id]
    assert set(configs["status"]) == {"ok"}
    # each idle node got one cell first: rows from both nodes in the one directory
    assert sorted(configs["node_id"]) == sorted(n.node_id for n in nodes)
    assert set(configs["host"]) == {n.host for n in nodes}
    assert set(results.steps["host"]) == {n.host for n in nodes}
    sampled = results.samples.dropna(subset=["config_id"])
    assert set(sampled["host"]) == {n.host for n in nodes}  # each node's own samplers
    env = load_environment(run_dir)
    assert {h.host for h in env.fleet_hosts} == {n.host for n in nodes}
    for h in env.fleet_hosts:
        host_env = json.loads((run_dir / h.environment_file).read_text())
        assert host_env["host"] == h.host and host_env["clock_origin_ns"] == h.clock_origin_ns
        assert host_env["samplers"] == {"psutil": "active"}  # the node's own samplers
        assert h.clock_rtt_s > 0
    assert {p.name for p in (run_dir / "logs").iterdir()} == {
        f"{c.config_id}-b0.log" for c in _cells(1, 2)}


@pytest.mark.ray
@pytest.mark.slow
def test_node_killed_mid_cell_fails_that_cell_and_resume_completes_it(
        cluster: Any, tmp_path: Path) -> None:
    second = next(n for n in _nodes() if n.labels.get("board") == "second")
    head = next(n for n in _nodes() if n.labels.get("board") == "head")
    victim, other = _cells(4, 8)
    # the second node (first in the list) gets the victim, which hangs until the node dies
    fleet = Fleet([second, head], per_cell_env={victim.config_id: {"TFBENCH_FAULT": "hang"}})
    box: dict[str, Path] = {}
    runner = threading.Thread(target=lambda: box.update(dir=run_cells(
        [victim, other], _settings(), tmp_path, environment=_env, fleet=fleet)))
    runner.start()
    # the run directory (not the orchestrator's short-lived write probe, a dot file)
    assert wait_until(lambda: any(p.is_dir() for p in tmp_path.iterdir()), 120)
    run_id = next(p for p in tmp_path.iterdir() if p.is_dir()).name
    assert wait_until(lambda: bool(_workers_of(run_id)), 240), "victim never started"
    node = next(n for n in cluster.worker_nodes if n.node_id == second.node_id)
    cluster.remove_node(node, allow_graceful=False)
    runner.join(timeout=300)
    assert not runner.is_alive()
    run_dir = box["dir"]
    configs = load_results(run_dir).configs.set_index("config_id")
    assert configs.loc[other.config_id, "status"] == "ok"
    assert configs.loc[other.config_id, "host"] == head.host
    assert configs.loc[victim.config_id, "status"] == "failed"
    reason = configs.loc[victim.config_id, "reason"]
    assert reason.startswith(f"{LOST_REASON}: node {second.host}") and "lost mid-cell" in reason
    assert wait_until(lambda: not _workers_of(run_id), 60), "orphan worker left behind"

    cluster.add_node(**NODE_ARGS, labels={"board": "second"})
    # the new node (Ray's node table may still list the removed one for a while)
    again = [n for n in _nodes() if n.labels.get("board") == "second"
             and n.node_id != second.node_id]
    run_cells([victim, other], _settings(), tmp_path, environment=_env, resume=run_dir,
              fleet=Fleet(again))
    results = load_results(run_dir)
    configs = results.configs.set_index("config_id")
    assert sorted(configs.index) == sorted([victim.config_id, other.config_id])  # one row each
    assert configs.loc[victim.config_id, "status"] == "ok"
    assert configs.loc[victim.config_id, "node_id"] == again[0].node_id
    assert configs.loc[other.config_id, "node_id"] == head.node_id  # not rerun
    assert len(load_environment(run_dir).fleet_hosts) == 3


@pytest.mark.ray
@pytest.mark.slow
def test_cli_on_a_live_cluster(cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = _cli(out, "--ray-address", cluster.address, "--nodes", "board=agx")
    assert proc.returncode == 2, proc.stderr
    assert "nodes: 'board=agx' matches no node offering 'tfbench'" in proc.stderr
    assert not out.exists()
    head = next(n for n in _nodes() if n.labels.get("board") == "head")
    proc = _cli(out, "--ray-address", cluster.address, "--nodes", "board=head",
                "--modes", "infer", "--batch-sizes", "2", "--warmup-steps", "1",
                "--measured-steps", "3",
                "--samplers", "psutil")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip())
    results = load_results(run_dir)
    assert list(results.configs["host"]) == [head.host]
    assert list(results.configs["status"]) == ["ok"]
    assert [h.host for h in results.environment.fleet_hosts] == [head.host]
    assert results.environment.command_line[:2] == ("tfbench", "run")
    assert (run_dir / "environments" / f"{head.host}.json").is_file()
    assert (run_dir / "charts" / "index.md").is_file()


@pytest.mark.ray
@pytest.mark.slow
def test_multiworker_cells_run_through_ray_train_over_both_nodes(
        cluster: Any, tmp_path: Path) -> None:
    """Two multiworker cells on the two nodes through Ray Train: in the first, worker 1 is
    SIGKILLed at its first measured step (the cell fails, Ray Train stops the chief, no
    worker is left); the second then trains in sync on the same nodes."""
    nodes = select_nodes(_nodes(), ["board=head", "board=second"])
    killed = replace(MULTIWORKER, batch_size=2)
    fleet = Fleet(nodes, per_cell_env={killed.config_id: {
        "TFBENCH_FAULT": "kill", "TFBENCH_FAULT_TASK": "1"}})
    settings = replace(_settings(), workers=2, measured_steps=4)
    run_dir = run_cells([killed, MULTIWORKER], settings, tmp_path, environment=_env,
                        fleet=fleet)
    results = load_results(run_dir)
    configs = results.configs.set_index("config_id")
    bad = configs.loc[killed.config_id]
    assert bad["status"] == "failed"
    assert bad["reason"].startswith("multiworker worker 1 on ") and "SIGKILL" in bad["reason"]
    assert wait_until(lambda: not _workers_of(str(bad["run_id"])), 60), "orphan worker left"
    row = configs.loc[MULTIWORKER.config_id]
    assert row["status"] == "ok", row["reason"]
    assert (row["strategy"], row["workers"], row["replicas"], row["global_batch_size"]) == \
        ("multiworker", 2, 2, 8)
    detail = json.loads(row["engine_detail"])
    assert detail["launcher"] == "ray-train TensorflowTrainer"
    assert sorted(detail["worker_hosts"]) == sorted(n.host for n in nodes)  # one per node
    digests = detail["replica_weights_sha1"]
    assert len(digests) == 2 and digests[0] == digests[1]  # real synchronous training
    assert digests[0] != detail["initial_weights_sha1"]
    assert detail["worker_steps"] == [5, 5]
    steps = results.steps[results.steps["config_id"] == MULTIWORKER.config_id]
    assert len(steps) == 1 + 4 and set(steps["host"]) == {row["host"]}  # the chief's, once
    samples = results.samples[results.samples["config_id"] == MULTIWORKER.config_id]
    assert set(samples["host"]) == {n.host for n in nodes}  # each node's own samplers
    assert {f"{MULTIWORKER.config_id}-b0.log", f"{MULTIWORKER.config_id}-b0.w1.log"} <= {
        p.name for p in (run_dir / "logs").iterdir()}
