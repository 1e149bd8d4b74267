"""No false alarm from a busy machine, for real: two identical runs under load, then compare.

Starts a load (by default a second ``tfbench run`` of a bigger model, looping,
as another engineer's benchmark would; or ``--burn N`` pure-Python CPU burners),
runs the same small matrix twice back to back with ``tfbench run``, stops the
load and runs ``tfbench compare RUN1 RUN2``. The goal: exit code 0, no
REGRESSION, and the output names the load. It prints each run's recorded
``other_cpu_cores`` and the verdict lines::

    python benchmarks/loaded_compare.py --out /tmp/loaded
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import subprocess
import sys
from pathlib import Path

TFBENCH = [sys.executable, "-m", "harness.cli"]
MATRIX = ["--models", "tiny_cnn,tiny_mobilenet_v2", "--modes", "infer", "--batch-sizes", "8",
          "--measured-steps", "40", "--warmup-steps", "3", "--samplers", "psutil", "--no-plots"]
BURN = "while True:\n    pass\n"


def start_load(burn: int, out: Path) -> list[subprocess.Popen[bytes]]:
    if burn:
        return [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(burn)]
    loop = (f"while true; do {' '.join(TFBENCH)} run --models mobilenet_v2 --modes train "
            f"--bases frozen --batch-sizes 8 --measured-steps 200 --samplers none --no-plots "
            f"--out {out / 'load'} >/dev/null 2>&1; done")
    return [subprocess.Popen(["bash", "-c", loop], start_new_session=True)]


def stop_load(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            if isinstance(proc.args, list) and proc.args[0] == "bash":
                os.killpg(proc.pid, 15)  # the loop and the tfbench run it started
            else:
                proc.terminate()
        proc.wait(timeout=60)


def run_once(out: Path) -> Path:
    done = subprocess.run([*TFBENCH, "run", *MATRIX, "--out", str(out)], capture_output=True,
                          text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--burn", type=int, default=0, help="N CPU burners instead of a tfbench run")
    args = p.parse_args()
    load = start_load(args.burn, args.out)
    try:
        runs = [run_once(args.out / "runs"), run_once(args.out / "runs")]
    finally:
        stop_load(load)
    for run in runs:
        with (run / "configs.csv").open() as fh:
            for row in csv.DictReader(fh):
                print(f"{run.name} {row['config_id']}: median {row['step_s_median']} s, "
                      f"other_cpu_cores {row['other_cpu_cores']}, load_avg_1m "
                      f"{row['load_avg_1m']}")
    comp = subprocess.run([*TFBENCH, "compare", str(runs[0]), str(runs[1])], text=True,
                          capture_output=True)
    print(comp.stdout)
    print(f"compare exit code {comp.returncode}")
    return 0 if comp.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
