"""The engine protocol: the one boundary between the harness and a framework.

An engine is created per cell inside a worker process. The harness asks it
whether it can run here (`availability`), lets it convert and build
(`prepare`, timed apart as ``convert_s`` and ``build_s``), then drives
`adapt_input` / `step` / `finish` through the timing loop, and asks for
`predict` on fixed inputs to check output parity with the TensorFlow fp32
reference. `close` frees what it holds.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from harness.availability import Availability
from harness.config import Cell, RunSettings
from harness.errors import UserError

# Engine options every engine accepts: parity thresholds (harness.parity) and the number
# of images drawn from the cell's data for calibration (int8; harness.worker).
COMMON_OPTIONS = ("parity_max_rel_err", "parity_min_cosine", "calibration_samples")
DEFAULT_CALIBRATION_SAMPLES = 64




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

    def __init__(self, cell: Cell, settings: RunSettings, options: Mapping[str, Any]) -> None:
        self.cell = cell
        self.settings = settings
        self.options = dict(options)

    @classmethod
    def availability(cls, cell: Cell, options: Mapping[str, Any]) -> Availability:
        """Cheap check, run before any model is built. Default: available."""
        return Availability(True)

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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free engine resources."""


def check_option_keys(engine: str, options: Mapping[str, Any],
                      allowed: Sequence[str]) -> None:
    """Refuse an unknown key in a profile's ``[engine_options.<engine>]`` table."""
    for key in options:
        if key not in allowed:
            raise UserError.invalid(f"engine_options.{engine} key", key, allowed)


def int_option(engine: str, options: Mapping[str, Any], key: str, default: int,
               lowest: int, allowed: str) -> int:
    """An integer engine option >= ``lowest`` (booleans refused), or its default."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise UserError.invalid(f"engine_options.{engine}.{key}", value, allowed)
    return value


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
