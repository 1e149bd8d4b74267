"""Gates: which metrics a regression check judges, and each one's threshold δ.

Pure (no I/O, no TensorFlow). ``--threshold`` takes one value for every metric
(``5%``) or per-metric values (``step_s=5%,energy_j_per_image=8%,
host_rss_peak_bytes=10%``), optionally mixed (``5%,host_rss_peak_bytes=10%``:
5% unless named). A metric the harness does not know is a `UserError` (exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import UserError


@dataclass(frozen=True)
class GateMetric:
    """A judged quantity: unit, direction, and whether it has one value per step or per run."""

    name: str
    unit: str
    higher_is_better: bool
    per_step: bool
    default_threshold: float


GATE_METRICS: dict[str, GateMetric] = {
    m.name: m for m in (
        GateMetric("step_s", "s", higher_is_better=False, per_step=True,
                   default_threshold=0.05),
        GateMetric("images_per_s", "img/s", higher_is_better=True, per_step=True,
                   default_threshold=0.05),
        GateMetric("energy_j_per_image", "J/img", higher_is_better=False, per_step=False,
                   default_threshold=0.05),
        GateMetric("host_rss_peak_bytes", "B", higher_is_better=False, per_step=False,
                   default_threshold=0.10),
        GateMetric("device_mem_peak_bytes", "B", higher_is_better=False, per_step=False,
                   default_threshold=0.10),
    )
}


def parse_fraction(text: str, name: str, allow_zero: bool = False) -> float:
    """'5%' → 0.05, '0.05' → 0.05; a bare number >= 1 is refused as ambiguous."""
    raw = str(text).strip()
    allowed = "a percentage like 5% or a fraction like 0.05" + (" (>= 0)" if allow_zero
                                                                   else " (> 0)")
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError.invalid(name, text, allowed) from None
    if not raw.endswith("%") and value >= 1:
        raise UserError.invalid(name, text, allowed)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero) or value >= 10:
        raise UserError.invalid(name, text, allowed)
    return value


def parse_thresholds(text: str, option: str = "--threshold") -> dict[str, float]:
    """Thresholds per metric from ``5%`` or ``step_s=5%,host_rss_peak_bytes=10%`` (or both).

    Metrics not named keep the bare value if one was given, else their default
    (5% for time and energy, 10% for memory).
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UserError.invalid(option, text, "5% or metric=δ,... with metrics "
                                + ", ".join(GATE_METRICS))
    common: float | None = None
    named: dict[str, float] = {}
    for part in parts:
        if "=" not in part:
            if common is not None:
                raise UserError(f"{option}: {text!r} gives two values without a metric; "
                                "allowed: one bare value, plus metric=δ for the others")
            common = parse_fraction(part, option)
            continue
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in GATE_METRICS:
            raise UserError.invalid(f"{option} metric", name, GATE_METRICS)
        if name in named:
            raise UserError(f"{option}: metric {name!r} is given twice in {text!r}")
        named[name] = parse_fraction(value, f"{option} {name}")
    return {m.name: named.get(m.name, common if common is not None else m.default_threshold)
            for m in GATE_METRICS.values()}


def describe(thresholds: Mapping[str, float]) -> str:
    """``step_s δ=5%, images_per_s δ=5%, ...`` for reports and logs."""
    return ", ".join(f"{name} δ={thresholds[name] * 100:.3g}%" for name in thresholds)
