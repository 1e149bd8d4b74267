"""The bottleneck cache: its key, its store, and the fact that training the head on
cached features is the same computation as training it behind a frozen base."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from imagesets import colour_folder

from harness import bottleneck

PROBE = """
import json, sys
from pathlib import Path
from harness.config import Cell, RunSettings
from harness import fit_cell
data, run = sys.argv[1], Path(sys.argv[2])
settings = RunSettings(epochs=2, warmup_steps=0, seed=3, samplers=("none",))
out = {}
for base in ("frozen", "cached"):
    cell = Cell("tiny_cnn", mode="fit", base=base, data=data, batch_size=8, learning_rate=0.05)
    result = {}
    fit_cell._run(cell, settings, 0, run, 0.0, result)  # dropout off
    out[base] = [r["loss"] for r in result["steps"] if r["phase"] != "eval"]
    out[base + "_val"] = [r["val_loss"] for r in result["steps"] if r["phase"] == "eval"]
    out[base + "_fit"] = {k: v for k, v in result["fit"].items() if k.startswith("cache")}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_cached_and_frozen_training_give_the_same_losses(tmp_path: Path) -> None:
    data = colour_folder(tmp_path / "colours", per_class=10)
    env = {**os.environ, "TFBENCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(data), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    frozen, cached = np.array(out["frozen"]), np.array(out["cached"])
    assert len(frozen) == len(cached) == 2 * (24 // 8)
    assert np.ptp(frozen) > 1e-3  # the losses move: the comparison is not trivial
    np.testing.assert_allclose(cached, frozen, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["cached_val"], out["frozen_val"], rtol=1e-4, atol=1e-6)
    assert out["frozen_fit"] == {}
    assert out["cached_fit"]["cache_hit"] is False and out["cached_fit"]["cache_build_s"] > 0


def test_store_builds_once_then_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bottleneck.CACHE_ENV, str(tmp_path))
    ticks = itertools.count(0.0, 1.5)
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(12, dtype=np.float64).reshape(4, 3)

    first = bottleneck.load_or_build("k1", compute, clock=lambda: next(ticks))
    assert not first.hit and first.build_s == 1.5 and first.features.dtype == np.float32
    again = bottleneck.load_or_build("k1", compute, clock=lambda: next(ticks))
    assert again.hit and again.build_s == 1.5 and len(calls) == 1
    np.testing.assert_array_equal(again.features, first.features)
    other = bottleneck.load_or_build("k2", compute, clock=lambda: next(ticks))
    assert not other.hit and len(calls) == 2
    assert sorted(p.name for p in (tmp_path / "bottlenecks").iterdir()) == ["k1", "k2"]


def test_cache_key_changes_with_what_the_features_depend_on(tmp_path: Path) -> None:
    from harness.config import Cell, RunSettings
    from harness.data import load_labelled

    data = colour_folder(tmp_path / "c", per_class=2)
    labelled = load_labelled(str(data))
    cell = Cell("tiny_cnn", mode="fit", base="cached", data=str(data))
    key = bottleneck.cache_key(cell, RunSettings(), labelled, 3)
    same = Cell("tiny_cnn", mode="fit", base="cached", data=str(data), learning_rate=1.0,
                batch_size=4)
    assert bottleneck.cache_key(same, RunSettings(), labelled, 3) == key  # head-only factors
    assert bottleneck.cache_key(cell, RunSettings(seed=1), labelled, 3) != key  # random base
    bigger = Cell("tiny_cnn", mode="fit", base="cached", data=str(data), input_size=48)
    assert bottleneck.cache_key(bigger, RunSettings(), labelled, 3) != key
    first = data / "red" / "red_000.png"
    first.write_bytes(first.read_bytes() + b"\0")  # one changed file: other data
    changed = load_labelled(str(data))
    assert changed.digest != labelled.digest
    assert bottleneck.cache_key(cell, RunSettings(), changed, 3) != key
