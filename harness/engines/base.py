"""The engine protocol: the one boundary between the harness and a framework.

An engine is created per cell inside a worker process, and the worker talks to
its framework only through it. Before the framework initialises, the worker
asks the engine class to make only the cell's device visible (`select_device`)
and whether it can run here (`availability`). It then lets the engine build
the cell's input (`input_source`) and model (`build`), convert and compile
(`prepare`, timed apart as ``convert_s`` and ``build_s``), drives `adapt_input`
/ `step` / `finish` through the timing loop, asks for `predict` on fixed inputs
to check output parity with the TensorFlow fp32 reference, and reads the device
memory peak (`reset_memory_peak`, `memory_peak`), the device used
(`device_used`) and whether an error is the framework's out-of-memory error
(`oom_reason`). `close` frees what it holds.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from harness.availability import Availability
from harness.config import Cell, RunSettings
from harness.engine_table import ENGINES

# Images drawn from the cell's data for int8 calibration when the engine option
# ``calibration_samples`` is not set (harness.worker).
DEFAULT_CALIBRATION_SAMPLES = 64


@dataclass(frozen=True)
class DeviceMemory:
    """The device memory peak an engine measured, or why it has none."""

    peak_bytes: int | None
    reason: str = ""


@dataclass
class PrepareInfo:
    """What preparing an engine cost and produced."""

    convert_s: float | None = None
    build_s: float | None = None
    xla: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class Engine(abc.ABC):
    """One way of running a cell's model."""

    name: ClassVar[str]

    @classmethod
    def framework(cls) -> str:
        """The package that runs this engine's model (``tensorflow``, ``jax``, ``torch``)."""
        return ENGINES[cls.name].framework

    @classmethod
    @abc.abstractmethod
    def select_device(cls, device: str, settings: RunSettings) -> Availability:
        """Make only ``device`` visible to the framework and set its thread counts; runs
        before the framework initialises. Not ok (with the reason) when the device is
        not there."""

    def __init__(self, cell: Cell, settings: RunSettings, options: Mapping[str, Any]) -> None:
        self.cell = cell
        self.settings = settings
        self.options = dict(options)

    @classmethod
    def availability(cls, cell: Cell, options: Mapping[str, Any]) -> Availability:
        """Cheap check, run before any model is built. Default: available."""
        return Availability(True)

    @abc.abstractmethod
    def input_source(self, classes: int) -> Any:
        """The cell's endless batches (a `harness.data.BatchSource`) in this framework's
        types; ``classes`` is the head's class count."""

    def build(self, classes: int) -> Any:
        """The cell's Keras model (`harness.workloads.Workload`), seeded, random-weight
        BatchNorm statistics calibrated, with the logits head."""
        import keras

        from harness.workloads import build_workload

        keras.utils.set_random_seed(self.settings.seed)
        return build_workload(self.cell, self.settings, classes)

    @abc.abstractmethod
    def prepare(self, workload: Any, example: tuple[Any, Any], calibration: Any) -> PrepareInfo:
        """Convert/compile the workload's model; ``calibration`` yields numpy image batches."""

    def adapt_input(self, batch: tuple[Any, Any]) -> Any:
        """Turn a (images, labels) batch of TF tensors into what `step` takes."""
        return batch

    @abc.abstractmethod
    def step(self, batch: Any) -> Any:
        """Launch one training or inference step; may return before the work is done."""

    @abc.abstractmethod
    def finish(self, result: Any) -> float | None:
        """Block until the step's result is on the host; return the loss (train) or None."""

    @abc.abstractmethod
    def predict(self, images: np.ndarray) -> np.ndarray:
        """Model outputs (float32, host) for fixed images, for the parity check."""

    def synchronize(self) -> None:  # noqa: B027 - optional hook
        """Wait until all work launched on the device is done (default: nothing queued)."""

    @abc.abstractmethod
    def reset_memory_peak(self) -> None:
        """Start the device memory peak afresh (called just before the timed phase)."""

    @abc.abstractmethod
    def memory_peak(self) -> DeviceMemory:
        """The framework's own device memory peak since `reset_memory_peak`, or why not."""

    @abc.abstractmethod
    def oom_reason(self, exc: BaseException) -> str | None:
        """A one-line reason when ``exc`` is this framework's out-of-memory error."""

    @abc.abstractmethod
    def raise_oom(self) -> Any:
        """Make this framework's allocator fail for real (``TFBENCH_FAULT=oom``)."""

    @abc.abstractmethod
    def device_used(self) -> str:
        """The device the framework actually runs the model on (e.g. /device:CPU:0)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free engine resources."""


def option(options: Mapping[str, Any], engine: str, key: str, default: Any) -> Any:
    """An engine option (already validated by `RunSettings` against the engine table),
    or its default."""
    if key not in ENGINES[engine].all_options:
        raise KeyError(f"{key!r} is not an option of engine {engine} in the engine table")
    return options.get(key, default)


def cpu_count() -> int:
    """CPU cores this process may use (affinity-aware): the default thread count for
    interpreters that would otherwise use one thread."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_in_batches(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                   batch_size: int) -> np.ndarray:
    """Run a fixed-batch-shape model over any number of images: chunks of ``batch_size``,
    the last one zero-padded, the padding's outputs dropped. Used by `predict` of engines
    whose converted model has a fixed batch dimension."""
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        n = len(chunk)
        if n < batch_size:
            pad = np.zeros((batch_size - n, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        outputs.append(np.asarray(run(chunk))[:n])
    return np.concatenate(outputs).astype(np.float32)
