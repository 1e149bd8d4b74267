"""MNIST models on real handwritten digits: does mnist_cnn beat mnist_dense?

Writes scikit-learn's 1,797 digits (8x8, resized to 28x28) as mnist.npz into a
private Keras cache, runs the ``mnist_digits`` profile once per seed, and prints
each model's final and best validation accuracy per seed plus the mean.

    PYTHONPATH=$PWD python benchmarks/accuracy_mnist.py --seeds 0,1,2 --out /tmp/mnist-runs
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", type=Path, default=Path("/tmp/tfbench-mnist-digits"))
    p.add_argument("--models", default="mnist_dense,mnist_cnn,mnist_mlp2")
    p.add_argument("--epochs", default="", help="override the profile's epochs")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from harness.mnist import write_digits_as_mnist

    keras_home = args.out / "keras_home"
    write_digits_as_mnist(keras_home / "datasets" / "mnist.npz")
    env = {**os.environ, "KERAS_HOME": str(keras_home), "PYTHONPATH": str(ROOT)}
    table: dict[str, dict[int, tuple[float, float]]] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", "--profile", "mnist_digits",
             "--models", args.models, "--seed", str(seed), "--out", str(args.out / "runs"),
             *(["--epochs", args.epochs] if args.epochs else [])],
            env=env, check=True, capture_output=True, text=True)
        run_dir = Path(proc.stdout.strip().splitlines()[-1])
        for row in csv.DictReader((run_dir / "configs.csv").open()):
            if row["status"] != "ok":
                print(f"seed {seed} {row['model']}: {row['status']} {row['reason']}")
                continue
            table.setdefault(row["model"], {})[seed] = (float(row["val_accuracy_final"]),
                                                        float(row["val_accuracy_best"]))
        print(f"seed {seed}: {run_dir}", flush=True)
    print("\n| model | " + " | ".join(f"seed {s} final (best)" for s in
                                       sorted(next(iter(table.values())))) + " | mean final |")
    for model, per_seed in table.items():
        cells = [f"{f:.4f} ({b:.4f})" for _, (f, b) in sorted(per_seed.items())]
        mean = statistics.mean(f for f, _ in per_seed.values())
        print(f"| {model} | " + " | ".join(cells) + f" | {mean:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
