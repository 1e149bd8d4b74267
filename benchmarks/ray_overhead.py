"""Benchmark: the scheduling overhead of a cell run as a Ray task vs the same cell run locally.

Starts a one-node local Ray cluster (Ray's own `ray.cluster_utils.Cluster`, resource
``tfbench`` 1, one CPU, small object store, no dashboard) and runs the same tiny cell
K times each way, alternating (local, Ray, local, Ray, ...) so machine drift hits both:

* local: `RunSession.run_block` — one worker process, as `tfbench run` does;
* Ray: `harness.fleet.run_on_node` as a Ray task pinned to the node (the worker
  process and the node's samplers inside it), its result fetched by the driver.

Reports each way's median wall time per cell, the difference (the fleet's overhead in
seconds) and the ratio of medians with the 95% CI of `stats.step_ratio_ci` (paired over
the alternated pairs: assumes the pairs' log ratios are independent).

    python benchmarks/ray_overhead.py [--pairs 6] [--model tiny_cnn]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--model", default="tiny_cnn")
    parser.add_argument("--samplers", default="psutil")
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from harness import stats
    from harness.config import Cell, RunSettings
    from harness.fleet import Fleet, nodes_from, run_on_node
    from harness.orchestrator import RunSession
    from harness.worker import settings_to_dict

    cell = Cell(model=args.model, batch_size=1)
    settings = RunSettings(warmup_steps=2, measured_steps=10, samplers=(args.samplers,),
                           plots=False)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"tfbench": 1}, "include_dashboard": False,
        "object_store_memory": 80 * 1024 * 1024})
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        node = nodes_from(ray.nodes())[0]
        fleet = Fleet([node])
        payload = {"cell": cell.factors(), "settings": settings_to_dict(settings),
                   "run_id": "bench", "t0_ns": time.perf_counter_ns(), "host": node.host,
                   "worker_env": {}}
        task = fleet._pinned(node, run_on_node, resources={"tfbench": 1})
        ray.get(task.remote(payload))  # the Ray worker process starts once, as in a run
        local, remote = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.pairs):
                run_dir = Path(tmp) / f"r{i}"
                run_dir.mkdir()
                session = RunSession(run_dir, settings, run_id="bench", t0_ns=0)
                session.start_samplers()
                start = time.perf_counter()
                outcome = session.run_block(cell)
                session.stop_samplers()
                local.append(time.perf_counter() - start)
                session.close()
                start = time.perf_counter()
                reply = ray.get(task.remote(payload))
                remote.append(time.perf_counter() - start)
                assert outcome.status == "ok" and reply["blocks"][0]["status"] == "ok"
        ids = list(range(args.pairs))
        ratio = stats.step_ratio_ci(remote, [local], blocks=(ids, ids))
        med_l, med_r = statistics.median(local), statistics.median(remote)
        print(json.dumps({
            "cell": cell.config_id, "pairs": args.pairs, "samplers": args.samplers,
            "local_cell_s": local, "ray_cell_s": remote,
            "local_median_s": med_l, "ray_median_s": med_r,
            "overhead_s": med_r - med_l,
            "ratio_ray_over_local": ratio.ratio, "ci95": [ratio.ci.low, ratio.ci.high],
            "method": ratio.method,
        }, indent=2))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
