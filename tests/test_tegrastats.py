"""tegrastats: exact parses of real board lines and of the other documented shapes, and the
reader run against a real subprocess standing in for the binary."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from processes import wait_until

from harness.samplers.host import SamplerHost
from harness.samplers.tegrastats import TegrastatsSampler, parse_line, unit_of

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "tegrastats"
if not FIXTURES.is_dir():  # the checkout's ../shared, or /work/shared
    FIXTURES = Path("/work/shared/fixtures/tegrastats")
MIB = 1024 * 1024


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text().strip()


EXPECTED: dict[str, dict[str, float]] = {
    "nano_jp4.txt": {
        "ram_used": 534 * MIB, "ram_total": 3964 * MIB, "swap_used": 5 * MIB,
        "cpu_load": (16 + 9 + 0 + 0) / 4, "emc_load": 0, "emc_freq": 204e6,
        "gpu_load": 0, "gpu_freq": 76e6,
        "temp:PLL": 34, "temp:CPU": 36.5, "temp:PMIC": 100, "temp:GPU": 36, "temp:AO": 39.5,
        "temp:thermal": 36.25,
        "power_total": 1.022, "power_rail:POM_5V_GPU": 0.0, "power_rail:POM_5V_CPU": 0.204,
    },
    "xavier_nx_jp4.txt": {
        "ram_used": 4412 * MIB, "ram_total": 7772 * MIB, "swap_used": 139 * MIB,
        "cpu_load": (9 + 6 + 6 + 5 + 4 + 8) / 6, "emc_load": 10, "emc_freq": 1600e6,
        "gpu_load": 62, "gpu_freq": 306e6,
        "temp:AO": 41.5, "temp:GPU": 43, "temp:PMIC": 100, "temp:AUX": 41.5, "temp:CPU": 43.5,
        "temp:thermal": 42.55,
        "power_total": 4.067, "power_rail:VDD_CPU_GPU_CV": 0.738, "power_rail:VDD_SOC": 1.353,
    },
    "orin_nano_jp6_root.txt": {
        "ram_used": 6185 * MIB, "ram_total": 7620 * MIB, "swap_used": 851 * MIB,
        "cpu_load": (15 + 11 + 14 + 13 + 11 + 8) / 6, "emc_load": 43, "emc_freq": 2133e6,
        "gpu_load": 63, "gpu_freq": 621e6,
        "temp:cpu": 53.968, "temp:soc2": 52.437, "temp:soc0": 50.75, "temp:gpu": 53.343,
        "temp:tj": 53.968, "temp:soc1": 51.656,
        "power_total": 12.479, "power_rail:VDD_CPU_GPU_CV": 4.667, "power_rail:VDD_SOC": 2.817,
    },
    "orin_nano_jp6_user.txt": {
        "ram_used": 3452 * MIB, "ram_total": 7620 * MIB, "swap_used": 1518 * MIB,
        "cpu_load": (1 + 2 + 0 + 2 + 2 + 1) / 6, "gpu_load": 0,
        "temp:cpu": 50.031, "temp:soc2": 49.031, "temp:soc0": 50, "temp:gpu": 49.031,
        "temp:tj": 50.25, "temp:soc1": 50.25,
        "power_total": 4.824, "power_rail:VDD_CPU_GPU_CV": 0.518, "power_rail:VDD_SOC": 1.475,
    },
    "tx1.txt": {
        "ram_used": 1179 * MIB, "ram_total": 3983 * MIB,
        "cpu_load": (1 + 4 + 0 + 0) / 4, "emc_load": 7, "emc_freq": 408e6,
        "gpu_load": 0, "gpu_freq": 76e6,
        "temp:AO": 42.5, "temp:CPU": 37.5, "temp:GPU": 39, "temp:PLL": 37, "temp:Tdiode": 42.75,
        "temp:PMIC": 100, "temp:Tboard": 42, "temp:thermal": 38.5,
        # cur/avg = 2532/2698: the first value is the instantaneous one.
        "power_total": 2.532, "power_rail:VDD_CPU": 0.076, "power_rail:VDD_GPU": 0.019,
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_lines_parse_exactly(name: str) -> None:
    got = parse_line(fixture(name))
    assert got == pytest.approx(EXPECTED[name])
    assert set(got) == set(EXPECTED[name])


def test_every_fixture_file_is_covered() -> None:
    assert {p.name for p in FIXTURES.glob("*.txt")} == set(EXPECTED)


# Lines composed from the fixtures README for boards that are not in the fixture files.

AGX_XAVIER = (
    "RAM 2359/31920MB (lfb 6728x4MB) SWAP 0/15960MB (cached 0MB) "
    "CPU [2%@1190,1%@1190,off,off,0%@1190,0%@1190,0%@1190,0%@1190] EMC_FREQ 0%@2133 "
    "GR3D_FREQ 0%@1377 APE 150 MTS fg 0% bg 0% AO@37C GPU@37.5C PMIC@100C CPU@38.5C "
    "GPU 0/0 CPU 311/311 SOC 932/932 CV 0/0 VDDRQ 621/621 SYS5V 1482/1482"
)


def test_agx_xavier_without_total_rail_sums_the_rails() -> None:
    got = parse_line(AGX_XAVIER)
    assert got["power_total"] == pytest.approx((0 + 311 + 932 + 0 + 621 + 1482) / 1000)
    assert got["power_rail:SOC"] == pytest.approx(0.932)
    assert got["power_rail:SYS5V"] == pytest.approx(1.482)
    assert got["cpu_load"] == pytest.approx((2 + 1 + 0 + 0 + 0 + 0) / 6)  # 'off' cores skipped
    assert got["temp:GPU"] == 37.5 and got["temp:CPU"] == 38.5
    assert got["ram_used"] == 2359 * MIB


TX2 = (
    "RAM 1785/7854MB (lfb 1003x4MB) SWAP 0/3927MB (cached 0MB) "
    "CPU [3%@345,off,off,1%@345,2%@345,4%@345] EMC_FREQ 3%@1866 GR3D_FREQ 0%@114 APE 150 "
    "PLL@37C MCPU@37C PMIC@100C Tboard@33C GPU@36C BCPU@37C thermal@36.6C Tdiode@35C "
    "VDD_SYS_GPU 152/152 VDD_SYS_SOC 686/686 VDD_4V0_WIFI 0/0 VDD_IN 2901/2901 "
    "VDD_SYS_CPU 229/229 VDD_SYS_DDR 400/400"
)


def test_tx2_total_rail_in_the_middle_and_cores_off() -> None:
    got = parse_line(TX2)
    assert got["power_total"] == pytest.approx(2.901)
    assert "power_rail:VDD_IN" not in got
    assert {k for k in got if k.startswith("power_rail:")} == {
        "power_rail:VDD_SYS_GPU", "power_rail:VDD_SYS_SOC", "power_rail:VDD_4V0_WIFI",
        "power_rail:VDD_SYS_CPU", "power_rail:VDD_SYS_DDR"}
    assert got["cpu_load"] == pytest.approx((3 + 1 + 2 + 4) / 4)
    assert got["emc_freq"] == pytest.approx(1866e6)


AGX_ORIN = (
    "RAM 3462/30536MB (lfb 6087x4MB) SWAP 0/15268MB (cached 0MB) "
    "CPU [1%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,off,off,off,off] "
    "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.75C "
    "Tboard@34C SOC2@41.062C Tdiode@36.25C SOC0@40.906C CV1@-256C GPU@-256C tj@44.75C "
    "SOC1@40.843C CV2@-256C VDD_GPU_SOC 3172mW/3172mW VDD_CPU_CV 396mW/396mW "
    "VIN_SYS_5V0 2221mW/2221mW NC 0mW/0mW VDDQ_VDD2_1V8AO 403mW/403mW NC 0mW/0mW"
)


def test_agx_orin_no_vdd_in_nc_rails_ignored_offline_sensors_skipped() -> None:
    got = parse_line(AGX_ORIN)
    # VIN_SYS_5V0 is one rail of the sum, not the total; NC rails are not connected.
    assert got["power_total"] == pytest.approx((3172 + 396 + 2221 + 403) / 1000)
    assert got["power_rail:VIN_SYS_5V0"] == pytest.approx(2.221)
    assert not any(k.split(":")[-1] == "NC" for k in got)
    for offline in ("temp:CV0", "temp:CV1", "temp:CV2", "temp:GPU"):
        assert offline not in got
    assert got["temp:CPU"] == 44.75
    assert got["gpu_freq"] == pytest.approx(305e6)


JETPACK7 = (
    "08-21-2025 10:15:02 RAM 4567/7620MB (lfb 12x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [2%@972,1%@972,3%@972,0%@972,0%@972,0%@972] EMC_FREQ 5%@[3199] "
    "GR3D_FREQ 12%@[1300,1200] cpu@52.968C/52.968C gpu@49.5C/49.25C soc0@-256C/-256C "
    "VDD_IN 5139mW/5139mW/5139mW VDD_CPU_GPU_CV 1000mW/980mW/1020mW VDD_SOC 1500mW/1400mW/1600mW"
)


def test_jetpack7_three_values_per_rail_two_per_temperature_gpc_list() -> None:
    got = parse_line(JETPACK7)
    assert got["power_total"] == pytest.approx(5.139)
    assert got["power_rail:VDD_CPU_GPU_CV"] == pytest.approx(1.0)  # first value = instant
    assert got["power_rail:VDD_SOC"] == pytest.approx(1.5)
    assert got["temp:cpu"] == pytest.approx(52.968)
    assert got["temp:gpu"] == pytest.approx(49.5)
    assert "temp:soc0" not in got
    assert got["gpu_load"] == 12
    assert got["gpu_freq"] == pytest.approx(1250e6)  # mean over the GPCs
    assert got["emc_freq"] == pytest.approx(3199e6)
    assert got["ram_used"] == 4567 * MIB


def test_units_are_si() -> None:
    assert unit_of("power_total") == "W"
    assert unit_of("power_rail:VDD_SOC") == "W"
    assert unit_of("ram_used") == "B"
    assert unit_of("temp:cpu") == "degC"
    assert unit_of("gpu_freq") == "Hz"


@pytest.mark.parametrize("line", ["", "tegrastats: command not found",
                                  "RAM 12/34MB CPU [x%@1,2%@3]"])
def test_malformed_lines_raise_value_error(line: str) -> None:
    with pytest.raises(ValueError):
        parse_line(line)


# --- a real subprocess standing in for the binary --------------------------------------

GOOD = ["nano_jp4.txt", "orin_nano_jp6_root.txt", "tx1.txt"]


def fake_tegrastats(directory: Path, lines: list[str], repeat: int) -> Path:
    """An executable named tegrastats that checks its --interval and prints lines at it."""
    script = directory / "tegrastats"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "args = sys.argv[1:]\n"
        "if len(args) != 2 or args[0] != '--interval' or not args[1].isdigit():\n"
        "    sys.exit('usage: tegrastats --interval <ms>')\n"
        "interval = int(args[1]) / 1000\n"
        f"lines = {lines!r}\n"
        f"for _ in range({repeat}):\n"
        "    for line in lines:\n"
        "        print(line, flush=True)\n"
        "        time.sleep(interval)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def test_reader_parses_lines_from_a_real_subprocess(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [fixture(n) for n in GOOD] + ["this is not a tegrastats line"]
    fake_tegrastats(tmp_path, lines, repeat=2)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    sampler = TegrastatsSampler()
    assert sampler.availability().ok
    sampler.open(0.02)
    try:
        assert sampler.join(timeout_s=30)
        readings = sampler.read()
        problems = sampler.problems()
        with pytest.raises(RuntimeError, match="exited"):
            sampler.read()
    finally:
        sampler.close()
    totals = [r for r in readings if r.metric == "power_total"]
    expected = [EXPECTED[n]["power_total"] for n in GOOD] * 2
    assert [r.value for r in totals] == pytest.approx(expected)
    stamps = [r.t_ns for r in totals]
    assert all(t is not None for t in stamps)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # Two malformed lines: reported once, counted, and skipped.
    assert len(problems) == 1 and "malformed" in problems[0]
    assert sampler.malformed_lines == 2


def test_missing_binary_is_unavailable_with_reason(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    avail = TegrastatsSampler().availability()
    assert not avail.ok and "tegrastats not found" in avail.reason


def test_sampler_process_records_tegrastats_lines(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    lines = [fixture("orin_nano_jp6_root.txt"), "garbage", fixture("orin_nano_jp6_user.txt")]
    fake_tegrastats(bin_dir, lines, repeat=3)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run_dir = tmp_path / "run"
    host = SamplerHost(run_dir, "run-1", time.perf_counter_ns(), ["tegrastats"], 0.05)
    status = host.start()
    assert status == {"tegrastats": "active"}
    host.set_active("cell-a", None)

    def all_lines_in() -> bool:
        host.flush()
        path = run_dir / "samples.csv"
        if not path.exists():
            return False
        return int((pd.read_csv(path)["metric"] == "power_total").sum()) >= 6

    assert wait_until(all_lines_in, 30)
    summary = host.stop()
    samples = pd.read_csv(run_dir / "samples.csv", dtype={"config_id": str})
    power = samples[samples["metric"] == "power_total"]
    assert list(power["value"]) == pytest.approx([12.479, 4.824] * 3)
    assert set(power["config_id"]) == {"cell-a"}
    assert set(power["unit"]) == {"W"}
    assert (power["t_s"].diff().dropna() > 0).all()
    assert set(samples["sampler"]) == {"tegrastats"}
    messages = [p["message"] for p in summary["problems"] if p["sampler"] == "tegrastats"]
    assert sum("malformed" in m for m in messages) == 1  # three bad lines, reported once
    assert summary["died_at_s"] is None
