"""Benchmark: multi-worker training step time on CPU for 1 and 2 workers (loopback).

Runs the same tiny training cell as ``strategy none`` (no tf.distribute), and as
``strategy multiworker`` with 1 and with 2 worker processes on loopback (each with its
own TF_CONFIG, harness/distributed.py), through `RunSession.run_cell` as `tfbench run`
does. Reports per configuration the median global step time, images/s (global batch =
batch x replicas) and the scaling efficiency against the ``none`` cell, with the
median's 95% CI (order statistics; assumes independent steps, see harness/stats.py).

    python benchmarks/multiworker.py [--model tiny_cnn] [--batch-size 16] [--steps 40]

With ``--ray-train`` the 2-worker cell also runs on a local two-node Ray cluster (Ray's
``ray.cluster_utils.Cluster``, ``tfbench`` 1 and one CPU per node) through Ray Train's
TensorflowTrainer (harness/ray_train.py), as a fleet run does, with its wall time per
cell next to the loopback launcher's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny_cnn")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--ray-train", action="store_true",
                        help="also run the 2-worker cell through Ray Train on a local cluster")
    args = parser.parse_args()

    from harness.config import Cell, RunSettings
    from harness.orchestrator import RunSession

    base = Cell(model=args.model, mode="train", base="unfrozen", batch_size=args.batch_size)
    settings = RunSettings(warmup_steps=3, measured_steps=args.steps, samplers=("none",),
                           plots=False, timeout_s=900)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, cell, workers in (("none", base, 1),
                                     ("multiworker x1", replace(base, strategy="multiworker"), 1),
                                     ("multiworker x2", replace(base, strategy="multiworker"), 2)):
            run_dir = Path(tmp) / label.replace(" ", "_")
            run_dir.mkdir()
            session = RunSession(run_dir, replace(settings, workers=workers), run_id="bench",
                                 t0_ns=0)
            started = time.perf_counter()
            out = session.run_cell(cell)
            wall = time.perf_counter() - started
            session.close()
            rows.append(_row(label, out, wall))
        if args.ray_train:
            rows.append(_ray_train_row(replace(base, strategy="multiworker"),
                                       replace(settings, workers=2), Path(tmp)))
    base_ips = rows[0]["images_per_s"]
    for row in rows:
        if row["images_per_s"] and base_ips:
            row["scaling_efficiency"] = row["images_per_s"] / (row["replicas"] * base_ips)
    print(json.dumps(rows, indent=2))


def _row(label: str, out: Any, wall: float) -> dict[str, Any]:
    r = out.row
    return {"config": label, "status": out.status, "reason": out.reason,
            "replicas": r.get("replicas"), "global_batch_size": r.get("global_batch_size"),
            "step_s_median": r.get("step_s_median"),
            "step_s_ci95": [r.get("step_s_median_ci_low"), r.get("step_s_median_ci_high")],
            "images_per_s": r.get("images_per_s"), "cell_wall_s": round(wall, 1)}


def _ray_train_row(cell: Any, settings: Any, tmp: Path) -> dict[str, Any]:
    """The 2-worker cell as a fleet run on a head + second node (Ray Train)."""
    import ray
    from ray.cluster_utils import Cluster

    from harness.fleet import Fleet, nodes_from
    from harness.orchestrator import run_cells
    from harness.records import load_results

    node: dict[str, Any] = {"num_cpus": 1, "resources": {"tfbench": 1},
                            "object_store_memory": 80 << 20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        started = time.perf_counter()
        run_dir = run_cells([cell], settings, tmp / "ray", fleet=Fleet(nodes_from(ray.nodes())),
                            environment=lambda run_id, t0: {
                                "run_id": run_id, "clock_origin_ns": t0,
                                "host": socket.gethostname()})
        wall = time.perf_counter() - started
    finally:
        ray.shutdown()
        cluster.shutdown()
    row = load_results(run_dir).configs.iloc[0]
    return {"config": "multiworker x2 (Ray Train, 2 nodes)", "status": row["status"],
            "reason": row["reason"], "replicas": int(row["replicas"]),
            "global_batch_size": int(row["global_batch_size"]),
            "step_s_median": float(row["step_s_median"]),
            "step_s_ci95": [float(row["step_s_median_ci_low"]),
                            float(row["step_s_median_ci_high"])],
            "images_per_s": float(row["images_per_s"]), "cell_wall_s": round(wall, 1)}


if __name__ == "__main__":
    main()
