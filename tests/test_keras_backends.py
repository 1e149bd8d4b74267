"""Keras 3 on JAX and PyTorch as engines, each cell in a real worker process.

The worker sets KERAS_BACKEND before Keras is imported, so these cells must run in
their own processes (a RunSession), never in the test process. Parity is against
the tf fp32 reference, whose weights the cell's model gets. The boundary test runs
a keras-jax worker with TensorFlow made unimportable (a sitecustomize on PYTHONPATH
installs a meta-path finder that answers ``No module named 'tensorflow'``, as on a
machine without it): the cell runs, and parity says why it is not available.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.config import Cell, RunSettings
from harness.engines.keras_backend import importable
from harness.orchestrator import RunSession

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SETTINGS = RunSettings(warmup_steps=1, measured_steps=3, samplers=(), timeout_s=300)
TORCH = pytest.mark.skipif(not importable("torch"),
                           reason="torch is not installed (pip install 'tfbench[torch]')")


# Not sys.modules[name] = None: Keras checks `"tensorflow" in sys.modules`, which a
# machine without TensorFlow never has.
BLOCKER = """import sys


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {packages!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


def blocker(tmp_path: Path, *packages: str) -> dict[str, str]:
    """Worker environment in which ``packages`` cannot be imported."""
    folder = tmp_path / "block"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER.format(packages=packages))
    path = os.pathsep.join([str(folder), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path}


def run(tmp_path: Path, cells: list[Cell], env: dict[str, str] | None = None,
        **settings: object) -> list[dict[str, object]]:
    session = RunSession(tmp_path, replace(SETTINGS, **settings), run_id="keras-test",
                         t0_ns=time.perf_counter_ns(), worker_env=env or {})
    outcomes = [session.run_cell(c) for c in cells]
    session.close()
    return [{"status": o.status, "reason": o.reason, "row": o.row, "steps": o.steps}
            for o in outcomes]


def assert_ran_with_parity(outcome: dict[str, object], mode: str) -> dict[str, object]:
    assert outcome["status"] == "ok", outcome["reason"]
    row = outcome["row"]
    assert isinstance(row, dict)
    steps = outcome["steps"]
    assert isinstance(steps, list)
    measured = [s for s in steps if s["phase"] == "measure"]
    assert len(measured) == 3 and all(s["duration_s"] > 0 for s in measured)
    losses = [s["loss"] for s in measured]
    if mode == "train":
        assert all(loss is not None and math.isfinite(loss) for loss in losses)
    else:
        assert all(loss is None for loss in losses)
    # Weights copied from the tf fp32 reference: the same function, to fp32 round-off.
    assert row["parity_ok"] is True
    assert 0 <= row["parity_max_rel_err"] <= 1e-4
    assert row["parity_cosine"] >= 0.99999
    assert row["first_step_s"] > 0
    detail = json.loads(str(row["engine_detail"]))
    assert isinstance(detail, dict)
    return detail


def test_keras_jax_infer_and_train_with_parity(tmp_path: Path) -> None:
    cells = [Cell(model="tiny_cnn", engine="keras-jax", batch_size=4),
             Cell(model="tiny_cnn", engine="keras-jax", mode="train", base="unfrozen",
                  batch_size=4)]
    outcomes = run(tmp_path, cells)
    for cell, outcome in zip(cells, outcomes, strict=True):
        detail = assert_ran_with_parity(outcome, cell.mode)
        import jax

        assert detail["backend"] == "jax" and detail["jax"] == jax.__version__
        assert detail["compile_mode"] == "jax.jit (lowered and compiled before timing)"
        assert detail["graph_build_s"] > 0
        row = outcome["row"]
        assert isinstance(row, dict)
        assert row["build_s"] > 0 and row["xla"] is True  # the XLA compile, before timing
        assert row["device_used"] == "cpu:0 (cpu)"
        assert row["device_mem_peak_bytes"] is None
        assert detail["device_mem"] == "JAX reports no memory statistics for cpu devices"


@TORCH
def test_keras_torch_infer_and_train_with_parity(tmp_path: Path) -> None:
    import torch

    cells = [Cell(model="tiny_cnn", engine="keras-torch", batch_size=4),
             Cell(model="tiny_cnn", engine="keras-torch", mode="train", base="unfrozen",
                  batch_size=4)]
    for cell, outcome in zip(cells, run(tmp_path, cells), strict=True):
        detail = assert_ran_with_parity(outcome, cell.mode)
        assert detail["backend"] == "torch" and detail["torch"] == torch.__version__
        assert detail["compile_mode"] == "eager"
        row = outcome["row"]
        assert isinstance(row, dict)
        assert row["device_used"] == "cpu" and row["xla"] is False


def test_keras_jax_runs_without_tensorflow(tmp_path: Path) -> None:
    """The boundary: nothing on a keras-jax cell's path imports TensorFlow."""
    cell = Cell(model="tiny_cnn", engine="keras-jax", mode="train", base="unfrozen",
                batch_size=4)
    (outcome,) = run(tmp_path, [cell], blocker(tmp_path, "tensorflow"))
    assert outcome["status"] == "ok", outcome["reason"]
    row = outcome["row"]
    assert isinstance(row, dict)
    assert row["parity_reason"] == (
        "no tf fp32 reference: TensorFlow is not importable here (ModuleNotFoundError: "
        "No module named 'tensorflow')")
    assert "parity_ok" not in row or row["parity_ok"] is None
    measured = [s for s in outcome["steps"] if s["phase"] == "measure"]  # type: ignore[union-attr]
    assert len(measured) == 3


def test_keras_jax_oom_fault_is_jax_own_without_tensorflow(tmp_path: Path) -> None:
    """TFBENCH_FAULT=oom makes JAX's allocator fail (TensorFlow is not even importable)."""
    env = {**blocker(tmp_path, "tensorflow"), "TFBENCH_FAULT": "oom"}
    (outcome,) = run(tmp_path, [Cell(model="tiny_cnn", engine="keras-jax", batch_size=2)], env)
    assert outcome["status"] == "oom"
    assert str(outcome["reason"]).startswith("JaxRuntimeError: RESOURCE_EXHAUSTED: Out of memory")


def test_missing_backend_package_is_a_skipped_cell(tmp_path: Path) -> None:
    env = blocker(tmp_path, "torch", "jax")
    outcomes = run(tmp_path, [Cell(model="tiny_cnn", engine="keras-torch", batch_size=2),
                              Cell(model="tiny_cnn", engine="keras-jax", batch_size=2)], env)
    assert [(o["status"], o["reason"]) for o in outcomes] == [
        ("skipped", "engine keras-torch: torch is not installed (or not importable); "
                    "pip install 'tfbench[torch]'"),
        ("skipped", "engine keras-jax: jax is not installed (or not importable); "
                    "pip install 'tfbench[jax]'"),
    ]


def test_keras_backend_gpu_cell_without_gpu_is_skipped(tmp_path: Path) -> None:
    import jax

    try:
        if jax.devices("gpu"):
            pytest.skip("a GPU is visible to JAX here")
    except RuntimeError:
        pass
    (outcome,) = run(tmp_path, [Cell(model="tiny_cnn", engine="keras-jax", device="gpu",
                                     batch_size=2)])
    assert outcome["status"] == "skipped"
    assert str(outcome["reason"]).startswith("gpu requested but JAX sees 0 GPU(s)")


@TORCH
def test_torch_oom_and_its_reason() -> None:
    """keras-torch's injected fault is a real PyTorch allocation failure, recognised."""
    from harness.engines.keras_torch import KerasTorchEngine

    engine = KerasTorchEngine(Cell(model="tiny_cnn", engine="keras-torch"), SETTINGS, {})
    with pytest.raises(RuntimeError) as info:
        engine.raise_oom()
    reason = engine.oom_reason(info.value)
    assert reason is not None and "can't allocate memory" in reason
    assert engine.oom_reason(RuntimeError("something else")) is None


def test_env_lists_backends_with_reasons(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, **blocker(tmp_path, "torch")}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "env", "--json"],
                          capture_output=True, text=True, timeout=300, check=True, env=env)
    engines = json.loads(proc.stdout)["engines"]
    import jax

    assert engines["keras-jax"]["available"] is True
    assert engines["keras-jax"]["reason"].startswith(f"jax {jax.__version__}, keras 3.")
    assert engines["keras-torch"] == {
        "available": False, "framework": "torch",
        "reason": "engine keras-torch: torch is not installed (or not importable); "
                  "pip install 'tfbench[torch]'",
        "description": "Keras 3 on PyTorch: eager (or torch.compile) inference, "
                       "autograd train step"}
