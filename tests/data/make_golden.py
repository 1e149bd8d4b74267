"""Write the hand-made golden results directories under tests/data/results/.

They hold the shapes a run on the CI machine cannot produce: Jetson boards with
jtop power samples, GPU cells, several batch sizes, engines other than ``tf``
with parity columns (one failing parity), a skipped, a failed and an OOM cell,
and two hosts running the same matrix so that charts and reports compare them.
Step times are seeded, autocorrelated draws around per-cell medians of the
order measured on Orin boards; the summaries in ``configs.csv`` are computed
from those steps exactly as a run computes them. Deterministic: run it again
and the files are byte-identical.

    python tests/data/make_golden.py
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import stats
from harness.records import (
    CONFIGS_FILE,
    SAMPLES_FILE,
    STEPS_FILE,
    RunFiles,
    write_environment,
)

OUT = Path(__file__).resolve().parent / "results"
SAMPLE_INTERVAL_S = 1.0
GAP_S = 4.0  # model build and engine preparation between cells


@dataclass(frozen=True)
class GoldenCell:
    """One hand-made cell: its factors, its median step time and what happened."""

    model: str
    device: str
    mode: str
    base: str
    engine: str
    precision: str
    batch_size: int
    step_s: float = 0.0
    status: str = "ok"
    reason: str = ""
    parity: tuple[float, float, bool] | None = None
    power_w: float = 0.0
    measured_steps: int = 30


def _env(run_id: str, host: str, board: str, jetpack: str, l4t: str, nvpmodel: str) -> dict:
    return {
        "run_id": run_id,
        "started_at_utc": f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}T{run_id[9:11]}:"
                          f"{run_id[11:13]}:{run_id[13:15]}Z",
        "host": host,
        "os": "Linux 5.15.148-tegra aarch64",
        "python": "3.10.12",
        "tensorflow": {"version": "2.16.1+nv24.08", "cuda": "12.2", "cudnn": "8.9",
                       "tensorrt": "8.6.2"},
        "keras_version": "3.4.1",
        "cpu": {"model": "ARMv8 Processor rev 1 (v8l)", "count": 6},
        "gpus": [{"name": "Orin (nvgpu)", "memory_bytes": None}],
        "jetson": {"model": board, "jetpack": jetpack, "l4t": l4t, "nvpmodel": nvpmodel,
                   "jetson_clocks": True},
        "tfbench_version": "0.1.0",
        "git_commit": "0000000golden",
        "command_line": "tfbench run --profile full --samplers jtop,psutil",
    }


def _factors(c: GoldenCell) -> dict:
    input_size = 299 if c.model == "inception_v3" else 224
    return {"model": c.model, "weights": "random", "input_size": input_size, "device": c.device,
            "mode": c.mode, "base": c.base, "engine": c.engine, "precision": c.precision,
            "batch_size": c.batch_size, "data": "synthetic"}


def _ar1(rng: np.random.Generator, n: int, rho: float = 0.5, sigma: float = 0.04) -> np.ndarray:
    """Autocorrelated log-noise, the shape real step times have."""
    e = rng.normal(0.0, sigma, n)
    out = np.empty(n)
    prev = 0.0
    for i in range(n):
        prev = rho * prev + e[i]
        out[i] = prev
    return out


def _energy(times: np.ndarray, power: np.ndarray, start: float, end: float) -> tuple[float, int]:
    """Trapezoid integral of power over [start, end] and the samples inside it."""
    inside = (times >= start) & (times <= end)
    t = np.concatenate([[start], times[inside], [end]])
    p = np.interp(t, times, power)
    return float(np.sum((p[1:] + p[:-1]) / 2 * np.diff(t))), int(inside.sum())


def write_run(root: Path, env: dict, cells: list[GoldenCell], seed: int,
              idle_power_w: float) -> None:
    """Write one results directory: steps for ok cells, jtop/psutil samples, configs."""
    rng = np.random.default_rng(seed)
    run_id = env["run_id"]
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    files = RunFiles(root)
    write_environment(files.environment, env)
    t = 1.0
    step_rows: list[dict] = []
    windows: list[tuple[str, float, float, float]] = []  # config_id, start, end, power
    configs: list[dict] = []
    for index, c in enumerate(cells):
        config_id = f"c{index:02d}"
        row: dict = {"run_id": run_id, "config_id": config_id, **_factors(c),
                     "status": c.status, "reason": c.reason}
        if c.status != "ok":
            configs.append(row)
            t += 1.0 if c.status == "skipped" else GAP_S
            continue
        t += GAP_S
        warmup = 5
        first = c.step_s * (8 + 4 * rng.random()) + 1.5
        t += first
        noise = _ar1(rng, warmup + c.measured_steps)
        durations = []
        measure_start = 0.0
        for i in range(warmup + c.measured_steps):
            phase = "warmup" if i < warmup else "measure"
            settle = 1.0 + (0.6 * math.exp(-i / 1.5) if phase == "warmup" else 0.0)
            d = c.step_s * settle * math.exp(noise[i])
            wait = 0.0002
            if i == warmup:
                measure_start = t
            t += wait
            step_rows.append({
                "run_id": run_id, "config_id": config_id, "model": c.model, "device": c.device,
                "mode": c.mode, "base": c.base, "engine": c.engine, "precision": c.precision,
                "batch_size": c.batch_size, "block": 0, "step": i, "phase": phase,
                "start_s": round(t, 6), "duration_s": round(d, 6), "input_wait_s": wait,
                "images": c.batch_size,
                "loss": round(2.3 * math.exp(-i / 40), 4) if c.mode == "train" else None,
            })
            t += d
            if phase == "measure":
                durations.append(round(d, 6))
        measure_end = t
        windows.append((config_id, measure_start, measure_end, c.power_w))
        s = stats.summarize(durations)
        median_images = c.batch_size
        row.update(
            warmup_steps=warmup, measured_steps=c.measured_steps, first_step_s=round(first, 6),
            step_s_median=s["median"], step_s_p90=s["p90"], step_s_p99=s["p99"],
            step_s_mean=s["mean"], step_s_std=s["std"], step_s_median_ci_low=s["median_ci_low"],
            step_s_median_ci_high=s["median_ci_high"],
            images_per_s=median_images / s["median"],
            images_per_s_ci_low=median_images / s["median_ci_high"],
            images_per_s_ci_high=median_images / s["median_ci_low"],
            host_rss_peak_bytes=int((1.1e9 if c.model == "inception_v3" else 0.7e9)
                                    * (1.6 if c.mode == "train" else 1.0)
                                    * (1 + c.batch_size / 64)),
            device_mem_peak_bytes=(int((0.5e9 if c.model == "inception_v3" else 0.25e9)
                                       * (2.5 if c.mode == "train" else 1.0) * c.batch_size / 8)
                                   if c.device == "gpu" else None),
            device_used="/device:GPU:0" if c.device == "gpu" else "/device:CPU:0",
            xla=False, blocks=1, measure_start_s=round(measure_start, 6),
            measure_end_s=round(measure_end, 6), wall_s=round(measure_end - measure_start + 6, 3),
            engine_detail={"tftrt": "TF-TRT 8.6.2, minimum_segment_size=3"}.get(c.engine, ""),
        )
        if c.parity is not None:
            row.update(parity_max_rel_err=c.parity[0], parity_cosine=c.parity[1],
                       parity_ok=c.parity[2])
        configs.append(row)
    end = t + 2.0
    times = np.round(np.arange(0.5, end, SAMPLE_INTERVAL_S), 3)
    power = np.full(len(times), idle_power_w)
    active = [""] * len(times)
    for config_id, start, stop, watts in windows:
        inside = (times >= start) & (times <= stop)
        power[inside] = watts
        for i in np.flatnonzero(inside):
            active[i] = config_id
    power = np.round(power * np.exp(rng.normal(0, 0.03, len(times))), 3)
    for row in configs:
        if row["status"] != "ok":
            continue
        joules, n = _energy(times, power, row["measure_start_s"], row["measure_end_s"])
        images = row["measured_steps"] * row["batch_size"]
        window = row["measure_end_s"] - row["measure_start_s"]
        inside = (times >= row["measure_start_s"]) & (times <= row["measure_end_s"])
        row.update(power_w_mean=round(float(power[inside].mean()), 4) if n else None,
                   energy_j_per_image=round(joules / images, 6), power_samples=n,
                   energy_confidence="ok" if n >= 5 and window >= 5 * SAMPLE_INTERVAL_S
                   else "low")
    sample_rows = []
    for i, ts in enumerate(times):
        cid = active[i]
        busy = cid != ""
        share = 0.55 if busy else 0.3
        readings = [
            ("jtop", "power_total", "W", power[i]),
            ("jtop", "power_rail:VDD_CPU_GPU_CV", "W", round(power[i] * share, 3)),
            ("jtop", "power_rail:VDD_SOC", "W", round(power[i] * 0.25, 3)),
            ("jtop", "ram_used", "B", int(2.1e9 + (1.5e9 if busy else 0))),
            ("jtop", "gpu_shared_mem", "B", int(0.4e9 if busy else 0.05e9)),
            ("jtop", "gpu_load", "%", round(85.0 if busy else 2.0, 1)),
            ("jtop", "temp:gpu", "°C", round(45 + 10 * ts / end, 2)),
            ("psutil", "rss", "B", int(0.9e9 if busy else 0.3e9)),
            ("psutil", "cpu_percent", "%", round(180.0 if busy else 5.0, 1)),
        ]
        for sampler, metric, unit, value in readings:
            sample_rows.append({"run_id": run_id, "config_id": cid, "sampler": sampler,
                                "metric": metric, "unit": unit, "t_s": float(ts),
                                "value": value})
    files.appender(CONFIGS_FILE).append(_plain(r) for r in configs)
    files.appender(STEPS_FILE).append(_plain(r) for r in step_rows)
    files.appender(SAMPLES_FILE).append(_plain(r) for r in sample_rows)


def _plain(row: dict) -> dict:
    """NumPy scalars as Python numbers (the CSV writer would keep their repr)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}


def orin_cells(speed: float, power_scale: float) -> list[GoldenCell]:
    """The matrix both hosts ran; ``speed`` scales step times (lower is faster)."""
    def ok(model: str, device: str, mode: str, base: str, engine: str, precision: str,
           bs: int, step_s: float, watts: float, **kw: object) -> GoldenCell:
        return GoldenCell(model, device, mode, base, engine, precision, bs,
                          step_s=step_s * speed, power_w=watts * power_scale,
                          **kw)  # type: ignore[arg-type]

    return [
        ok("mobilenet_v2", "cpu", "infer", "", "tf", "fp32", 8, 0.21, 7.0),
        ok("mobilenet_v2", "gpu", "infer", "", "tf", "fp32", 8, 0.032, 9.5, measured_steps=150),
        ok("mobilenet_v2", "gpu", "infer", "", "tf", "fp32", 16, 0.055, 10.5,
           measured_steps=100),
        ok("mobilenet_v2", "gpu", "infer", "", "tf", "fp32", 32, 0.098, 11.2, measured_steps=60),
        ok("mobilenet_v2", "gpu", "infer", "", "tftrt", "fp16", 8, 0.0095, 8.8,
           parity=(0.004, 0.99998, True), measured_steps=40),
        ok("mobilenet_v2", "gpu", "infer", "", "tftrt", "int8", 8, 0.0071, 8.1,
           parity=(0.21, 0.972, False), measured_steps=400),
        ok("inception_v3", "cpu", "infer", "", "tf", "fp32", 8, 0.93, 7.6),
        ok("inception_v3", "gpu", "infer", "", "tf", "fp32", 8, 0.118, 11.8, measured_steps=60),
        ok("mobilenet_v2", "cpu", "train", "frozen", "tf", "fp32", 8, 0.36, 7.3),
        ok("mobilenet_v2", "gpu", "train", "frozen", "tf", "fp32", 8, 0.071, 10.9,
           measured_steps=80),
        ok("mobilenet_v2", "gpu", "train", "unfrozen", "tf", "fp32", 8, 0.19, 12.4,
           measured_steps=40),
        ok("inception_v3", "cpu", "train", "frozen", "tf", "fp32", 8, 1.33, 7.7),
        ok("inception_v3", "gpu", "train", "frozen", "tf", "fp32", 8, 0.26, 12.6,
           measured_steps=40),
        GoldenCell("inception_v3", "gpu", "train", "unfrozen", "tf", "fp32", 8, status="oom",
                   reason="ResourceExhaustedError: OOM when allocating tensor with shape"
                          "[8,2048,8,8] on /job:localhost/replica:0/task:0/device:GPU:0"),
        GoldenCell("mobilenet_v2", "gpu", "infer", "", "litert", "fp32", 8, status="skipped",
                   reason="engine litert: ai-edge-litert is not installed "
                          "(pip install tfbench[litert])"),
        GoldenCell("mobilenet_v2", "gpu", "infer", "", "onnxruntime", "fp32", 8,
                   status="failed",
                   reason="RuntimeError: tf2onnx conversion failed: Unsupported ops: "
                          "FusedBatchNormV3"),
    ]


def main() -> None:
    write_run(OUT / "orin_nano",
              _env("20250301-101500-orin-nano", "orin-nano",
                   "NVIDIA Jetson Orin Nano Developer Kit", "6.2", "36.4.3", "15W"),
              orin_cells(speed=1.0, power_scale=1.0), seed=1, idle_power_w=5.1)
    write_run(OUT / "orin_nx",
              _env("20250302-091000-orin-nx", "orin-nx",
                   "NVIDIA Jetson Orin NX 16GB", "6.2", "36.4.3", "MAXN"),
              orin_cells(speed=0.55, power_scale=1.6), seed=2, idle_power_w=6.4)
    print(f"wrote {OUT / 'orin_nano'} and {OUT / 'orin_nx'}")


if __name__ == "__main__":
    main()
