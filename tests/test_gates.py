"""Thresholds per metric for `tfbench ab` and `tfbench compare` (harness/gates.py)."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.gates import GATE_METRICS, parse_thresholds


def test_per_metric_thresholds_and_defaults() -> None:
    t = parse_thresholds("step_s=5%,energy_j_per_image=8%,host_rss_peak_bytes=10%")
    assert t["step_s"] == pytest.approx(0.05)
    assert t["energy_j_per_image"] == pytest.approx(0.08)
    assert t["host_rss_peak_bytes"] == pytest.approx(0.10)
    assert t["images_per_s"] == pytest.approx(GATE_METRICS["images_per_s"].default_threshold)
    assert t["device_mem_peak_bytes"] == pytest.approx(0.10)


def test_bare_value_applies_to_every_metric_not_named() -> None:
    t = parse_thresholds("3%,host_rss_peak_bytes=12%")
    assert t["step_s"] == t["images_per_s"] == t["energy_j_per_image"] == pytest.approx(0.03)
    assert t["host_rss_peak_bytes"] == pytest.approx(0.12)
    assert parse_thresholds("0.07")["device_mem_peak_bytes"] == pytest.approx(0.07)


@pytest.mark.parametrize("text, fragment", [
    ("latency_ms=5%", "'latency_ms' is not valid"),
    ("step_s=5%,step_s=6%", "given twice"),
    ("5%,6%", "two values"),
    ("step_s=abc", "--threshold step_s"),
    ("step_s=5", "--threshold step_s"),  # a bare 5 is ambiguous (5 or 5%?)
    ("step_s=0%", "--threshold step_s"),
    ("", "--threshold"),
])
def test_bad_thresholds_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as info:
        parse_thresholds(text)
    assert fragment in info.value.message


def test_compare_takes_per_metric_thresholds_and_gates_memory(
        capsys: pytest.CaptureFixture[str]) -> None:
    import json
    from pathlib import Path

    from harness.cli import main

    data = Path(__file__).resolve().parent / "data" / "compare"
    runs = [str(data / f"base_r{k}") for k in range(1, 6)] + [str(data / "candidate")]
    code = main(["compare", *runs, "--metric", "host_rss_peak_bytes", "--format", "json",
                 "--threshold", "step_s=5%,host_rss_peak_bytes=10%"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert out["metric"] == "host_rss_peak_bytes" and out["threshold"] == pytest.approx(0.10)
    assert main(["compare", *runs, "--threshold", "latency=5%"]) == 2
    assert "--threshold metric: 'latency'" in capsys.readouterr().err
