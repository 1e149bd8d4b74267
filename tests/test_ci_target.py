"""The confidence-target flag and its likely cause, from step series made here."""

from __future__ import annotations

import re

import numpy as np

from harness.ci_target import LoadFigures, ci_target_met, describe_miss, miss_cause


def test_target_met_only_when_a_target_was_set() -> None:
    assert ci_target_met(1.0, 0.98, 1.02, 0.03) is True
    assert ci_target_met(1.0, 0.96, 1.09, 0.03) is False  # -4%/+9%: half-width 6.5%
    assert ci_target_met(1.0, 0.96, 1.09, None) is None  # no target asked for
    assert ci_target_met(None, None, None, 0.03) is None


def test_a_level_shift_reads_as_drift() -> None:
    rng = np.random.default_rng(0)
    steps = np.r_[rng.normal(1.0, 0.01, 100), rng.normal(1.2, 0.01, 100)]
    cause = miss_cause(steps, 0.9)
    assert re.fullmatch(r"drift: a level shift at measured step 10\d, 20% slower after it",
                        cause), cause


def test_recorded_load_names_the_busy_cores() -> None:
    rng = np.random.default_rng(2)
    steps = rng.lognormal(0, 0.3, 200)
    busy = miss_cause(steps, 0.1, LoadFigures(1.4, 3.2, 2))
    assert busy == "load: other processes kept 1.40 of 2 cores busy, load average 3.2"
    quiet = miss_cause(steps, 0.1, LoadFigures(0.05, 0.4, 2))
    assert quiet.startswith("not load: other processes used only 0.05 of 2 cores")
    assert "noisy steps" in quiet and "not recorded" not in quiet


def test_slow_fluctuation_without_figures_reads_as_load_likely() -> None:
    rng = np.random.default_rng(1)
    steps = 1.0 + 0.2 * np.sin(np.arange(400) * 2 * np.pi / 40) ** 2 + rng.normal(0, 0.01, 400)
    cause = miss_cause(steps, 0.8)
    assert cause.startswith("slowly varying steps") and "load figures not recorded" in cause
    iid = np.random.default_rng(3).lognormal(0, 0.3, 400)
    assert miss_cause(iid, 0.0).startswith("noisy steps")


def test_describe_miss_gives_the_asymmetric_ci() -> None:
    assert describe_miss(1.0, 0.96, 1.09, 0.03, 1000, "x") == \
        "CI -4%/+9% missed the ±3% target after 1000 measured steps (x)"
