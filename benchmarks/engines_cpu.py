"""CPU engine benchmark: MobileNetV2 batch-1 inference, speed-ups over ``tf`` fp32.

Engines: tf, xla, litert (fp32, fp16, int8), onnxruntime, keras-jax (jax.jit) and
keras-torch (eager), as listed in ``benchmarks/profiles/engines_cpu.toml``.

Runs ``tfbench run --profile benchmarks/profiles/engines_cpu.toml --interleave K``
(every cell in K rounds, A B C ... A B C ..., one worker process per block), then,
for each cell, the speed-up over the ``tf`` fp32 cell as a paired ratio: per block,
``median(tf step_s) / median(cell step_s)``; the 95% CI is a one-sample t interval
over the blocks' log ratios, so drifts of the machine between rounds cancel.

    python benchmarks/engines_cpu.py --interleave 4 --out results/
    python benchmarks/engines_cpu.py --interleave 3 --engines tf,keras-jax,keras-torch \
        --precisions fp32 --out results/      # a subset of the profile's cells
    python benchmarks/engines_cpu.py --analyze results/<run_id>
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

from harness import stats

PROFILE = Path(__file__).resolve().parent / "profiles" / "engines_cpu.toml"
REFERENCE = ("tf", "fp32")


def paired_speedups(steps: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: median step, speed-up over tf fp32 with its 95% CI, parity.

    The CI is `harness.stats.step_ratio_ci` (the ratio rule the charts and
    ``tfbench compare`` use): paired over the interleaved blocks,
    median(tf fp32) / median(cell) per block, one-sample t on the log ratios.
    """
    measured = steps[steps["phase"] == "measure"]
    by_cell = {k: g for k, g in measured.groupby(["engine", "precision"])}
    ref = by_cell[REFERENCE]
    rows = []
    for (engine, precision), g in by_cell.items():
        r = stats.step_ratio_ci(ref["duration_s"].to_numpy(), [g["duration_s"].to_numpy()],
                                blocks=(ref["block"].to_numpy(), g["block"].to_numpy()))
        cfg = configs[(configs["engine"] == engine) & (configs["precision"] == precision)].iloc[0]
        rows.append({
            "engine": engine, "precision": precision, "blocks": r.blocks,
            "step_ms_median": 1e3 * float(g["duration_s"].median()),
            "speedup": r.ratio, "ci_low": r.low, "ci_high": r.high, "method": r.method,
            "parity_max_rel_err": cfg.get("parity_max_rel_err"),
            "parity_cosine": cfg.get("parity_cosine"),
            "parity_ok": cfg.get("parity_ok"),
            "convert_s": cfg.get("convert_s"),
        })
    return pd.DataFrame(rows).sort_values("speedup", ascending=False)


def render(table: pd.DataFrame) -> str:
    """A Markdown table of the speed-ups."""
    lines = ["| engine | precision | median step (ms) | speed-up vs tf fp32 (95% CI) | "
             "parity max rel err | parity cosine | parity ok | convert (s) |",
             "|---|---|---:|---|---:|---:|---|---:|"]

    def num(v: object, fmt: str) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    for r in table.itertuples():
        lines.append(
            f"| {r.engine} | {r.precision} | {r.step_ms_median:.2f} | "
            f"{r.speedup:.2f}x ({num(r.ci_low, '.2f')}–{num(r.ci_high, '.2f')}) | "
            f"{num(r.parity_max_rel_err, '.2e')} | {num(r.parity_cosine, '.6f')} | "
            f"{'' if pd.isna(r.parity_ok) else r.parity_ok} | {num(r.convert_s, '.1f')} |")
    return "\n".join(lines)


def analyze(run_dir: Path) -> str:
    steps = pd.read_csv(run_dir / "steps.csv")
    configs = pd.read_csv(run_dir / "configs.csv")
    bad = configs[configs["status"] != "ok"]
    notes = [f"- {r.config_id}: {r.status}: {r.reason}" for r in bad.itertuples()]
    ok = configs[configs["status"] == "ok"]
    steps = steps[steps["config_id"].isin(ok["config_id"])]
    return render(paired_speedups(steps, ok)) + ("\n\n" + "\n".join(notes) if notes else "")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interleave", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--analyze", type=Path, metavar="RUN_DIR", help="only analyse a finished run")
    p.add_argument("--engines", metavar="LIST", help="run only these engines (must include tf)")
    p.add_argument("--precisions", metavar="LIST", help="run only these precisions")
    args = p.parse_args(argv)
    run_dir = args.analyze
    if run_dir is None:
        before = set(args.out.glob("*")) if args.out.exists() else set()
        subset = [*(["--engines", args.engines] if args.engines else []),
                  *(["--precisions", args.precisions] if args.precisions else [])]
        subprocess.run([sys.executable, "-m", "harness.cli", "run", "--profile", str(PROFILE),
                        "--interleave", str(args.interleave), "--out", str(args.out),
                        "--no-plots", *subset], check=True)
        (run_dir,) = [d for d in args.out.glob("*") if d.is_dir() and d not in before]
    print(analyze(run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
