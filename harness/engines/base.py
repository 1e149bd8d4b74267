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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from harness.config import Cell, RunSettings


@dataclass(frozen=True)
class Availability:
    """Whether an engine, device or sampler can run here, and why not."""

    ok: bool
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
