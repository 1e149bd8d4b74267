"""Sensitivity of `tfbench ab`: false alarms on A/A, detection of injected slowdowns.

Two parts:

* **Real runs** (``--real N``): ``tfbench ab`` N times with the same environment
  on both sides (A/A), and N times with the candidate slowed by a busy-wait of
  +3%, +5% and +10% of each step (``TFBENCH_SLOWDOWN``, harness/slowdown.py).
  Each run's verdict and its paired block log-ratios are kept; the spread of
  those log-ratios (per pair) is what the simulation is calibrated on.
* **Seeded simulations** (always): K block pairs whose paired log-ratio has a
  spread ``sd_pair`` (a shared machine factor per pair cancels; what is left is
  block noise), run through the same CI (`harness.ab_verdict.paired_ci`) and
  verdict rule (`harness.stats.fdr_verdicts`) as `tfbench ab`, for several K
  and ``sd_pair`` values, thousands of seeds each.

"Flagged" means the gate does not let the change through: REGRESSION or
INCONCLUSIVE. A true change of exactly δ sits on the band edge, so with
δ = 5% a +5% change is a REGRESSION at most about half the time whatever K;
the table therefore also shows δ = 2%::

    python benchmarks/ab_power.py --sims 4000 --json power.json
    python benchmarks/ab_power.py --real-reps 0=20,0.05=15,0.03=5,0.1=5 --interleave 4 \\
        --model tiny_mobilenet_v2 --sims 300 --jsonl real.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import stats
from harness.ab_verdict import paired_ci

SLOWDOWNS = (0.0, 0.03, 0.05, 0.10)


def simulate(seed: int, pairs: int, sd_pair: float, slowdown: float, steps: int = 20,
             step_sd: float = 0.03) -> stats.RatioCI:
    """One simulated ab cell: K pairs, each pair's two blocks share a machine factor."""
    rng = np.random.default_rng(seed)
    machine = np.exp(rng.normal(0, 0.10, pairs))
    a_blocks, b_blocks = [], []
    for k in range(pairs):
        noise = rng.normal(0, sd_pair / math.sqrt(2), 2)
        a = 0.01 * machine[k] * math.exp(noise[0]) * np.exp(rng.normal(0, step_sd, steps))
        b = 0.01 * machine[k] * math.exp(noise[1]) * (1 + slowdown) * np.exp(
            rng.normal(0, step_sd, steps))
        a_blocks.append(a)
        b_blocks.append(b)
    return paired_ci(a_blocks, b_blocks)


def rates(cis: list[stats.RatioCI], threshold: float) -> dict[str, float]:
    verdicts = [stats.fdr_verdicts([ci], threshold)[0][0] for ci in cis]
    n = len(verdicts)
    return {"regression": verdicts.count("REGRESSION") / n,
            "flagged": sum(v in ("REGRESSION", "INCONCLUSIVE") for v in verdicts) / n,
            "no_change": verdicts.count("NO CHANGE") / n}


def simulations(n: int, ks: list[int], sds: list[float]) -> list[dict[str, Any]]:
    rows = []
    for sd in sds:
        for k in ks:
            for slow in SLOWDOWNS:
                cis = [simulate(seed, k, sd, slow) for seed in range(n)]
                for threshold in (0.05, 0.02):
                    rows.append({"sd_pair": sd, "pairs": k, "slowdown": slow,
                                 "threshold": threshold, "seeds": n, **rates(cis, threshold)})
    return rows


def parse_reps(text: str, default: int) -> dict[float, int]:
    """``"0=20,0.05=20"`` -> repeats per slowdown (the rest get ``default``)."""
    reps = dict.fromkeys(SLOWDOWNS, default)
    for item in filter(None, text.split(",")):
        slow, _, n = item.partition("=")
        reps[float(slow)] = int(n)
    return reps


def real_runs(reps: dict[float, int], interleave: int, model: str, batch: int, steps: int,
              out: Path, jsonl: Path | None, pause: Path | None = None) -> list[dict[str, Any]]:
    """``tfbench ab`` runs, repeat-major (every slowdown once, then again) so that a
    run cut short still has balanced conditions; each row is appended to ``jsonl``, and
    rows already there count (a restarted benchmark goes on where it stopped). While
    ``pause`` exists no new run starts (so other work can use the machine between runs)."""
    rows = []
    if jsonl and jsonl.exists():
        rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    for rep in range(max(reps.values())):
        for slow in SLOWDOWNS:
            if rep >= reps.get(slow, 0) or sum(r["slowdown"] == slow for r in rows) > rep:
                continue
            while pause is not None and pause.exists():
                time.sleep(5)
            cmd = [sys.executable, "-m", "harness.cli", "ab", "--models", model, "--modes",
                   "infer", "--batch-sizes", str(batch), "--measured-steps", str(steps),
                   "--warmup-steps", "3", "--samplers", "none", "--no-plots",
                   "--interleave", str(interleave), "--out", str(out), "--format", "json"]
            if slow:
                cmd += ["--candidate-env", f"TFBENCH_SLOWDOWN={slow}"]
            load_before = os.getloadavg()[0]
            started = time.monotonic()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            data = json.loads(proc.stdout[:proc.stdout.rindex("}") + 1])
            step = next(m for m in data["cells"][0]["metrics"] if m["metric"] == "step_s")
            logs = [math.log(r) for r in step["block_ratios"]]
            rows.append({"rep": rep, "slowdown": slow, "verdict": step["verdict"],
                         "ratio": step["ratio"], "ci_low": step["ci_low"],
                         "ci_high": step["ci_high"], "exit": proc.returncode,
                         "sd_pair": float(np.std(logs, ddof=1)) if len(logs) > 1 else None,
                         "other_cores": data["cells"][0]["other_cores"],
                         "load_avg_before": load_before,
                         "wall_s": round(time.monotonic() - started, 1)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if jsonl:
                with jsonl.open("a") as f:
                    f.write(json.dumps(rows[-1]) + "\n")
    return rows


def real_table(rows: list[dict[str, Any]]) -> str:
    """Per slowdown: runs, REGRESSION / flagged counts, median ratio, median pair spread."""
    out = ["| candidate | runs | REGRESSION (exit 1) | flagged (not NO CHANGE) | "
           "median ratio | median sd of pair log-ratio |", "|---|---|---|---|---|---|"]
    for slow in SLOWDOWNS:
        got = [r for r in rows if r["slowdown"] == slow]
        if not got:
            continue
        reg = sum(r["verdict"] == "REGRESSION" for r in got)
        flagged = sum(r["verdict"] != "NO CHANGE" for r in got)
        sds = [r["sd_pair"] for r in got if r["sd_pair"] is not None]
        name = "A/A" if not slow else f"+{slow:.0%}"
        out.append(f"| {name} | {len(got)} | {reg}/{len(got)} | {flagged}/{len(got)} | "
                   f"{float(np.median([r['ratio'] for r in got])):.3f} | "
                   f"{float(np.median(sds)) if sds else float('nan'):.1%} |")
    return "\n".join(out)


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| sd of pair log-ratio | K pairs | δ | A/A false REGRESSION | +3% flagged | "
           "+5% flagged (REGRESSION) | +10% flagged (REGRESSION) |",
           "|---|---|---|---|---|---|---|"]
    keys = sorted({(r["sd_pair"], r["pairs"], r["threshold"]) for r in rows},
                  key=lambda x: (x[0], x[1], -x[2]))
    for sd, k, thr in keys:
        cell = {r["slowdown"]: r for r in rows
                if (r["sd_pair"], r["pairs"], r["threshold"]) == (sd, k, thr)}
        out.append(f"| {sd:.1%} | {k} | {thr:.0%} | {cell[0.0]['regression']:.1%} | "
                   f"{cell[0.03]['flagged']:.0%} | {cell[0.05]['flagged']:.0%} "
                   f"({cell[0.05]['regression']:.0%}) | {cell[0.10]['flagged']:.0%} "
                   f"({cell[0.10]['regression']:.0%}) |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=2000, help="seeds per simulated setting")
    p.add_argument("--pairs", default="4,8,12,16", help="K values to simulate")
    p.add_argument("--sd-pair", default="0.01,0.02,0.04,0.08",
                   help="spreads of the paired block log-ratio to simulate")
    p.add_argument("--real", type=int, default=0, help="real ab runs per slowdown")
    p.add_argument("--real-reps", default="",
                   help="repeats per slowdown overriding --real, e.g. 0=20,0.05=20,0.03=5")
    p.add_argument("--jsonl", type=Path, help="append each real run's row here as it ends")
    p.add_argument("--pause-file", type=Path,
                   help="no new real run starts while this file exists")
    p.add_argument("--interleave", type=int, default=8)
    p.add_argument("--model", default="tiny_mobilenet_v2")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--measured-steps", type=int, default=20)
    p.add_argument("--json", type=Path, help="write every row here")
    args = p.parse_args()
    result: dict[str, Any] = {"load_avg_start": os.getloadavg()}
    reps = parse_reps(args.real_reps, args.real)
    if any(reps.values()):
        with tempfile.TemporaryDirectory(prefix="ab-power-") as tmp:
            result["real"] = real_runs(reps, args.interleave, args.model, args.batch_size,
                                       args.measured_steps, Path(tmp), args.jsonl,
                                       args.pause_file)
        print(real_table(result["real"]))
    sims = simulations(args.sims, [int(k) for k in args.pairs.split(",")],
                       [float(s) for s in args.sd_pair.split(",")])
    result["simulations"] = sims
    result["load_avg_end"] = os.getloadavg()
    print(table(sims))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
