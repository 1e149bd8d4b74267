"""Peak probe: this device's attainable fp32 FLOP/s and memory bandwidth, through TensorFlow.

The two ceilings of the roofline chart. FLOP/s: the best of many large fp32
matmuls (``2 n³`` FLOPs each); bandwidth: the best of several element-wise
passes over a large tensor (``y = x + 1`` reads and writes it once: twice its
bytes). Both are synchronised by copying a scalar of the result to the host.
Run in its own process (``python -m harness.peak --device cpu``) because it
imports TensorFlow and must choose the device first; `probe_subprocess` is
what the orchestrator and ``tfbench env --peak`` call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MATMUL_N = 2048
COPY_BYTES = 256 * 1024 * 1024
# Best of many: on a shared machine a short probe catches a loaded moment (5 repeats of
# a 2048 matmul measured 28.6 GFLOP/s under load where a later 20 gave 55; docs/profiling.md).
REPEATS = 20


def measure(device: str, matmul_n: int = MATMUL_N, copy_bytes: int = COPY_BYTES,
            repeats: int = REPEATS) -> dict[str, Any]:
    """Measure the ceilings on ``device`` (``cpu`` or ``gpu[:N]``); imports TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
        name = "/CPU:0"
    else:
        gpus = tf.config.list_physical_devices("GPU")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= len(gpus):
            return {"status": "skipped",
                    "reason": f"{device} requested but TensorFlow sees {len(gpus)} GPU(s)"}
        tf.config.set_visible_devices([gpus[index]], "GPU")
        name = "/GPU:0"
    with tf.device(name):
        a = tf.random.uniform((matmul_n, matmul_n), dtype=tf.float32)
        b = tf.random.uniform((matmul_n, matmul_n), dtype=tf.float32)
        x = tf.random.uniform((copy_bytes // 4,), dtype=tf.float32)
        matmul = tf.function(lambda p, q: tf.reduce_sum(tf.matmul(p, q)[0, :1]))
        copy = tf.function(lambda v: (v + 1.0)[-1])
        matmul(a, b).numpy()
        copy(x).numpy()
        best_mm = min(_timed(lambda: matmul(a, b).numpy()) for _ in range(repeats))
        best_cp = min(_timed(lambda: copy(x).numpy()) for _ in range(repeats))
    return {
        "status": "ok",
        "device": device,
        "peak_flops_per_s": 2.0 * matmul_n ** 3 / best_mm,
        "peak_bytes_per_s": 2.0 * copy_bytes / best_cp,
        "method": (f"best of {repeats}: fp32 matmul {matmul_n}x{matmul_n} (2n^3 FLOPs); "
                   f"x + 1 over {copy_bytes // (1024 * 1024)} MiB (read + write)"),
        "tensorflow_version": tf.__version__,
    }


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def probe_subprocess(device: str, timeout_s: float = 300) -> dict[str, Any]:
    """Run `measure` in a fresh process; a failure is a skipped probe with its reason."""
    try:
        out = subprocess.run([sys.executable, "-m", "harness.peak", "--device", device],
                             capture_output=True, text=True, timeout=timeout_s, check=False,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": f"peak probe exceeded {timeout_s:g} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {"status": "skipped", "reason": f"peak probe failed: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def describe(peak: dict[str, Any]) -> str:
    """One line for ``tfbench env``: the two ceilings, or why there are none."""
    if peak.get("status") != "ok":
        return f"not measured: {peak.get('reason', 'unknown reason')}"
    return (f"{peak['peak_flops_per_s'] / 1e9:.1f} GFLOP/s fp32 matmul, "
            f"{peak['peak_bytes_per_s'] / 1e9:.1f} GB/s copy")


def record_peaks(run_dir: Path, devices: Sequence[str]) -> dict[str, Any]:
    """Probe each device once and add the results to the run's environment.json under
    ``peak`` (keyed by device; a device already probed in this run is not probed again)."""
    from harness.records import ENVIRONMENT_FILE, write_environment

    path = Path(run_dir) / ENVIRONMENT_FILE
    env = json.loads(path.read_text())
    peaks = dict(env.get("peak") or {})
    for device in devices:
        if device not in peaks:
            peaks[device] = probe_subprocess(device)
    env["peak"] = peaks
    write_environment(path, {k: v for k, v in env.items() if k != "schema_version"})
    return peaks


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness.peak")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.device)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
