"""Power, energy and memory of one cell, from the samples taken while it ran.

Pure functions over ``samples.csv`` rows (pandas and numpy only): the mean
power and the energy per image over a cell's measure window, how much to
trust that energy figure, and the worker's peak resident memory. Energy is the
trapezoid integral of the instantaneous total power over the window, with the
power at the window's edges interpolated between the neighbouring samples, or
the difference of a cumulative energy counter (NVML) where the power sampler
has one. A window that spans fewer than `MIN_INTERVALS` sampling intervals, or
holds fewer than `MIN_SAMPLES` samples, gives an energy figure marked ``low``:
never present two samples' worth of power as a solid number.
"""

from __future__ import annotations

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


def _power_sampler(samples: pd.DataFrame) -> str | None:
    names = list(dict.fromkeys(samples.loc[samples["metric"] == "power_total", "sampler"]
                               .dropna().astype(str)))
    for preferred in POWER_PREFERENCE:
        if preferred in names:
            return preferred
    return names[0] if names else None


def attribute(samples: pd.DataFrame, config_id: str, start_s: float, end_s: float,
              images: int, interval_s: float) -> dict[str, Any]:
    """``power_w_mean``, ``energy_j_per_image``, ``energy_confidence``, ``power_samples`` and
    ``host_rss_peak_bytes`` of one cell (configs.csv names); None where there is no data."""
    if not end_s > start_s:
        raise ValueError(f"measure window [{start_s}, {end_s}] is empty")
    out: dict[str, Any] = {"power_w_mean": None, "energy_j_per_image": None,
                           "energy_confidence": None, "power_samples": None,
                           "host_rss_peak_bytes": None}
    if samples.empty:
        return out
    cell_rows = samples[samples["config_id"].fillna("").astype(str) == config_id]
    rss = pd.to_numeric(cell_rows.loc[cell_rows["metric"] == "rss", "value"], errors="coerce")
    if rss.notna().any():
        out["host_rss_peak_bytes"] = int(rss.max())

    sampler = _power_sampler(samples)
    if sampler is None:
        return out
    t, p = _series(samples, "power_total", sampler)
    if len(t) == 0:
        return out
    duration = end_s - start_s
    joules, bracketed = integrate(t, p, start_s, end_s)
    count = int(np.count_nonzero((t >= start_s) & (t <= end_s)))
    out["power_w_mean"] = joules / duration
    out["power_samples"] = count
    tc, counter = _series(samples, "energy_counter", sampler)
    if len(tc) >= 2 and tc[0] <= start_s and tc[-1] >= end_s:
        joules = float(np.interp(end_s, tc, counter) - np.interp(start_s, tc, counter))
    if images > 0:
        out["energy_j_per_image"] = joules / images
    solid = (bracketed and count >= MIN_SAMPLES
             and duration >= min_measure_duration_s(interval_s))
    out["energy_confidence"] = "ok" if solid else "low"
    return out
