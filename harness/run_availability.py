"""What a run asked for and this machine cannot provide, decided once before the first cell.

The TensorFlow probe (`harness.environment.tensorflow_info_subprocess`, run once per
run for environment.json) already knows each engine's own availability check and the
GPUs TensorFlow sees; the sampler process knows which samplers started. From these the
orchestrator decides which cells cannot run, skips them without starting a worker (a
worker costs seconds of start-up only to find out the same), and prints every
unavailable sampler, engine and device with its reason before the first cell. The
same list goes into environment.json (``unavailable``) for the report's first lines.
No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.config import Cell
from harness.engine_table import ENGINES
from harness.envmodel import Environment, Unavailable


def _tensorflow_device(engine: str) -> bool:
    """Whether the engine's device is TensorFlow's (a GPU cell needs a GPU that TensorFlow
    sees); engines on another framework (keras-jax, keras-torch) decide in the worker."""
    spec = ENGINES.get(engine)
    return spec is not None and spec.framework == "tensorflow"


@dataclass(frozen=True)
class RunAvailability:
    """Cells to skip (config_id -> reason) and what is unavailable, for one run."""

    skip: Mapping[str, str]
    unavailable: tuple[Unavailable, ...]

    def lines(self) -> list[str]:
        return [u.describe() for u in self.unavailable]


def device_reason(cell: Cell, env: Environment) -> str | None:
    """Why the cell's device is missing, or None (available, or not known here)."""
    if not cell.device.startswith("gpu") or not _tensorflow_device(cell.engine):
        return None
    if env.gpus is None:  # the probe failed: the worker decides
        return None
    index = int(cell.device.split(":")[1]) if ":" in cell.device else 0
    if index < len(env.gpus):
        return None
    build = env.tensorflow_build
    cuda = None if build is None else build.is_cuda_build
    what = ("CUDA build, no GPU visible" if cuda and not env.gpus
            else f"built with CUDA: {'yes' if cuda else 'no'}")
    return (f"{cell.device} requested but TensorFlow {env.tensorflow_version or '?'} sees "
            f"{len(env.gpus)} GPU(s) ({what})")


def decide(cells: Sequence[Cell], env: Environment,
           sampler_status: Mapping[str, str]) -> RunAvailability:
    """The run's unavailable pieces and the cells they rule out."""
    skip: dict[str, str] = {}
    engines: dict[str, tuple[str, int]] = {}
    devices: dict[str, tuple[str, int]] = {}
    for cell in cells:
        reasons = []
        dev = device_reason(cell, env)
        if dev is not None:
            reasons.append(dev)
            devices[cell.device] = (dev, devices.get(cell.device, ("", 0))[1] + 1)
        engine = (env.engines_unavailable or {}).get(cell.engine)
        if engine is not None:
            reasons.append(f"engine {cell.engine}: {engine}")
            engines[cell.engine] = (engine, engines.get(cell.engine, ("", 0))[1] + 1)
        if reasons:
            skip[cell.config_id] = "; ".join(reasons)
    unavailable = [Unavailable("sampler", name, status)
                   for name, status in sampler_status.items() if status != "active"]
    unavailable += [Unavailable("engine", n, r, c) for n, (r, c) in engines.items()]
    unavailable += [Unavailable("device", n, r, c) for n, (r, c) in devices.items()]
    return RunAvailability(skip, tuple(unavailable))
