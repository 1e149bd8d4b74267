"""The tf fp32 reference for parity: built by the reference engine (``tf``).

For engines whose model TensorFlow builds (tf, xla, tftrt, litert, onnxruntime)
the reference is built in the worker's own process. Keras 3 binds one backend
per process, so for ``keras-jax`` and ``keras-torch`` it is built by a child
process with ``KERAS_BACKEND=tensorflow`` on the CPU (``CUDA_VISIBLE_DEVICES=""``,
so TensorFlow takes no GPU memory from the measured framework and adds nothing
to the worker's memory). Its weights are copied into the cell's model, so parity
compares the same function. Where TensorFlow cannot be imported, parity is not
available and the reason says why.

Run as ``python -m harness.reference SPEC.json IMAGES.npy OUT.npz``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Cell, RunSettings

NOT_IMPORTABLE = 3  # the child's exit code when TensorFlow cannot be imported


@dataclass
class Reference:
    """The tf fp32 model's weights and its outputs on the parity images."""

    weights: list[np.ndarray]
    outputs: np.ndarray


def build_reference(cell: Cell, settings: RunSettings, classes: int,
                    images: np.ndarray) -> Reference:
    """Build the tf fp32 inference model of ``cell`` in this process (Keras on the
    TensorFlow backend), seeded as the ``tf`` engine's cell is, and run it."""
    import keras

    from harness.workloads import build_workload

    keras.utils.set_random_seed(settings.seed)
    workload = build_workload(replace(cell, engine="tf", precision="fp32", mode="infer",
                                      base="", learning_rate=None), settings, classes,
                              mixed=False)
    outputs = np.asarray(workload.model.predict_on_batch(images), dtype=np.float32)
    return Reference(weights=workload.model.get_weights(), outputs=outputs)


def reference_in_child(cell: Cell, settings: RunSettings, classes: int,
                       images: np.ndarray, timeout_s: float) -> Reference | str:
    """The reference from a child process, or the reason it is not available (TensorFlow
    not importable). Any other failure of the child is an error."""
    from harness.worker import settings_to_dict

    with tempfile.TemporaryDirectory(prefix="tfbench-reference-") as tmp:
        folder = Path(tmp)
        spec = {"cell": cell.factors(), "settings": settings_to_dict(settings),
                "classes": classes}
        (folder / "spec.json").write_text(json.dumps(spec))
        np.save(folder / "images.npy", images)
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "",
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("JAX_PLATFORMS", None)
        proc = subprocess.run(
            [sys.executable, "-m", "harness.reference", str(folder / "spec.json"),
             str(folder / "images.npy"), str(folder / "out.npz")],
            capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
        last = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode == NOT_IMPORTABLE:
            return f"no tf fp32 reference: TensorFlow is not importable here ({last})"
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or [""])[-1]
            raise RuntimeError(f"the tf fp32 reference process failed "
                               f"(exit {proc.returncode}): {tail}")
        with np.load(folder / "out.npz") as data:
            count = int(data["count"])
            return Reference(weights=[data[f"w{i}"] for i in range(count)],
                             outputs=data["outputs"])


def main(argv: list[str]) -> int:
    spec_path, images_path, out_path = (Path(a) for a in argv)
    try:
        import tensorflow as tf
    except ImportError as exc:
        print(f"{type(exc).__name__}: {exc}")
        return NOT_IMPORTABLE
    tf.config.set_visible_devices([], "GPU")
    from harness.worker import settings_from_dict

    spec = json.loads(spec_path.read_text())
    cell = Cell.from_factors(spec["cell"])
    settings = settings_from_dict(spec["settings"])
    ref = build_reference(cell, settings, int(spec["classes"]), np.load(images_path))
    arrays: dict[str, Any] = {f"w{i}": w for i, w in enumerate(ref.weights)}
    np.savez(out_path, outputs=ref.outputs, count=len(ref.weights), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
