"""Write the small results directories under tests/data/compare/ (deterministic).

Synthetic runs with known truths, written through the real contract writers
(harness.records): five baseline repeats with a 1% run-to-run factor and
autocorrelated steps, a candidate whose cells are shifted by none / +25% /
−20%, an A/A candidate, a run from another machine class, an interleaved run
of two cells with a known ratio, and malformed directories. Run it again
after a contract change:

    python tests/data/make_compare_data.py
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import stats
from harness.config import Cell
from harness.records import (
    CONFIGS_COLUMNS,
    CONFIGS_FILE,
    STEPS_FILE,
    CsvAppender,
    RunFiles,
    write_environment,
)

OUT = Path(__file__).resolve().parent / "compare"
WARMUP, MEASURED = 3, 40
# block_order is written by the orchestrator (runside); until its column is in the tuple
# the test data carries it after the contract's columns, where the orchestrator will put it.
COLUMNS = CONFIGS_COLUMNS if "block_order" in CONFIGS_COLUMNS else (*CONFIGS_COLUMNS,
                                                                       "block_order")
RUN_SPREAD = 0.01  # log-sd of the run-to-run machine factor
STEP_SD, PHI = 0.04, 0.6  # AR(1) step noise (log scale)

ENV = {
    "host": "bench-01", "os": "Linux 6.8.0", "machine": "x86_64", "python": "3.11.9",
    "cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz", "cpu_count": 2, "cpu_freq_mhz": 2200.0,
    "tensorflow_version": "2.21.0", "keras_version": "3.15.0",
    "tensorflow_build": {"is_cuda_build": False, "cuda_version": None, "cudnn_version": None},
    "gpus": [], "jetson": None, "tfbench_version": "0.1.0", "profile": "quick",
}


@dataclass(frozen=True)
class Spec:
    """A cell of a synthetic run: level (s per step), status and reason."""

    cell: Cell
    step_s: float
    status: str = "ok"
    reason: str = ""
    energy_j_per_step: float | None = None


UNCHANGED = Cell("tiny_cnn", mode="infer", batch_size=8)
SLOWER = Cell("tiny_cnn", mode="train", base="frozen", batch_size=8)
FASTER = Cell("tiny_mobilenet_v2", mode="infer", batch_size=8)
FAILS = Cell("tiny_mobilenet_v2", mode="train", base="unfrozen", batch_size=8)
BASE_ONLY = Cell("tiny_cnn", mode="infer", batch_size=16)
CAND_ONLY = Cell("tiny_cnn", mode="infer", engine="xla", batch_size=8)

LEVELS = {UNCHANGED: 0.010, SLOWER: 0.030, FASTER: 0.020, FAILS: 0.050, BASE_ONLY: 0.018,
          CAND_ONLY: 0.008}
ENERGY = {UNCHANGED: 0.20, SLOWER: 0.60, FASTER: 0.40}  # J per step at the level above


def ar1(rng: np.random.Generator, n: int) -> np.ndarray:
    """Autocorrelated log-scale step noise with marginal sd STEP_SD."""
    e = np.empty(n)
    e[0] = rng.normal(0, STEP_SD)
    innov = STEP_SD * math.sqrt(1 - PHI ** 2)
    for i in range(1, n):
        e[i] = PHI * e[i - 1] + rng.normal(0, innov)
    return np.exp(e)


def write_run(name: str, specs: Sequence[Spec], rng: np.random.Generator,
              env: dict[str, object] | None = None, blocks: int = 1,
              block_drift: float = 0.0, block_order: str | None = None) -> Path:
    """One results directory; with blocks > 1 the cells alternate A B A B ...

    ``block_order`` is what configs.csv records (default: ``interleaved`` for
    several blocks, ``sequential`` for one; ``""`` leaves it unrecorded, as in
    files written before the column existed). The steps are the same either
    way: the files, not the timing, are what the reader must go by.
    """
    if block_order is None:
        block_order = "interleaved" if blocks > 1 else "sequential"
    root = OUT / name
    root.mkdir(parents=True)
    files = RunFiles(root)
    run_id = "20250101-000000-" + name.replace("/", "-")
    write_environment(files.environment, {**ENV, **(env or {}), "run_id": run_id})
    factor = math.exp(rng.normal(0, RUN_SPREAD))
    per_block = max(MEASURED // blocks, 1)
    t = 0.0
    steps: dict[str, list[dict[str, object]]] = {s.cell.config_id: [] for s in specs}
    for b in range(blocks):
        drift = math.exp(rng.normal(0, block_drift)) if block_drift else 1.0
        for spec in specs:
            if spec.status != "ok":
                continue
            n_measure = per_block if blocks > 1 else MEASURED
            noise = ar1(rng, WARMUP + n_measure)
            for i in range(WARMUP + n_measure):
                d = spec.step_s * factor * drift * float(noise[i]) * (3.0 if i == 0 else 1.0)
                c = spec.cell
                steps[c.config_id].append({
                    "run_id": run_id, "config_id": c.config_id, "model": c.model,
                    "device": c.device, "mode": c.mode, "base": c.base, "engine": c.engine,
                    "precision": c.precision, "batch_size": c.batch_size, "block": b,
                    "step": i, "phase": "warmup" if i < WARMUP else "measure",
                    "start_s": round(t, 6), "duration_s": round(d, 7), "input_wait_s": 0.0,
                    "images": c.batch_size, "loss": 1.5 if c.mode == "train" else None,
                })
                t += d
    configs = []
    for spec in specs:
        c = spec.cell
        row: dict[str, object] = {"run_id": run_id, "config_id": c.config_id, **c.factors(),
                                  "status": spec.status, "reason": spec.reason,
                                  "warmup_steps": WARMUP, "measured_steps": MEASURED,
                                  "blocks": blocks, "block_order": block_order}
        measured = [float(s["duration_s"]) for s in steps[c.config_id]  # type: ignore[arg-type]
                    if s["phase"] == "measure"]
        if spec.status == "ok":
            summ = stats.summarize(measured)
            row.update({
                "first_step_s": steps[c.config_id][0]["duration_s"],
                "step_s_median": summ["median"], "step_s_p90": summ["p90"],
                "step_s_p99": summ["p99"], "step_s_mean": summ["mean"],
                "step_s_std": summ["std"], "step_s_median_ci_low": summ["median_ci_low"],
                "step_s_median_ci_high": summ["median_ci_high"],
                "images_per_s": c.batch_size / summ["median"],
            })
            if spec.energy_j_per_step is not None:
                row["energy_j_per_image"] = spec.energy_j_per_step * factor / c.batch_size
                row["energy_confidence"] = "ok"
        configs.append(row)
        files.appender(STEPS_FILE).append(steps[c.config_id])
    CsvAppender(root / CONFIGS_FILE, COLUMNS).append(configs)
    return root


def baseline_specs(shift: dict[Cell, float] | None = None,
                   cells: Sequence[Cell] = (UNCHANGED, SLOWER, FASTER, FAILS, BASE_ONLY),
                   failed: Sequence[Cell] = ()) -> list[Spec]:
    shift = shift or {}
    out = []
    for c in cells:
        f = shift.get(c, 1.0)
        energy = ENERGY.get(c)
        out.append(Spec(c, LEVELS[c] * f,
                        status="failed" if c in failed else "ok",
                        reason="worker exited with code -9 (killed)" if c in failed else "",
                        energy_j_per_step=None if energy is None else energy * f))
    return out


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rng = np.random.default_rng(20250101)
    for k in range(1, 6):
        write_run(f"base_r{k}", baseline_specs(), rng)
    shifted = {SLOWER: 1.25, FASTER: 0.80}
    cand_cells = (UNCHANGED, SLOWER, FASTER, FAILS, CAND_ONLY)
    write_run("candidate", baseline_specs(shifted, cand_cells, failed=(FAILS,)), rng)
    write_run("candidate_aa", baseline_specs(), rng)
    write_run("other_machine", baseline_specs(shifted, cand_cells, failed=(FAILS,)), rng,
              env={"cpu_model": "AMD EPYC 7B13", "tensorflow_version": "2.20.0",
                   "cpu_freq_mhz": 3100.0})
    write_run("volatile_only", baseline_specs(), rng,
              env={"cpu_freq_mhz": 1800.0, "host": "bench-02"})
    a, b = Cell("tiny_cnn", batch_size=8), Cell("tiny_cnn", batch_size=16)
    il = [Spec(a, 0.010), Spec(b, 0.018)]
    write_run("interleaved", il, rng, blocks=6, block_drift=0.05)
    write_run("not_interleaved", il, rng)

    bad = OUT / "malformed"
    one_cell = baseline_specs(cells=(UNCHANGED,))
    newer = write_run("malformed/newer_schema", one_cell, rng)
    env = json.loads((newer / "environment.json").read_text())
    env["schema_version"] = 99
    (newer / "environment.json").write_text(json.dumps(env, indent=2, sort_keys=True) + "\n")
    missing = write_run("malformed/missing_column", one_cell, rng)
    lines = (missing / STEPS_FILE).read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("duration_s")
    (missing / STEPS_FILE).write_text(
        "\n".join(",".join(v for i, v in enumerate(line.split(",")) if i != drop)
                  for line in lines) + "\n")
    bad_status = write_run("malformed/bad_status", one_cell, rng)
    text = (bad_status / CONFIGS_FILE).read_text().replace(",ok,", ",crashed,", 1)
    (bad_status / CONFIGS_FILE).write_text(text)
    (bad / "not_results").mkdir()
    (bad / "not_results" / "README.txt").write_text("a directory without environment.json\n")
    bad_json = write_run("malformed/bad_json", one_cell, rng)
    (bad_json / "environment.json").write_text("{not json\n")
    empty_status = write_run("malformed/empty_status", one_cell, rng)
    text = (empty_status / CONFIGS_FILE).read_text().replace(",ok,", ",,", 1)
    (empty_status / CONFIGS_FILE).write_text(text)
    # The same interleaved design, recorded as blocks run back to back, and not recorded.
    write_run("sequential", il, rng, blocks=6, block_drift=0.05, block_order="sequential")
    write_run("order_unrecorded", il, rng, blocks=6, block_drift=0.05, block_order="")


if __name__ == "__main__":
    main()
