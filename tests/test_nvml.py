"""The NVML sampler: a clear reason where NVML cannot run, real readings where a GPU exists."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.samplers import SamplerUnavailable
from harness.samplers.nvml import NvmlSampler

pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")


def _real_availability() -> Any:
    return NvmlSampler().availability()


def test_unavailable_here_gives_a_reason_and_open_refuses() -> None:
    avail = _real_availability()
    if avail.ok:
        pytest.skip("this machine has a working NVIDIA GPU; see test_real_gpu_readings")
    assert avail.reason
    if not Path("/proc/driver/nvidia").exists():
        assert "NVML library not found" in avail.reason or "driver" in avail.reason
    with pytest.raises(SamplerUnavailable):
        NvmlSampler().open(0.1)


def test_real_gpu_readings() -> None:
    if not _real_availability().ok:
        pytest.skip(f"no usable NVIDIA GPU here: {_real_availability().reason}")
    sampler = NvmlSampler()
    sampler.open(0.1)
    try:
        first = {r.metric: r for r in sampler.read()}
        second = {r.metric: r for r in sampler.read()}
    finally:
        sampler.close()
    assert first["power_total"].unit == "W" and first["power_total"].value > 0
    assert first["gpu_mem_used"].unit == "B" and first["gpu_mem_used"].value > 0
    assert 0 <= first["gpu_load"].value <= 100
    if "energy_counter" in first:
        assert second["energy_counter"].value >= first["energy_counter"].value


def _jetson_orin_like() -> Any:
    """NVML as it answers on Jetson Orin (JetPack 6): a device, but power is NotSupported.
    No such board is here, so this stands in for it; the error class is pynvml's own."""

    def power(handle: object) -> int:
        raise pynvml.NVMLError_NotSupported()

    return SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: object(), nvmlDeviceGetPowerUsage=power,
        NVMLError=pynvml.NVMLError, NVMLError_LibraryNotFound=pynvml.NVMLError_LibraryNotFound,
        NVMLError_NotSupported=pynvml.NVMLError_NotSupported,
        NVMLError_DriverNotLoaded=pynvml.NVMLError_DriverNotLoaded,
    )


def test_not_supported_power_is_unavailable_with_reason() -> None:
    avail = NvmlSampler(_jetson_orin_like()).availability()
    assert not avail.ok
    assert "NotSupported for power" in avail.reason and "jtop" in avail.reason


def test_missing_package_is_unavailable_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    avail = NvmlSampler().availability()
    assert not avail.ok and "nvidia-ml-py is not installed" in avail.reason
    assert importlib.util.find_spec("pynvml") is not None  # only this test's import failed


def _gpu_like(instant: Any, count: Any = lambda: 1) -> Any:
    """NVML answering for one GPU through pynvml's own error classes; ``instant`` answers
    the NVML_FI_DEV_POWER_INSTANT field query. No NVIDIA GPU is here, so this stands in."""

    def memory(handle: object, version: object = None) -> Any:
        return SimpleNamespace(used=2_000_000_000)

    return SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=count,
        nvmlDeviceGetHandleByIndex=lambda i: object(),
        nvmlDeviceGetPowerUsage=lambda h: 250_000,  # mW, the 1 s average
        nvmlDeviceGetTotalEnergyConsumption=lambda h: 5_000_000,  # mJ
        nvmlDeviceGetMemoryInfo=memory, nvmlMemory_v2=2,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=40),
        nvmlDeviceGetFieldValues=instant, NVML_FI_DEV_POWER_INSTANT=186,
        NVMLError=pynvml.NVMLError,
        NVMLError_LibraryNotFound=pynvml.NVMLError_LibraryNotFound,
        NVMLError_NotSupported=pynvml.NVMLError_NotSupported,
        NVMLError_DriverNotLoaded=pynvml.NVMLError_DriverNotLoaded,
    )


def _field(code: int, milliwatts: int = 0) -> list[Any]:
    return [SimpleNamespace(nvmlReturn=code, valueType=1, value=SimpleNamespace(uiVal=milliwatts))]


def test_a_bug_in_setup_crashes_instead_of_reading_as_unavailable() -> None:
    def broken_count() -> int:
        raise TypeError("a bug, not an NVML error")

    with pytest.raises(TypeError, match="a bug"):
        NvmlSampler(_gpu_like(lambda h, f: _field(0, 1), broken_count)).availability()


def test_the_1s_average_is_never_a_silent_fallback() -> None:
    sampler = NvmlSampler(_gpu_like(lambda h, f: _field(3)))  # NVML_ERROR_NOT_SUPPORTED
    sampler.open(0.1)
    readings = {r.metric: r.value for r in sampler.read()}
    assert readings["power_total"] == pytest.approx(250.0)
    (problem,) = sampler.problems()
    assert "NVML_FI_DEV_POWER_INSTANT is not supported" in problem
    assert "1 s average" in problem
    assert sampler.problems() == []  # reported once


def test_instant_power_that_fails_later_stops_the_sampler() -> None:
    answers = iter([_field(0, 180_000), _field(0, 181_000), _field(15)])
    sampler = NvmlSampler(_gpu_like(lambda h, f: next(answers)))
    sampler.open(0.1)
    assert sampler.problems() == []
    assert {r.metric: r.value for r in sampler.read()}["power_total"] == pytest.approx(181.0)
    with pytest.raises(RuntimeError, match="rather than switching to the 1 s average"):
        sampler.read()
