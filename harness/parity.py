"""Output parity between an engine and the TensorFlow fp32 reference (pure numpy).

A fast engine that computes something else is not a speed-up: before timing,
each non-reference cell's outputs on fixed inputs are compared with the
reference model's, and the figures go into ``configs.csv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Documented defaults per precision: (max relative error, min cosine similarity).
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "fp32": (1e-3, 0.9999),
    "mixed": (3e-2, 0.999),
    "fp16": (3e-2, 0.999),
    "dynamic": (0.15, 0.98),
    "int8": (0.15, 0.98),
}


def compare_outputs(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """``max_rel_err`` = max |c - r| / max |r|; ``cosine`` over the flattened outputs."""
    r = np.asarray(reference, dtype=np.float64).ravel()
    c = np.asarray(candidate, dtype=np.float64).ravel()
    if r.shape != c.shape:
        raise ValueError(f"output shapes differ: reference {reference.shape}, "
                         f"candidate {candidate.shape}")
    scale = float(np.max(np.abs(r))) or 1.0
    max_rel_err = float(np.max(np.abs(c - r)) / scale)
    denom = float(np.linalg.norm(r) * np.linalg.norm(c))
    if denom > 0:
        cosine = float(np.dot(r, c) / denom)
    else:  # an all-zero output: identical only if both are zero
        cosine = 1.0 if not r.any() and not c.any() else 0.0
    return {"max_rel_err": max_rel_err, "cosine": cosine}


def thresholds(precision: str, options: Mapping[str, Any]) -> tuple[float, float]:
    """Thresholds for a precision, overridable per engine in a profile's engine_options:
    ``parity_max_rel_err`` and ``parity_min_cosine``."""
    rel, cos = DEFAULT_THRESHOLDS[precision]
    return (float(options.get("parity_max_rel_err", rel)),
            float(options.get("parity_min_cosine", cos)))


def parity_columns(reference: np.ndarray, candidate: np.ndarray, precision: str,
                   options: Mapping[str, Any]) -> dict[str, Any]:
    """The configs.csv parity columns for one cell."""
    figures = compare_outputs(reference, candidate)
    max_rel, min_cos = thresholds(precision, options)
    ok = figures["max_rel_err"] <= max_rel and figures["cosine"] >= min_cos
    return {"parity_max_rel_err": figures["max_rel_err"], "parity_cosine": figures["cosine"],
            "parity_ok": ok}
