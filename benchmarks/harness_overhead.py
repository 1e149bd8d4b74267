"""Benchmark: the harness's own timing overhead vs a bare perf_counter_ns loop.

Same process, same model, same step function and the same synchronisation
(``.numpy()`` on the output): the harness's `time_steps` and a bare loop are
alternated in blocks (A B A B ...) so that machine drift hits both alike.
Reports the ratio of medians (harness / bare) with a 95% CI over the
per-block ratios.

    python benchmarks/harness_overhead.py [--model mobilenet_v2] [--blocks 10] [--steps 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    import numpy as np
    from scipy import stats as sps

    from harness.config import Cell, RunSettings
    from harness.data import make_source
    from harness.engines.tf import TensorFlowEngine
    from harness.engines.tfruntime import select_tf_device
    from harness.timing import time_steps
    from harness.workloads import build_workload

    cell = Cell(model=args.model, batch_size=args.batch_size)
    settings = RunSettings()
    select_tf_device("cpu", settings)
    workload = build_workload(cell, settings)
    source = make_source("synthetic", cell.batch_size, cell.input_size, 5, 0)
    engine = TensorFlowEngine(cell, settings, {})
    engine.prepare(workload, source.next(), None)
    batch = source.next()
    for _ in range(20):  # trace and warm up both paths
        engine.finish(engine.step(batch))

    def harness_block() -> float:
        result = time_steps(engine.step, engine.finish, lambda: batch, images_per_step=1,
                            warmup_steps=2, measured_steps=args.steps)
        return statistics.median(s.duration_s for s in result.measured)

    def bare_block() -> float:
        durations = []
        for _ in range(args.steps + 2):
            t0 = time.perf_counter_ns()
            engine.finish(engine.step(batch))
            durations.append((time.perf_counter_ns() - t0) / 1e9)
        return statistics.median(durations[2:])

    harness, bare = [], []
    for _ in range(args.blocks):
        harness.append(harness_block())
        bare.append(bare_block())
    logs = np.log(np.array(harness) / np.array(bare))
    mean = float(np.mean(logs))
    half = float(sps.t.ppf(0.975, len(logs) - 1) * np.std(logs, ddof=1) / np.sqrt(len(logs)))
    report = {
        "model": args.model, "batch_size": args.batch_size, "blocks": args.blocks,
        "steps_per_block": args.steps,
        "harness_median_s": statistics.median(harness), "bare_median_s": statistics.median(bare),
        "ratio": float(np.exp(mean)), "ratio_ci95": [float(np.exp(mean - half)),
                                                     float(np.exp(mean + half))],
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
