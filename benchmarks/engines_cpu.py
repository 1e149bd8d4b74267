"""CPU engine benchmark: MobileNetV2 batch-1 inference, speed-ups over ``tf`` fp32.

Runs ``tfbench run --profile benchmarks/profiles/engines_cpu.toml --interleave K``
(every cell in K rounds, A B C ... A B C ..., one worker process per block), then,
for each cell, the speed-up over the ``tf`` fp32 cell as a paired ratio: per block,
``median(tf step_s) / median(cell step_s)``; the 95% CI is a one-sample t interval
over the blocks' log ratios, so drifts of the machine between rounds cancel.

    python benchmarks/engines_cpu.py --interleave 4 --out results/
    python benchmarks/engines_cpu.py --analyze results/<run_id>
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
from scipy import stats as sstats

PROFILE = Path(__file__).resolve().parent / "profiles" / "engines_cpu.toml"
REFERENCE = ("tf", "fp32")


def paired_speedups(steps: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: median step, speed-up over tf fp32 with a paired 95% CI, parity."""
    measured = steps[steps["phase"] == "measure"]
    medians = (measured.groupby(["engine", "precision", "block"])["duration_s"].median()
               .unstack("block"))
    ref = medians.loc[REFERENCE]
    rows = []
    for (engine, precision), blocks in medians.iterrows():
        logs = [math.log(ref[b] / blocks[b]) for b in blocks.index
                if pd.notna(blocks[b]) and pd.notna(ref[b])]
        n = len(logs)
        mean = sum(logs) / n
        if n > 1:
            sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
            half = float(sstats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        else:
            half = float("nan")
        cfg = configs[(configs["engine"] == engine) & (configs["precision"] == precision)].iloc[0]
        rows.append({
            "engine": engine, "precision": precision, "blocks": n,
            "step_ms_median": 1e3 * measured[(measured["engine"] == engine)
                                             & (measured["precision"] == precision)]
            ["duration_s"].median(),
            "speedup": math.exp(mean),
            "ci_low": math.exp(mean - half), "ci_high": math.exp(mean + half),
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
    args = p.parse_args(argv)
    run_dir = args.analyze
    if run_dir is None:
        before = set(args.out.glob("*")) if args.out.exists() else set()
        subprocess.run([sys.executable, "-m", "harness.cli", "run", "--profile", str(PROFILE),
                        "--interleave", str(args.interleave), "--out", str(args.out),
                        "--no-plots"], check=True)
        (run_dir,) = [d for d in args.out.glob("*") if d.is_dir() and d not in before]
    print(analyze(run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
