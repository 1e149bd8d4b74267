"""Does sampling perturb what it measures? Step time with all samplers on vs off.

Runs ``tfbench run`` (MobileNetV2, batch 1, inference on CPU by default) with
``--samplers none`` and ``--samplers all`` alternately, several pairs, and
reports each pair's ratio of median step times (on / off), the median ratio and
the 95% CI of the ratio from `harness.stats.step_ratio_ci`, paired over the
alternated pairs (a one-sample t interval on the pairs' log ratios of median
step times; it assumes the pairs are independent). The goal is a ratio <= 1.02.
This is a benchmark, not a test: run it on a quiet machine and report the load it
saw (printed before and after)::

    python benchmarks/sampler_overhead.py --pairs 5 --json overhead.json

It also measures the sampler process's own CPU use per wall second (all samplers
on, watching a live process), which a loaded machine disturbs far less than a
step-time ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import stats
from harness.records import load_results


def one_run(samplers: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One ``tfbench run`` with the given ``--samplers``; its cell's median step time."""
    parent = out / f"{len(list(out.iterdir())):02d}-{samplers}"
    cmd = [sys.executable, "-m", "harness.cli", "run", "--models", args.model,
           "--devices", "cpu", "--modes", "infer", "--batch-sizes", str(args.batch_size),
           "--warmup-steps", str(args.warmup_steps), "--measured-steps", str(args.measured_steps),
           "--samplers", samplers, "--out", str(parent), "--no-plots"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"tfbench run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    (run_dir,) = [p for p in parent.iterdir() if p.is_dir()]
    results = load_results(run_dir)
    row = results.configs.iloc[0]
    if row["status"] != "ok":
        raise SystemExit(f"cell not ok: {row['status']}: {row['reason']}")
    steps = results.steps
    durations = steps[steps["phase"] == "measure"]["duration_s"].astype(float).tolist()
    sampling = results.environment.sampling
    return {"samplers": samplers, "step_s_median": float(row["step_s_median"]),
            "step_s_mean": float(row["step_s_mean"]), "wall_s": time.perf_counter() - start,
            "active": list(sampling.active) if sampling else [], "run_dir": str(run_dir),
            "durations_s": durations}


def sampler_cpu_cost(seconds: float) -> dict[str, Any]:
    """CPU time the sampler process itself uses per second of wall time, all samplers on,
    watching a live process. Unlike step-time ratios this barely moves with machine load."""
    import psutil

    from harness.samplers.host import SamplerHost

    with tempfile.TemporaryDirectory(prefix="tfbench-sampler-cpu-") as tmp:
        host = SamplerHost(Path(tmp), "cpu-cost", time.perf_counter_ns(),
                           ["psutil", "jtop", "tegrastats", "nvml"])
        status = host.start()
        assert host.pid is not None
        proc = psutil.Process(host.pid)
        host.set_active("cell", os.getpid())
        before, t_before = proc.cpu_times(), time.perf_counter()
        time.sleep(seconds)
        after, t_after = proc.cpu_times(), time.perf_counter()
        summary = host.stop()
    cpu = (after.user - before.user) + (after.system - before.system)
    return {"wall_s": t_after - t_before, "cpu_s": cpu,
            "cpu_fraction_of_one_core": cpu / (t_after - t_before),
            "active": [n for n, v in status.items() if v == "active"],
            "rows": summary.get("rows")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--measured-steps", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--cpu-seconds", type=float, default=20.0,
                        help="how long to measure the sampler process's own CPU use")
    args = parser.parse_args(argv)
    cost = sampler_cpu_cost(args.cpu_seconds)
    print(f"sampler process: {cost['cpu_s']:.3f} CPU s in {cost['wall_s']:.1f} s wall = "
          f"{cost['cpu_fraction_of_one_core'] * 100:.2f} % of one core "
          f"(active: {cost['active']}, {cost['rows']} rows)", flush=True)
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory(prefix="tfbench-overhead-") as tmp:
        out = Path(tmp)
        for pair in range(args.pairs):
            # Alternate which goes first, so that a drift of the machine hits both alike.
            order = ("none", "all") if pair % 2 == 0 else ("all", "none")
            for samplers in order:
                result = one_run(samplers, args, out)
                result["pair"] = pair
                runs.append(result)
                print(f"pair {pair} samplers={samplers:<4} median step "
                      f"{result['step_s_median'] * 1e3:.3f} ms  active={result['active']}",
                      flush=True)
    load_after = os.getloadavg()
    ratios = []
    on_steps: list[float] = []
    off_steps: list[float] = []
    on_ids: list[int] = []
    off_ids: list[int] = []
    for pair in range(args.pairs):
        on = next(r for r in runs if r["pair"] == pair and r["samplers"] == "all")
        off = next(r for r in runs if r["pair"] == pair and r["samplers"] == "none")
        ratios.append(on["step_s_median"] / off["step_s_median"])
        on_steps += on["durations_s"]
        on_ids += [pair] * len(on["durations_s"])
        off_steps += off["durations_s"]
        off_ids += [pair] * len(off["durations_s"])
    ci = (stats.step_ratio_ci(on_steps, [off_steps], blocks=(on_ids, off_ids))
          if args.pairs >= stats.MIN_PAIRED_BLOCKS else None)
    summary = {
        "model": args.model, "batch_size": args.batch_size, "device": "cpu", "mode": "infer",
        "measured_steps": args.measured_steps, "pairs": args.pairs,
        "ratios_on_over_off": ratios, "median_ratio": statistics.median(ratios) if ratios else None,
        "ratio_ci95": None if ci is None else [ci.low, ci.high],
        "ratio_ci_method": None if ci is None else ci.method,
        "loadavg_before": load_before, "loadavg_after": load_after,
        "cpu_count": os.cpu_count(), "runs": runs, "sampler_cpu": cost,
    }
    if ratios:
        print(f"ratios (on/off): {', '.join(f'{r:.4f}' for r in ratios)}")
        print(f"median ratio: {summary['median_ratio']:.4f} (goal <= 1.02)")
    if ci is not None:
        print(f"ratio on/off: {ci.ratio:.4f} (95% CI {ci.low:.4f}–{ci.high:.4f}; {ci.method}, "
              "t interval over the alternated pairs' log ratios, pairs assumed independent)")
    print(f"load average before {load_before}, after {load_after}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
