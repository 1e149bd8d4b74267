"""Write the golden Jetson results directories under tests/data/results/ with the harness's code.

They hold the shapes the CI machine cannot produce: Jetson boards with
tegrastats and jtop power samples, GPU cells, several batch sizes, engines
other than ``tf`` with parity columns (one failing parity), a skipped, a failed
and an OOM cell, and two hosts running the same matrix.

What is recorded and what is generated:

* **Power and board samples are real recordings.** The ``orin_nano`` run is fed
  the recorded tegrastats lines of a Jetson Orin Nano on JetPack 6
  (``shared/fixtures/tegrastats/orin_nano_jp6_user.txt`` while no cell is
  stepping, ``orin_nano_jp6_root.txt`` while one is), parsed by the real
  `harness.samplers.tegrastats.parse_line`. The ``orin_nano_super`` run is fed
  a jtop trace: the ``jetson.power`` dict jtop returned on an idle Orin Nano
  (JetPack 6.2, in shared/notes/telemetry.md) and, while a cell steps, the
  same board's busy rails (the recorded tegrastats line's VDD_IN,
  VDD_CPU_GPU_CV and VDD_SOC) in jtop's dict shape, converted by the real
  `harness.samplers.jtop.readings_from_power`. Samples are stamped once per
  ``SAMPLE_INTERVAL_S`` on the run's clock and tagged with the active cell, as
  the sampler process does.
* **The environment** is the real `harness.environment.build_environment`
  applied to recorded probe output of a JetPack 6.2 board (TensorFlow probe,
  jtop board info), then the real `orchestrator.record_samplers`.
* **Step times are generated** (seeded, autocorrelated draws around per-cell
  medians of the order measured on Orin boards) and handed to the real
  `orchestrator.RunSession.record` as worker results, so configs.csv, its
  statistics and its power/energy attribution are what the orchestrator
  writes from those steps and samples.

Deterministic: run it again and the files are byte-identical
(tests/test_golden.py checks that). After a change to the records,
attribution or orchestrator code, regenerate and review the diff:

    python tests/data/make_golden.py [OUT_DIR]
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Cell, RunSettings
from harness.environment import build_environment
from harness.orchestrator import BlockOutcome, RunSession, record_samplers
from harness.records import SAMPLES_FILE, RunFiles, write_environment
from harness.samplers import jtop, tegrastats

HERE = Path(__file__).resolve().parent
OUT = HERE / "results"
FIXTURES = HERE.parents[2] / "shared" / "fixtures" / "tegrastats"
if not FIXTURES.is_dir():  # the checkout's ../shared, or /work/shared (as tests/test_tegrastats)
    FIXTURES = Path("/work/shared/fixtures/tegrastats")
SAMPLE_INTERVAL_S = 1.0
GAP_S = 4.0  # model build and engine preparation between cells
CLOCK_ORIGIN_NS = 1_000_000_000_000
WARMUP = 5

# jtop's jetson.power on an idle Orin Nano, JetPack 6.2 (shared/notes/telemetry.md).
JTOP_IDLE_POWER: dict[str, Any] = {
    "rail": {"VDD_CPU_GPU_CV": {"volt": 4928, "curr": 216, "warn": 32760, "crit": 32760,
                                "power": 1064, "online": True, "avg": 806},
             "VDD_SOC": {"volt": 4936, "curr": 312, "warn": 32760, "crit": 32760,
                         "power": 1540, "online": True, "avg": 1524}},
    "tot": {"volt": 4936, "curr": 1040, "warn": 5232, "crit": 5232, "power": 5133,
            "online": True, "avg": 4800, "name": "VDD_IN"}}

Readings = list[tuple[str, str, float]]


def tegrastats_readings(fixture: str) -> Readings:
    """Metrics of one recorded tegrastats line, through the real parser."""
    line = (FIXTURES / fixture).read_text().strip()
    return [(m, tegrastats.unit_of(m), v) for m, v in tegrastats.parse_line(line).items()]


def jtop_busy_power() -> dict[str, Any]:
    """The busy Orin Nano's rails (recorded tegrastats line) in jtop's ``power`` dict shape."""
    rails = {m: v for m, _, v in tegrastats_readings("orin_nano_jp6_root.txt")
             if m.startswith("power")}

    def entry(watts: float) -> dict[str, Any]:
        return {"power": round(watts * 1000), "online": True}

    return {"rail": {name.split(":", 1)[1]: entry(w) for name, w in rails.items()
                     if name.startswith("power_rail:")},
            "tot": {**entry(rails["power_total"]), "name": "VDD_IN"}}


def jtop_readings(power: dict[str, Any]) -> Readings:
    return jtop.readings_from_power(power)


@dataclass(frozen=True)
class Board:
    """A recorded board: its probe output and its sampler's idle and busy readings."""

    run_id: str
    host: str
    model: str
    module: str
    nvpmodel: str
    sampler: str
    idle: Callable[[], Readings]
    busy: Callable[[], Readings]


BOARDS = {
    "orin_nano": Board("20250301-101500-orin-nano", "orin-nano",
                       "NVIDIA Jetson Orin Nano Developer Kit",
                       "NVIDIA Jetson Orin Nano (8GB ram)", "15W", "tegrastats",
                       lambda: tegrastats_readings("orin_nano_jp6_user.txt"),
                       lambda: tegrastats_readings("orin_nano_jp6_root.txt")),
    "orin_nano_super": Board("20250302-091000-orin-nano-super", "orin-nano-super",
                             "NVIDIA Jetson Orin Nano Developer Kit",
                             "NVIDIA Jetson Orin Nano (8GB ram)", "MAXN_SUPER", "jtop",
                             lambda: jtop_readings(JTOP_IDLE_POWER),
                             lambda: jtop_readings(jtop_busy_power())),
}


def environment_of(board: Board, settings: RunSettings) -> Any:
    """The environment a run on this board records, through the real environment code."""
    hardware = {"Model": board.model, "Module": board.module, "L4T": "36.4.3",
                "Jetpack": "6.2", "699-level Part Number": "699-13767-0005-300 R.1"}
    jetson = {"model": board.model, "module": board.module, "l4t": "36.4.3", "jetpack": "6.2",
              "hardware": hardware, "nvpmodel": board.nvpmodel, "jetson_clocks": "running",
              "warning": jtop.clock_warning("running", board.nvpmodel) or None}
    tensorflow = {
        "tensorflow_version": "2.16.1+nv24.08", "keras_version": "3.4.1",
        "tensorflow_build": {"is_cuda_build": True, "is_rocm_build": False,
                             "is_tensorrt_build": True, "cuda_version": "12.2",
                             "cudnn_version": "8", "cuda_compute_capabilities": ["sm_87"]},
        "tensorrt": {"enabled": True, "linked": "8.6.2", "loaded": "8.6.2"},
        "gpus": [{"name": "/physical_device:GPU:0", "device_name": "Orin",
                  "compute_capability": "(8, 7)"}],
    }
    facts = {"host": board.host, "os": "Linux 5.15.148-tegra", "machine": "aarch64",
             "python": "3.10.12", "cpu_model": "ARMv8 Processor rev 1 (v8l)", "cpu_count": 6,
             "tfbench_version": "0.1.0", "git_commit": "0000000golden"}
    day = board.run_id
    return build_environment(
        run_id=board.run_id,
        started_at_utc=f"{day[:4]}-{day[4:6]}-{day[6:8]}T{day[9:11]}:{day[11:13]}:"
                       f"{day[13:15]}+00:00",
        clock_origin_ns=CLOCK_ORIGIN_NS,
        command_line=["tfbench", "run", "--profile", "full", "--samplers", board.sampler,
                      "--sample-interval", f"{settings.sample_interval_s:g}"],
        profile="full", platform_facts=facts, tensorflow=tensorflow, jetson=jetson)


@dataclass(frozen=True)
class GoldenCell:
    """One generated cell: its factors, its median step time and what happened."""

    cell: Cell
    step_s: float = 0.0
    status: str = "ok"
    reason: str = ""
    parity: tuple[float, float, bool] | None = None
    measured_steps: int = 30


def _ar1(rng: np.random.Generator, n: int, rho: float = 0.5, sigma: float = 0.04) -> np.ndarray:
    """Autocorrelated log-noise, the shape real step times have."""
    e = rng.normal(0.0, sigma, n)
    out = np.empty(n)
    prev = 0.0
    for i in range(n):
        prev = rho * prev + e[i]
        out[i] = prev
    return out


@dataclass
class _Planned:
    golden: GoldenCell
    start_s: float
    end_s: float
    outcome: BlockOutcome
    stepping: tuple[float, float] | None  # first step start, last step end


def _worker_result(g: GoldenCell, rng: np.random.Generator, t: float
                   ) -> tuple[dict[str, Any], float]:
    """What a worker would report for an ok cell starting its first step at ``t``."""
    c = g.cell
    first = g.step_s * (8 + 4 * rng.random()) + 1.5
    t += first
    noise = _ar1(rng, WARMUP + g.measured_steps)
    steps = []
    for i in range(WARMUP + g.measured_steps):
        phase = "warmup" if i < WARMUP else "measure"
        settle = 1.0 + (0.6 * math.exp(-i / 1.5) if phase == "warmup" else 0.0)
        d = round(g.step_s * settle * math.exp(noise[i]), 6)
        wait = 0.0002
        t += wait
        steps.append({"step": i, "phase": phase, "start_s": round(t, 6), "duration_s": d,
                      "input_wait_s": wait, "images": c.batch_size,
                      "loss": round(2.3 * math.exp(-i / 40), 4) if c.mode == "train" else None})
        t += d
    big = c.model == "inception_v3"
    result: dict[str, Any] = {
        "status": "ok", "steps": steps, "first_step_s": round(first, 6),
        "convert_s": None, "build_s": None, "xla": False,
        "device_used": "/device:GPU:0" if c.device == "gpu" else "/device:CPU:0",
        "host_rss_peak_bytes": int((1.1e9 if big else 0.7e9)
                                   * (1.6 if c.mode == "train" else 1.0)
                                   * (1 + c.batch_size / 64)),
    }
    if c.device == "gpu":
        result["device_mem_peak_bytes"] = int((0.5e9 if big else 0.25e9)
                                              * (2.5 if c.mode == "train" else 1.0)
                                              * c.batch_size / 8)
    if c.engine == "tftrt":
        result["engine_detail"] = {"tensorrt": "8.6.2", "minimum_segment_size": 3}
        result["convert_s"] = 41.5
    if g.parity is not None:
        result["parity"] = {"parity_max_rel_err": g.parity[0], "parity_cosine": g.parity[1],
                            "parity_ok": g.parity[2]}
    return result, t


def _plan(cells: Sequence[GoldenCell], rng: np.random.Generator) -> list[_Planned]:
    t = 1.0
    out = []
    for g in cells:
        start = t
        if g.status != "ok":
            t += 1.0 if g.status == "skipped" else GAP_S
            out.append(_Planned(g, start, t, BlockOutcome(g.status, g.reason, {},
                                                          round(t - start, 3)), None))
            continue
        result, end = _worker_result(g, rng, t + GAP_S)
        first_start = result["steps"][0]["start_s"] - result["first_step_s"]
        t = end + 0.5
        out.append(_Planned(g, start, t, BlockOutcome("ok", "", result, round(t - start, 3)),
                            (first_start, end)))
    return out


def _sample_rows(board: Board, run_id: str, plan: Sequence[_Planned]) -> list[dict[str, Any]]:
    """The sampler's rows: recorded busy readings while a cell steps, idle ones otherwise."""
    end = plan[-1].end_s + 2.0
    idle, busy = board.idle(), board.busy()
    rows = []
    for k in range(int(end / SAMPLE_INTERVAL_S)):
        t_s = round(0.25 + k * SAMPLE_INTERVAL_S, 6)
        active = next((p for p in plan if p.start_s <= t_s < p.end_s), None)
        stepping = active is not None and active.stepping is not None and \
            active.stepping[0] <= t_s <= active.stepping[1]
        for metric, unit, value in busy if stepping else idle:
            rows.append({"run_id": run_id, "config_id": active.golden.cell.config_id
                         if active is not None else "", "sampler": board.sampler,
                         "metric": metric, "unit": unit, "t_s": t_s, "value": value,
                         "host": board.host})
    return rows


class _WrittenSamples:
    """The sampler handle for a run whose samples are already in samples.csv."""

    def flush(self) -> None:
        return None


def write_run(root: Path, board: Board, cells: Sequence[GoldenCell], seed: int) -> None:
    """One results directory, written by the harness's own environment/records/attribution."""
    rng = np.random.default_rng(seed)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    settings = RunSettings(warmup_steps=WARMUP, samplers=(board.sampler,),
                           sample_interval_s=SAMPLE_INTERVAL_S, plots=False)
    write_environment(RunFiles(root).environment, environment_of(board, settings))
    plan = _plan(cells, rng)
    samples = _sample_rows(board, board.run_id, plan)
    RunFiles(root).appender(SAMPLES_FILE).append(samples)
    session = RunSession(root, settings, run_id=board.run_id, t0_ns=CLOCK_ORIGIN_NS,
                         host=board.host)
    session.sampler = _WrittenSamples()
    for p in plan:
        session.record(p.golden.cell, [p.outcome])
    session.sampler = None
    session.close()
    shutil.rmtree(root / "logs", ignore_errors=True)
    status = {board.sampler: "active"}
    record_samplers(root, status, {"active": [board.sampler], "status": status,
                                   "rows": len(samples), "samples": {board.sampler: len(samples)},
                                   "problems": [], "last_sample_s": samples[-1]["t_s"],
                                   "died_at_s": None})


def orin_cells(speed: float) -> list[GoldenCell]:
    """The matrix both hosts ran; ``speed`` scales step times (lower is faster)."""
    def ok(model: str, device: str, mode: str, base: str, engine: str, precision: str,
           bs: int, step_s: float, **kw: Any) -> GoldenCell:
        return GoldenCell(Cell(model, device, mode, base, engine, precision, bs),
                          step_s=step_s * speed, **kw)

    def not_run(model: str, mode: str, base: str, engine: str, status: str,
                reason: str) -> GoldenCell:
        return GoldenCell(Cell(model, "gpu", mode, base, engine, "fp32", 8), status=status,
                          reason=reason)

    return [
        ok("mobilenet_v2", "cpu", "infer", "", "tf", "fp32", 8, 0.21),
        ok("mobilenet_v2", "gpu", "infer", "", "tf", "fp32", 8, 0.032, measured_steps=150),
        ok("mobilenet_v2", "gpu", "infer", "", "tf", "fp32", 16, 0.055, measured_steps=100),
        ok("mobilenet_v2", "gpu", "infer", "", "tf", "fp32", 32, 0.098, measured_steps=60),
        ok("mobilenet_v2", "gpu", "infer", "", "tftrt", "fp16", 8, 0.0095,
           parity=(0.004, 0.99998, True), measured_steps=40),
        ok("mobilenet_v2", "gpu", "infer", "", "tftrt", "int8", 8, 0.0071,
           parity=(0.21, 0.972, False), measured_steps=400),
        ok("inception_v3", "cpu", "infer", "", "tf", "fp32", 8, 0.93),
        ok("inception_v3", "gpu", "infer", "", "tf", "fp32", 8, 0.118, measured_steps=60),
        ok("mobilenet_v2", "cpu", "train", "frozen", "tf", "fp32", 8, 0.36),
        ok("mobilenet_v2", "gpu", "train", "frozen", "tf", "fp32", 8, 0.071, measured_steps=80),
        ok("mobilenet_v2", "gpu", "train", "unfrozen", "tf", "fp32", 8, 0.19,
           measured_steps=40),
        ok("inception_v3", "cpu", "train", "frozen", "tf", "fp32", 8, 1.33),
        ok("inception_v3", "gpu", "train", "frozen", "tf", "fp32", 8, 0.26, measured_steps=40),
        not_run("inception_v3", "train", "unfrozen", "tf", "oom",
                "ResourceExhaustedError: OOM when allocating tensor with shape"
                "[8,2048,8,8] on /job:localhost/replica:0/task:0/device:GPU:0"),
        not_run("mobilenet_v2", "infer", "", "litert", "skipped",
                "engine litert: ai-edge-litert is not installed (pip install tfbench[litert])"),
        not_run("mobilenet_v2", "infer", "", "onnxruntime", "failed",
                "RuntimeError: tf2onnx conversion failed: Unsupported ops: FusedBatchNormV3"),
    ]


def main(out: Path = OUT) -> list[Path]:
    """Write both golden runs under ``out``; return their directories."""
    written = []
    for name, speed, seed in (("orin_nano", 1.0, 1), ("orin_nano_super", 0.55, 2)):
        write_run(out / name, BOARDS[name], orin_cells(speed), seed)
        written.append(out / name)
    return written


if __name__ == "__main__":
    dirs = main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
    print("wrote " + ", ".join(str(d) for d in dirs))
