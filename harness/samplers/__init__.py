"""Telemetry samplers: the protocol every sampler follows and the registry of names.

A sampler reads one family of sensors (process memory and CPU, Jetson power
rails, NVML) and returns `Reading` values in SI units; the sampler process
(`harness.samplers.host`) stamps them with the run's shared monotonic clock and
the active cell, and writes ``samples.csv``. Nothing here imports TensorFlow,
jtop or NVML at module level: `available_samplers` is cheap and safe to call
from ``tfbench env``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from harness.availability import Availability
from harness.errors import UserError

SAMPLER_NAMES = ("psutil", "jtop", "tegrastats", "nvml")
_MODULES = {
    "psutil": ("harness.samplers.psutil", "PsutilSampler"),
    "jtop": ("harness.samplers.jtop", "JtopSampler"),
    "tegrastats": ("harness.samplers.tegrastats", "TegrastatsSampler"),
    "nvml": ("harness.samplers.nvml", "NvmlSampler"),
}




@dataclass(frozen=True)
class Reading:
    """One sensor value in SI units.

    ``t_ns`` is the `time.perf_counter_ns` at which the value was observed when
    the sampler knows it better than the host (a stream that delivers samples
    on its own schedule); otherwise the host stamps the time of `read`.
    """

    metric: str
    unit: str
    value: float
    t_ns: int | None = None


@runtime_checkable
class Sampler(Protocol):
    """What the sampler process needs from every sampler."""

    name: str
    default_interval_s: float

    def availability(self) -> Availability:
        """Cheap check (no connection that changes state, no TensorFlow)."""
        ...

    def open(self, interval_s: float) -> None:
        """Start reading; raise `SamplerUnavailable` with the reason when it cannot."""
        ...

    def read(self) -> list[Reading]:
        """Readings since the previous call (polling samplers take one now)."""
        ...

    def set_pid(self, pid: int | None) -> None:
        """The worker process of the active cell (None between cells)."""
        ...

    def problems(self) -> list[str]:
        """Non-fatal problems since the last call (the first malformed line...), reported once."""
        ...

    def close(self) -> None:
        ...


class SamplerUnavailable(Exception):
    """A sampler cannot run here; the message is the reason shown to the user."""


def make_sampler(name: str) -> Sampler:
    """A new sampler object by registry name."""
    if name not in _MODULES:
        raise UserError.invalid("samplers", name, SAMPLER_NAMES)
    module_name, class_name = _MODULES[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    sampler: Sampler = cls()
    return sampler


def parse_sampler_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """Validate a ``--samplers`` value: names, ``all`` or ``none``; returns the names."""
    raw = value.split(",") if isinstance(value, str) else list(value)
    for item in raw:
        if not isinstance(item, str):
            raise UserError.invalid("samplers", item, (*SAMPLER_NAMES, "all", "none"))
    items = [v for v in (v.strip() for v in raw) if v]
    for word in ("none", "all"):
        if word in items and len(items) > 1:
            raise UserError(f"samplers: {','.join(items)!r} makes no sense: {word!r} cannot "
                            "be combined with other samplers; allowed: a list of "
                            f"{', '.join(SAMPLER_NAMES)}, or all, or none")
    if items in (["none"], []):
        return ()
    if items == ["all"]:
        return SAMPLER_NAMES
    for item in items:
        if item not in SAMPLER_NAMES:
            raise UserError.invalid("samplers", item, (*SAMPLER_NAMES, "all", "none"))
    return tuple(dict.fromkeys(items))


def available_samplers(names: Sequence[str] = SAMPLER_NAMES) -> dict[str, Availability]:
    """Each sampler's availability here, with the reason when it is not (for ``tfbench env``)."""
    out: dict[str, Availability] = {}
    for name in names:
        try:
            out[name] = make_sampler(name).availability()
        except ImportError as exc:
            out[name] = Availability(False, f"{type(exc).__name__}: {exc}")
    return out
