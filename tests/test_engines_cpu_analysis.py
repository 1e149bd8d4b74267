"""benchmarks/engines_cpu.py: its speed-ups are `stats.step_ratio_ci`, paired over blocks."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness import stats

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "engines_cpu.py"


def test_engine_speedups_use_the_shared_paired_ratio() -> None:
    spec = importlib.util.spec_from_file_location("engines_cpu", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["engines_cpu"] = module
    spec.loader.exec_module(module)
    rows = []
    drift = [1.0, 1.1, 0.95, 1.05]
    for engine, precision, level in (("tf", "fp32", 0.02), ("litert", "fp32", 0.004)):
        for block, f in enumerate(drift):
            for step in range(6):
                jitter = 1 + 0.01 * ((step * 7 + block * 3) % 5 - 2)
                if engine == "litert":
                    jitter *= 1 + 0.03 * (block - 1.5)
                rows.append({"engine": engine, "precision": precision, "block": block,
                             "phase": "measure", "duration_s": level * f * jitter})
    steps = pd.DataFrame(rows)
    configs = pd.DataFrame([{"engine": e, "precision": "fp32", "parity_ok": True}
                            for e in ("tf", "litert")])
    table = module.paired_speedups(steps, configs).set_index("engine")
    tf, lite = steps[steps["engine"] == "tf"], steps[steps["engine"] == "litert"]
    want = stats.step_ratio_ci(tf["duration_s"].to_numpy(), [lite["duration_s"].to_numpy()],
                               blocks=(tf["block"].to_numpy(), lite["block"].to_numpy()))
    got = table.loc["litert"]
    assert want.paired and got["blocks"] == 4
    assert (got["speedup"], got["ci_low"], got["ci_high"]) == \
        (pytest.approx(want.ratio), pytest.approx(want.low), pytest.approx(want.high))
    assert got["ci_low"] < 5.0 < got["ci_high"] and not math.isnan(got["ci_low"])
    assert table.loc["tf", "speedup"] == pytest.approx(1.0)
