"""Benchmark: the TensorFlow profiler's overhead on a step (traced vs untraced median).

Same process, same model, same step function and the same loop
(`harness.trace.time_traced_steps`, the one ``--trace`` uses): blocks with the
profiler on (``tf.profiler.experimental.start``/``stop`` around the block, a
step marker per step, as in a real trace) alternate with blocks with it off
(A B A B ...), so that machine drift hits both alike. Reports the ratio of
medians (traced / untraced) with a 95% t-interval over the per-block log
ratios (assumes the block ratios are independent and roughly log-normal).
Writing the trace at ``stop`` is outside the timed steps, as in a run.

    python benchmarks/profiler_overhead.py [--model mobilenet_v2] [--mode infer|train]
                                           [--batch-size 8] [--blocks 6] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--mode", default="infer", choices=("infer", "train"))
    parser.add_argument("--base", default="unfrozen", choices=("frozen", "unfrozen"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    from scipy import stats as sps

    from harness.config import Cell, RunSettings
    from harness.data import make_source
    from harness.engines.tf import TensorFlowEngine
    from harness.engines.tfruntime import select_tf_device
    from harness.trace import time_traced_steps
    from harness.workloads import build_workload

    cell = Cell(model=args.model, batch_size=args.batch_size, mode=args.mode,
                base=args.base if args.mode == "train" else "")
    settings = RunSettings()
    select_tf_device("cpu", settings)
    workload = build_workload(cell, settings)
    source = make_source("synthetic", cell.batch_size, cell.input_size, 5, 0)
    engine = TensorFlowEngine(cell, settings, {})
    engine.prepare(workload, source.next(), None)
    batch = source.next()
    for _ in range(3):  # trace the function and warm up
        engine.finish(engine.step(batch))

    def block(logdir: Path | None) -> float:
        marker = None
        if logdir is not None:
            tf.profiler.experimental.start(str(logdir))

            def marker(i: int) -> tf.profiler.experimental.Trace:
                return tf.profiler.experimental.Trace(args.mode, step_num=i, _r=1)
        try:
            kwargs = {"step_context": marker} if marker else {}
            records = time_traced_steps(engine.step, engine.finish, lambda: batch,
                                        steps=args.steps, images_per_step=cell.batch_size,
                                        first_index=0, t0_ns=0, **kwargs)
        finally:
            if logdir is not None:
                tf.profiler.experimental.stop()
        return statistics.median(r.duration_s for r in records)

    traced, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for b in range(args.blocks):
            traced.append(block(Path(tmp) / f"b{b}"))
            plain.append(block(None))
    logs = np.log(np.array(traced) / np.array(plain))
    mean = float(np.mean(logs))
    half = float(sps.t.ppf(0.975, len(logs) - 1) * np.std(logs, ddof=1) / np.sqrt(len(logs)))
    print(json.dumps({
        "model": args.model, "mode": args.mode, "base": cell.base,
        "batch_size": args.batch_size, "blocks": args.blocks, "steps_per_block": args.steps,
        "traced_median_s": statistics.median(traced),
        "untraced_median_s": statistics.median(plain),
        "ratio": float(np.exp(mean)),
        "ratio_ci95": [float(np.exp(mean - half)), float(np.exp(mean + half))],
        "load_average": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()
