"""What the Keras-3-on-another-backend engines (``keras-jax``, ``keras-torch``) share.

The worker sets ``KERAS_BACKEND`` before anything imports Keras (one process per
cell), so the same workload builders (`harness.workloads`), the same random-weight
BatchNorm calibration and the same logits head build the model on JAX or PyTorch.
Input is numpy: synthetic batches come from the same seeded generator the ``tf``
engine uses (so every engine sees the same images); an image folder is read by
tf.data with TensorFlow kept off the GPUs, and needs TensorFlow. The weights are
copied from the tf fp32 reference model, so parity compares the same function.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from harness.availability import Availability
from harness.config import Cell
from harness.engine_table import ENGINES


def importable(package: str) -> bool:
    """Whether ``package`` can be imported here (False when it is missing or blocked)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules[package] is None
        return False


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def backend_availability(cell: Cell, framework: str) -> Availability:
    """Not ok when the backend's package or Keras 3 is missing, or when an image folder
    needs TensorFlow (tf.data) and TensorFlow cannot be imported."""
    spec = ENGINES[cell.engine]
    if not importable(framework):
        return Availability(False, f"{framework} is not installed (or not importable); "
                                   f"pip install 'tfbench[{spec.extra}]'")
    keras_version = package_version("keras")
    if keras_version is None or int(keras_version.split(".")[0]) < 3:
        return Availability(False, f"Keras 3 is needed for the {spec.keras_backend} backend "
                                   f"(installed: {keras_version or 'none'})")
    if cell.data != "synthetic" and not importable("tensorflow"):
        return Availability(False, "an image-folder input is read by tf.data, and TensorFlow "
                                   "is not importable here; use data = synthetic")
    return Availability(True, f"{framework} {package_version(framework)}, keras {keras_version}")


class NumpySource:
    """Endless (images, labels) numpy batches of one fixed shape (a BatchSource)."""

    def __init__(self, iterator: Iterator[tuple[Any, Any]], num_classes: int,
                 synthetic: bool) -> None:
        self.iterator = iterator
        self.num_classes = num_classes
        self.synthetic = synthetic

    def next(self) -> tuple[Any, Any]:
        return next(self.iterator)


def numpy_source(cell: Cell, classes: int, seed: int) -> NumpySource:
    """The cell's input as numpy arrays, without TensorFlow for synthetic data."""
    from harness.data import synthetic_arrays

    if cell.data == "synthetic":
        batches = synthetic_arrays(cell.batch_size, cell.input_size, classes, seed)

        def cycle() -> Iterator[tuple[Any, Any]]:
            while True:
                yield from batches

        return NumpySource(cycle(), classes, synthetic=True)
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")  # tf.data only; the GPU belongs to the backend
    from harness.data import make_source

    source = make_source(cell.data, cell.batch_size, cell.input_size, classes, seed)

    def to_numpy() -> Iterator[tuple[Any, Any]]:
        while True:
            x, y = source.next()
            yield x.numpy(), y.numpy()

    return NumpySource(to_numpy(), source.num_classes, synthetic=False)

