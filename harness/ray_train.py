"""``strategy=multiworker`` cells on a Ray cluster, through Ray Train's ``TensorflowTrainer``.

On a fleet run (``--ray-address``) a multiworker cell's ``workers`` processes are
Ray Train workers, one per fleet node: ``resources_per_worker={"tfbench": 1}``
(the cell holds each of its nodes the way a plain cell holds one, so no other
cell disturbs it) and one label selector per worker on ``ray.io/node-id`` (the
nodes the driver's scheduler gave the cell). Ray Train's TensorFlow backend picks
each worker's address and sets ``TF_CONFIG`` (task index = world rank; rank 0 is
the chief). Each Ray Train worker then runs the cell on its node exactly as a
plain fleet cell runs (`harness.fleet.run_on_node`: the same worker process,
timeout and status mapping, the node's own samplers), passing Ray Train's
``TF_CONFIG`` to the worker process, whose multiworker code (harness.strategy) is
the same as on loopback. Each Ray Train worker hands its reply to a collector
actor; the driver merges the replies block by block with the loopback launcher's
rule (`harness.distributed.merge_results`: the chief's timed steps, ``failed``
when the replicas' weights differ).

A worker whose block fails raises, so Ray Train stops the whole worker group (the
others would wait forever in the next collective; their worker processes die with
their Ray actors) and the cell is ``failed`` with that worker's reason.

Ray Train sets ``TF_USE_LEGACY_KERAS=1`` in its workers (for ``tf.keras`` 2); the
tfbench worker process runs Keras 3 as everywhere else, so it is not passed on.
Ray is imported inside the functions (extra ``ray``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from harness.distributed import TASK_ENV

NODE_ID_LABEL = "ray.io/node-id"  # the label Ray gives every node


class Collector:
    """A Ray actor: each Ray Train worker's reply, by world rank."""

    def __init__(self) -> None:
        self.replies: dict[int, dict[str, Any]] = {}

    def put(self, rank: int, reply: dict[str, Any]) -> None:
        self.replies[rank] = reply

    def get(self) -> dict[int, dict[str, Any]]:
        return self.replies


def first_failure(reply: dict[str, Any]) -> str:
    """Why a Ray Train worker's reply is not a success ('' when every block is ok)."""
    if reply.get("error"):
        return str(reply["error"])
    for block in reply.get("blocks", []):
        if block.get("status") != "ok":
            return f"{block.get('status')}: {block.get('reason', '')}"
    return ""


def train_loop(config: dict[str, Any]) -> None:
    """Runs in each Ray Train worker: the cell on this node, under Ray Train's TF_CONFIG."""
    import ray
    from ray import train

    from harness.fleet import run_on_node

    rank = train.get_context().get_world_rank()
    node_id = ray.get_runtime_context().get_node_id()
    place = config["placements"].get(node_id) or {}
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    payload = dict(config["payload"])
    payload.update(host=place.get("host", node_id[:8]), t0_ns=place.get("t0_ns", 0),
                   worker_env={**payload.get("worker_env", {}),
                               "TF_CONFIG": os.environ["TF_CONFIG"], TASK_ENV: str(rank)})
    try:
        reply = run_on_node(payload)
    except Exception as exc:  # the task-raise fault, a broken node: this worker's reason
        reply = {"error": f"Ray Train worker {rank} raised {type(exc).__name__}: {exc}"}
    reply.update(rank=rank, node_id=node_id, host=payload["host"],
                 tf_config=os.environ["TF_CONFIG"])
    ray.get(config["collector"].put.remote(rank, reply))
    why = first_failure(reply)
    if why:  # stop the other workers now (they would block in the next collective)
        raise RuntimeError(f"multiworker worker {rank} on {payload['host']}: {why}")


def run_multiworker(payload: dict[str, Any], node_ids: list[str],
                    placements: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Runs as a Ray task near the driver: one cell as a TensorflowTrainer run with one
    worker per node of ``node_ids``; every worker's reply (by rank) and Ray Train's error."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    from harness.fleet import RESOURCE

    collector: Any = ray.remote(num_cpus=0)(Collector).remote()
    storage = tempfile.mkdtemp(prefix=f"tfbench-raytrain-{payload['run_id']}-")
    # label_selector: Ray Train v2 (the default trainer API of Ray 2.60, which this needs)
    placement: dict[str, Any] = {"label_selector": [{NODE_ID_LABEL: n} for n in node_ids]}
    scaling = ScalingConfig(num_workers=len(node_ids),
                            resources_per_worker={"CPU": 0, RESOURCE: 1}, **placement)
    trainer = TensorflowTrainer(
        train_loop,
        train_loop_config={"payload": payload, "placements": placements,
                           "collector": collector},
        scaling_config=scaling,
        run_config=RunConfig(name=f"tfbench-{payload['run_id']}-{os.getpid()}",
                             storage_path=storage,
                             failure_config=FailureConfig(max_failures=0)))
    error = ""
    try:
        trainer.fit()
    except Exception as exc:  # TrainingFailedError and the like: the replies say why
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    replies = ray.get(collector.get.remote())
    ray.kill(collector)
    return {"replies": [replies[r] for r in sorted(replies)], "error": error,
            "workers": len(node_ids), "ray_version": ray.__version__}


def failure_reason(failures: list[tuple[int, str]], hosts: Mapping[int, str]) -> tuple[int, str]:
    """The rank that caused a multiworker failure (`root_cause`) and the cell's reason,
    naming it and its host."""
    from harness.distributed import root_cause

    rank, why = root_cause(failures)
    return rank, f"multiworker worker {rank} on {hosts[rank]}: {why}"


def merge_blocks(per_rank: list[list[Any]], hosts: list[str]) -> list[Any]:
    """One `BlockOutcome` per block from every rank's: the chief's, with the merged result
    (`merge_results`), or the failure that caused the others (`root_cause`) with which
    worker it was."""
    from harness.distributed import merge_results

    merged = []
    for parts in zip(*per_rank, strict=True):
        chief = parts[0]
        failures = [(i, p.reason) for i, p in enumerate(parts) if p.status != "ok"]
        if failures:
            bad, why = failure_reason(failures, dict(enumerate(hosts)))
            merged.append(replace(chief, status=parts[bad].status, result={}, reason=why))
            continue
        result = merge_results([p.result for p in parts])
        detail = dict(result.get("engine_detail") or {})
        detail.update(launcher="ray-train TensorflowTrainer", worker_hosts=list(hosts))
        result["engine_detail"] = detail
        merged.append(replace(chief, status=result.get("status", "failed"),
                              reason=result.get("reason", ""), result=result))
    return merged
