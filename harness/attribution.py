"""Power, energy and memory of one cell, from the samples taken while it ran.

Pure functions over ``samples.csv`` rows (pandas and numpy only): the mean
power and the energy per image over a cell's measure window, how much to
trust that energy figure (and why not), and the worker's peak resident memory
during the timed phase. Energy is the difference of a cumulative energy counter
(NVML) where the power sampler has one, else the trapezoid integral of the
instantaneous total power over the window, with the power at the window's edges
interpolated between the neighbouring samples; the mean power is that energy
over the window's duration, so the two always agree (``energy_source`` says
which was used). A window that spans fewer than `MIN_INTERVALS` sampling
intervals, or holds fewer than `MIN_SAMPLES` samples, gives an energy figure
marked ``low`` with the reason: never present two samples' worth of power as a
solid number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

MIN_INTERVALS = 10
MIN_SAMPLES = 3
# Which sampler's power_total to use when several wrote one (board total before GPU only).
POWER_PREFERENCE = ("jtop", "tegrastats", "nvml")


def min_measure_duration_s(interval_s: float, intervals: int = MIN_INTERVALS) -> float:
    """The shortest measure window whose energy figure is not marked low-confidence."""
    return intervals * interval_s


def _series(samples: pd.DataFrame, metric: str, sampler: str | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    rows = samples[samples["metric"] == metric]
    if sampler is not None:
        rows = rows[rows["sampler"] == sampler]
    rows = rows.dropna(subset=["t_s", "value"]).sort_values("t_s", kind="stable")
    return rows["t_s"].to_numpy(dtype=float), rows["value"].to_numpy(dtype=float)


def _value_at(t: np.ndarray, v: np.ndarray, at: float) -> tuple[float, bool]:
    """The series at time ``at``: interpolated between neighbours (True), or the nearest (False)."""
    if t[0] <= at <= t[-1]:
        return float(np.interp(at, t, v)), True
    return (float(v[0]) if at < t[0] else float(v[-1])), False


def integrate(t: np.ndarray, v: np.ndarray, start_s: float, end_s: float) -> tuple[float, bool]:
    """Trapezoid integral of a sampled series over [start_s, end_s] and whether both edges were
    bracketed by samples (False: the nearest sample's value was held to reach an edge)."""
    if len(t) == 0:
        raise ValueError("no samples to integrate")
    v_start, ok_start = _value_at(t, v, start_s)
    v_end, ok_end = _value_at(t, v, end_s)
    inside = (t > start_s) & (t < end_s)
    ts = np.concatenate(([start_s], t[inside], [end_s]))
    vs = np.concatenate(([v_start], v[inside], [v_end]))
    area = float(np.sum((ts[1:] - ts[:-1]) * (vs[1:] + vs[:-1]) / 2.0))
    return area, ok_start and ok_end


def power_sampler(samples: pd.DataFrame) -> str | None:
    """The sampler whose ``power_total`` a cell's power and energy come from (board total
    before GPU only), or None when no sampler wrote power."""
    if samples.empty:
        return None
    names = list(dict.fromkeys(samples.loc[samples["metric"] == "power_total", "sampler"]
                               .dropna().astype(str)))
    for preferred in POWER_PREFERENCE:
        if preferred in names:
            return preferred
    return names[0] if names else None


def sample_interval_s(samples: pd.DataFrame, sampler: str) -> float | None:
    """The median gap between one sampler's ``power_total`` samples: the interval actually
    sampled at; None when fewer than two samples leave nothing to measure."""
    t, _ = _series(samples, "power_total", sampler)
    gaps = np.diff(t)
    return float(np.median(gaps)) if len(gaps) else None


def counter_covers(samples: pd.DataFrame, sampler: str, start_s: float, end_s: float) -> bool:
    """Whether the sampler's cumulative ``energy_counter`` brackets the window."""
    tc, _ = _series(samples, "energy_counter", sampler)
    return len(tc) >= 2 and tc[0] <= start_s and tc[-1] >= end_s


def attribute(samples: pd.DataFrame, config_id: str, start_s: float, end_s: float,
              images: int, interval_s: float | None, *, use_counter: bool = True
              ) -> dict[str, Any]:
    """``power_w_mean``, ``energy_j_per_image``, ``energy_source``, ``energy_confidence``,
    ``energy_reason``, ``power_samples``, ``host_rss_peak_bytes`` and ``host_rss_peak_reason``
    of one measure window of a cell (configs.csv names); None where there is no data.

    Power and energy come from one source, so that ``energy_j_per_image * images ==
    power_w_mean * (end_s - start_s)``: the energy counter's difference over the window
    where the power sampler has one that brackets it (and ``use_counter``), else the
    trapezoid of sampled power. ``interval_s`` is the measured sampling interval; None
    (not measurable) marks the energy ``low``, with the reason. The RSS peak is the
    largest ``rss`` sample of this cell inside the window: the timed phase only, not the
    model build or the parity reference before it.
    """
    if not end_s > start_s:
        raise ValueError(f"measure window [{start_s}, {end_s}] is empty")
    out: dict[str, Any] = {"power_w_mean": None, "energy_j_per_image": None,
                           "energy_source": None, "energy_confidence": None,
                           "energy_reason": None, "power_samples": None,
                           "host_rss_peak_bytes": None, "host_rss_peak_reason": None}
    duration = end_s - start_s
    if samples.empty:
        out["host_rss_peak_reason"] = "no samples in this run"
        out["energy_reason"] = "no samples in this run"
        return out
    cell_rows = samples[samples["config_id"].fillna("").astype(str) == config_id]
    rss_rows = cell_rows[cell_rows["metric"] == "rss"]
    t_rss = pd.to_numeric(rss_rows["t_s"], errors="coerce")
    rss = pd.to_numeric(rss_rows["value"], errors="coerce")[(t_rss >= start_s) & (t_rss <= end_s)]
    if rss.notna().any():
        out["host_rss_peak_bytes"] = int(rss.max())
    elif rss_rows.empty:
        out["host_rss_peak_reason"] = "no rss sample of this cell (the psutil sampler did not run)"
    else:
        out["host_rss_peak_reason"] = (
            f"no rss sample inside the {duration:.3g} s measure window "
            f"(samples of this cell: {len(rss_rows)}, outside it)")

    sampler = power_sampler(samples)
    if sampler is None:
        out["energy_reason"] = "no power sampler in this run"
        return out
    t, p = _series(samples, "power_total", sampler)
    if len(t) == 0:
        out["energy_reason"] = f"{sampler} wrote no power values"
        return out
    count = int(np.count_nonzero((t >= start_s) & (t <= end_s)))
    if use_counter and counter_covers(samples, sampler, start_s, end_s):
        tc, counter = _series(samples, "energy_counter", sampler)
        joules = float(np.interp(end_s, tc, counter) - np.interp(start_s, tc, counter))
        bracketed = True
        out["energy_source"] = "counter"
    else:
        joules, bracketed = integrate(t, p, start_s, end_s)
        out["energy_source"] = "trapezoid"
    out["power_w_mean"] = joules / duration
    out["power_samples"] = count
    if images > 0:
        out["energy_j_per_image"] = joules / images
    reasons = []
    if not bracketed:
        reasons.append("the window is not bracketed by power samples (an edge value was held)")
    if count < MIN_SAMPLES:
        reasons.append(f"{count} power samples inside the window (fewer than {MIN_SAMPLES})")
    if interval_s is None:
        reasons.append(f"the sampling interval of {sampler} could not be measured "
                       "(fewer than two power samples in the run)")
    elif duration < min_measure_duration_s(interval_s):
        reasons.append(f"the {duration:.3g} s window spans fewer than {MIN_INTERVALS} sampling "
                       f"intervals of {interval_s:.3g} s")
    out["energy_confidence"] = "low" if reasons else "ok"
    out["energy_reason"] = "; ".join(reasons) or None
    return out


def combine_attributions(parts: Sequence[dict[str, Any]],
                         windows: Sequence[tuple[float, float, int]]) -> dict[str, Any]:
    """Merge per-block attributions: energy summed over images, power = total energy over
    total measured time (so energy x images = power x time holds for the cell too)."""
    if len(parts) == 1:
        return dict(parts[0])
    merged: dict[str, Any] = {"energy_j_per_image": None, "power_w_mean": None,
                              "energy_confidence": None}
    images = [w[2] for w in windows]
    spans = [w[1] - w[0] for w in windows]
    energies = [_number(p.get("energy_j_per_image")) for p in parts]
    powers = [_number(p.get("power_w_mean")) for p in parts]
    if None not in energies:
        total = sum(e * n for e, n in zip(energies, images, strict=True) if e is not None)
        merged["energy_j_per_image"] = total / sum(images)
    if None not in powers:
        joules = sum(p * d for p, d in zip(powers, spans, strict=True) if p is not None)
        merged["power_w_mean"] = joules / sum(spans)
    sources = {p.get("energy_source") for p in parts} - {None}
    if len(sources) > 1:
        raise ValueError(f"blocks of one cell attributed from different sources {sources}")
    merged["energy_source"] = sources.pop() if sources else None
    confidences = [p.get("energy_confidence") for p in parts]
    if any(c is not None for c in confidences):
        merged["energy_confidence"] = "low" if "low" in confidences else "ok"
    merged["energy_reason"] = _join_reasons(parts, "energy_reason")
    counts = [int(p["power_samples"]) for p in parts if p.get("power_samples") is not None]
    merged["power_samples"] = sum(counts) if counts else None
    rss = [int(p["host_rss_peak_bytes"]) for p in parts
           if p.get("host_rss_peak_bytes") is not None]
    merged["host_rss_peak_bytes"] = max(rss) if rss else None
    merged["host_rss_peak_reason"] = None if rss else _join_reasons(parts, "host_rss_peak_reason")
    return merged


def _join_reasons(parts: Sequence[dict[str, Any]], key: str) -> str | None:
    """The blocks' distinct reasons, each prefixed with its block(s)."""
    by_reason: dict[str, list[int]] = {}
    for b, part in enumerate(parts):
        if part.get(key):
            by_reason.setdefault(str(part[key]), []).append(b)
    if not by_reason:
        return None
    return "; ".join(f"block {','.join(map(str, bs))}: {r}" for r, bs in by_reason.items())


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None
