"""Attribution of power, energy and RSS to a cell, checked against numbers worked by hand."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.attribution import attribute, integrate, min_measure_duration_s
from harness.records import SAMPLES_FILE, RunFiles, read_table


def frame(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    """(config_id, sampler, metric, t_s, value) rows as samples.csv would hold them."""
    return pd.DataFrame(
        [{"run_id": "r", "config_id": c, "sampler": s, "metric": m,
          "unit": "W", "t_s": t, "value": v} for c, s, m, t, v in rows])


def power(values: dict[float, float], sampler: str = "jtop", config_id: str = "a"
          ) -> list[tuple[str, str, str, float, float]]:
    return [(config_id, sampler, "power_total", t, v) for t, v in values.items()]


def test_constant_power_over_ten_intervals_is_solid() -> None:
    samples = frame(power({float(t): 5.0 for t in range(21)}))
    got = attribute(samples, "a", 2.5, 12.5, 100, 1.0)
    # 5 W for 10 s = 50 J over 100 images; samples at t = 3..12 lie inside.
    assert got["energy_j_per_image"] == pytest.approx(0.5)
    assert got["power_w_mean"] == pytest.approx(5.0)
    assert got["power_samples"] == 10
    assert got["energy_confidence"] == "ok"


def test_step_from_5_to_10_watts_by_trapezoid() -> None:
    trace = {float(t): (5.0 if t <= 10 else 10.0) for t in range(21)}
    got = attribute(frame(power(trace)), "a", 8.0, 13.0, 15, 1.0)
    # 8..10 at 5 W = 10 J; 10..11 ramps 5 -> 10 W = 7.5 J; 11..13 at 10 W = 20 J: 37.5 J.
    assert got["energy_j_per_image"] == pytest.approx(37.5 / 15)
    assert got["power_w_mean"] == pytest.approx(37.5 / 5)
    assert got["power_samples"] == 6
    # 5 s is only 5 sampling intervals: the figure is kept but marked low.
    assert got["energy_confidence"] == "low"


def test_window_edges_are_interpolated_between_neighbours() -> None:
    got = attribute(frame(power({0.0: 0.0, 10.0: 10.0})), "a", 2.0, 6.0, 4, 0.1)
    # The power rises linearly, 2 W at t=2 and 6 W at t=6: (2 + 6) / 2 * 4 s = 16 J.
    assert got["energy_j_per_image"] == pytest.approx(4.0)
    assert got["power_w_mean"] == pytest.approx(4.0)
    assert got["power_samples"] == 0
    assert got["energy_confidence"] == "low"


def test_unbracketed_window_is_low_confidence_even_with_many_samples() -> None:
    samples = frame(power({5.0 + 0.1 * i: 3.0 for i in range(200)}))
    got = attribute(samples, "a", 4.0, 20.0, 10, 0.1)
    # The first sample at 5 s is held back to 4 s: 3 W x 16 s.
    assert got["energy_j_per_image"] == pytest.approx(4.8)
    assert got["energy_confidence"] == "low"


def nvml_rows() -> list[tuple[str, str, str, float, float]]:
    """NVML as it reports a GPU whose 1 s-averaged power (100 W) lags its counter (90 W)."""
    rows = power({float(t): 100.0 for t in range(11)}, sampler="nvml")
    rows += [("a", "nvml", "energy_counter", float(t), 1000.0 + 90.0 * t) for t in range(11)]
    return rows


def test_energy_counter_gives_both_energy_and_power() -> None:
    got = attribute(frame(nvml_rows()), "a", 2.0, 7.0, 9, 1.0)
    # Counter: (1000 + 630) - (1000 + 180) = 450 J, not the 500 J of the power integral,
    # and the mean power is that energy over the 5 s window: 90 W, not the sampled 100 W.
    assert got["energy_source"] == "counter"
    assert got["energy_j_per_image"] == pytest.approx(50.0)
    assert got["power_w_mean"] == pytest.approx(90.0)
    assert got["energy_j_per_image"] * 9 == pytest.approx(got["power_w_mean"] * 5.0)
    assert got["power_samples"] == 6
    assert got["energy_confidence"] == "low"  # 5 s is 5 intervals of 1 s
    assert "fewer than 10 sampling intervals of 1 s" in got["energy_reason"]


def test_without_a_counter_both_come_from_the_trapezoid() -> None:
    got = attribute(frame(nvml_rows()), "a", 2.0, 7.0, 9, 0.5, use_counter=False)
    assert got["energy_source"] == "trapezoid"
    assert got["power_w_mean"] == pytest.approx(100.0)
    assert got["energy_j_per_image"] * 9 == pytest.approx(got["power_w_mean"] * 5.0)
    rows = [r for r in nvml_rows() if r[2] != "energy_counter" or r[3] >= 3.0]
    short = attribute(frame(rows), "a", 2.0, 7.0, 9, 0.5)  # counter starts after the window
    assert short["energy_source"] == "trapezoid"
    assert short["power_w_mean"] == pytest.approx(100.0)


def test_energy_equals_power_times_time_over_images_across_blocks() -> None:
    from harness.orchestrator import combine_attributions

    rows = power({float(t): (5.0 if t < 10 else 20.0) for t in range(31)})
    windows = [(1.0, 9.0, 40), (12.0, 28.0, 24)]
    parts = [attribute(frame(rows), "a", s, e, n, 1.0) for s, e, n in windows]
    cell = combine_attributions(parts, windows)
    measured_s = sum(e - s for s, e, _ in windows)
    assert cell["energy_source"] == "trapezoid"
    assert cell["energy_j_per_image"] * 64 == pytest.approx(cell["power_w_mean"] * measured_s)
    assert cell["energy_j_per_image"] == pytest.approx((5.0 * 8 + 20.0 * 16) / 64)


def test_an_unmeasurable_interval_is_low_with_its_reason_never_a_default() -> None:
    got = attribute(frame(power({float(t): 5.0 for t in range(21)})), "a", 2.5, 12.5, 100, None)
    assert got["energy_confidence"] == "low"
    assert "sampling interval of jtop could not be measured" in got["energy_reason"]


def test_sample_interval_is_the_power_samplers_own() -> None:
    from harness.attribution import power_sampler, sample_interval_s

    rows = power({0.5 * t: 5.0 for t in range(9)}, sampler="jtop")
    rows += [("a", "psutil", "rss", 0.01 * t, 1e8) for t in range(100)]
    samples = frame(rows)
    assert power_sampler(samples) == "jtop"
    assert sample_interval_s(samples, "jtop") == pytest.approx(0.5)
    assert sample_interval_s(frame(power({1.0: 5.0})), "jtop") is None


def test_power_samples_zero_is_a_count_and_none_is_no_sampler() -> None:
    from harness.orchestrator import combine_attributions

    windows = [(2.0, 3.0, 1), (6.0, 7.0, 1)]
    sparse = frame(power({0.0: 1.0, 10.0: 1.0}))
    parts = [attribute(sparse, "a", s, e, n, 10.0) for s, e, n in windows]
    assert [p["power_samples"] for p in parts] == [0, 0]
    assert combine_attributions(parts, windows)["power_samples"] == 0
    none = frame([("a", "psutil", "ram_used", 1.0, 5e9)])
    parts = [attribute(none, "a", s, e, n, 0.1) for s, e, n in windows]
    merged = combine_attributions(parts, windows)
    assert merged["power_samples"] is None
    assert merged["energy_source"] is None and merged["power_w_mean"] is None
    assert merged["energy_reason"] == "block 0,1: no power sampler in this run"


def test_board_power_is_preferred_over_gpu_power() -> None:
    rows = power({float(t): 7.0 for t in range(11)}, sampler="jtop")
    rows += power({float(t): 300.0 for t in range(11)}, sampler="nvml")
    got = attribute(frame(rows), "a", 0.0, 10.0, 7, 1.0)
    assert got["power_w_mean"] == pytest.approx(7.0)
    assert got["energy_j_per_image"] == pytest.approx(10.0)


def test_rss_peak_is_per_cell_and_an_integer() -> None:
    rows = [("a", "psutil", "rss", 1.0, 100.0), ("a", "psutil", "rss", 2.0, 300.0),
            ("b", "psutil", "rss", 3.0, 1000.0), ("", "psutil", "rss", 4.0, 5000.0)]
    got = attribute(frame(rows), "a", 0.0, 5.0, 1, 0.1)
    assert got["host_rss_peak_bytes"] == 300
    assert isinstance(got["host_rss_peak_bytes"], int)
    assert got["host_rss_peak_reason"] is None


def test_rss_peak_is_the_timed_phases_not_the_build_before_it() -> None:
    # The parity reference and the model build (t < 2) peak at 900 MB; the timed phase
    # (2..4 s) holds 400 MB.
    rows = [("a", "psutil", "rss", 0.5, 9e8), ("a", "psutil", "rss", 1.5, 9e8),
            ("a", "psutil", "rss", 2.5, 4e8), ("a", "psutil", "rss", 3.5, 3.9e8),
            ("a", "psutil", "rss", 4.5, 2e8)]
    got = attribute(frame(rows), "a", 2.0, 4.0, 1, 0.1)
    assert got["host_rss_peak_bytes"] == 400_000_000
    empty = attribute(frame(rows), "a", 2.6, 3.4, 1, 0.1)
    assert empty["host_rss_peak_bytes"] is None
    assert "no rss sample inside the 0.8 s measure window" in empty["host_rss_peak_reason"]


def test_missing_data_is_none_never_zero() -> None:
    rows = [("a", "psutil", "ram_used", 1.0, 5e9)]
    got = attribute(frame(rows), "a", 0.0, 5.0, 10, 0.1)
    assert got == {"power_w_mean": None, "energy_j_per_image": None, "energy_source": None,
                   "energy_confidence": None, "power_samples": None,
                   "energy_reason": "no power sampler in this run",
                   "host_rss_peak_bytes": None,
                   "host_rss_peak_reason": "no rss sample of this cell (the psutil sampler "
                                           "did not run)"}
    empty = attribute(frame([]).reindex(columns=["config_id", "sampler", "metric", "t_s",
                                                 "value"]), "a", 0.0, 1.0, 1, 0.1)
    assert {k for k, v in empty.items() if v is not None} == {"energy_reason",
                                                              "host_rss_peak_reason"}


def test_no_images_gives_no_energy_per_image() -> None:
    got = attribute(frame(power({0.0: 1.0, 1.0: 1.0, 2.0: 1.0})), "a", 0.0, 2.0, 0, 0.1)
    assert got["energy_j_per_image"] is None
    assert got["power_w_mean"] == pytest.approx(1.0)


def test_empty_window_is_a_bug() -> None:
    with pytest.raises(ValueError, match="empty"):
        attribute(frame(power({0.0: 1.0})), "a", 3.0, 3.0, 1, 0.1)


def test_integrate_exact_on_linear_series() -> None:
    import numpy as np

    t = np.array([0.0, 1.0, 3.0])
    v = np.array([0.0, 2.0, 6.0])  # v = 2t
    area, bracketed = integrate(t, v, 0.5, 2.5)
    assert area == pytest.approx(2.5**2 - 0.5**2)
    assert bracketed


def test_min_measure_duration() -> None:
    assert min_measure_duration_s(0.5) == pytest.approx(5.0)


def test_reads_samples_csv_written_by_the_contract_writer(tmp_path: Path) -> None:
    rows = [{"run_id": "r", "config_id": "" if t < 2 else "a", "sampler": "jtop",
             "metric": "power_total", "unit": "W", "t_s": float(t) * 0.5, "value": 4.0}
            for t in range(30)]
    rows.append({"run_id": "r", "config_id": "a", "sampler": "psutil", "metric": "rss",
                 "unit": "B", "t_s": 3.0, "value": 123456789.0})
    RunFiles(tmp_path).appender(SAMPLES_FILE).append(rows)
    samples = read_table(tmp_path, SAMPLES_FILE)
    got = attribute(samples, "a", 2.0, 12.0, 40, 0.5)
    assert got["energy_j_per_image"] == pytest.approx(1.0)
    assert got["host_rss_peak_bytes"] == 123456789
    assert got["energy_confidence"] == "ok"
