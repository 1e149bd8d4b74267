"""Discrete NVIDIA GPU telemetry through NVML (nvidia-ml-py, imported as ``pynvml``).

Power is the instantaneous field (``NVML_FI_DEV_POWER_INSTANT``) where the
driver supports it, else ``nvmlDeviceGetPowerUsage`` (a 1 s average on Ampere
and newer); the cumulative energy counter (mJ since driver load) is recorded
as ``energy_counter`` in J so that a cell's energy is a counter difference.
Memory uses the v2 struct (v1's ``used`` includes reserved memory). With
several GPUs the values are summed (power, energy, memory) or the maximum is
taken (load). No library, no GPU, or NotSupported for power (Jetson Orin) make
the sampler unavailable with the reason; NVML is initialised in the sampler
process because it does not survive fork.
"""

from __future__ import annotations

import contextlib
from typing import Any

from harness.samplers import Availability, Reading, SamplerUnavailable

_VALUE_FIELDS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal",
                 6: "usVal"}


def _import_nvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise SamplerUnavailable("nvidia-ml-py is not installed (pip install 'tfbench[nvidia]')"
                                 ) from None
    return pynvml


def _reason(nvml: Any, exc: Exception, what: str) -> str:
    if isinstance(exc, getattr(nvml, "NVMLError_LibraryNotFound", ())):
        return "NVML library not found (libnvidia-ml.so: no NVIDIA driver on this machine)"
    if isinstance(exc, getattr(nvml, "NVMLError_NotSupported", ())):
        return (f"NVML reports NotSupported for {what} (on Jetson use the jtop or tegrastats "
                "sampler)")
    if isinstance(exc, getattr(nvml, "NVMLError_DriverNotLoaded", ())):
        return "NVIDIA driver not loaded"
    return f"NVML error during {what}: {exc}"


class NvmlSampler:
    """GPU power (W), energy counter (J), memory used (B) and utilisation (%) from NVML."""

    name = "nvml"
    default_interval_s = 0.1

    def __init__(self, nvml: Any = None) -> None:
        self._nvml_module = nvml
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._instant: list[bool] = []
        self._energy: list[bool] = []

    def _module(self) -> Any:
        return self._nvml_module if self._nvml_module is not None else _import_nvml()

    def _probe(self) -> tuple[Any, list[Any]]:
        """Initialise NVML and return the handles whose power can be read; raise the reason."""
        nvml = self._module()
        try:
            nvml.nvmlInit()
        except Exception as exc:
            raise SamplerUnavailable(_reason(nvml, exc, "initialisation")) from None
        try:
            count = int(nvml.nvmlDeviceGetCount())
            if count == 0:
                raise SamplerUnavailable("NVML sees no NVIDIA GPU")
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            for h in handles:
                nvml.nvmlDeviceGetPowerUsage(h)
        except SamplerUnavailable:
            nvml.nvmlShutdown()
            raise
        except Exception as exc:
            nvml.nvmlShutdown()
            raise SamplerUnavailable(_reason(nvml, exc, "power")) from None
        return nvml, handles

    def availability(self) -> Availability:
        try:
            nvml, _ = self._probe()
        except SamplerUnavailable as exc:
            return Availability(False, str(exc))
        nvml.nvmlShutdown()
        return Availability(True, "")

    def open(self, interval_s: float) -> None:
        del interval_s
        self._nvml, self._handles = self._probe()
        self._instant = [self._instant_power_w(h) is not None for h in self._handles]
        self._energy = []
        for h in self._handles:
            try:
                self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)
                self._energy.append(True)
            except Exception:  # pre-Volta or not supported: power only
                self._energy.append(False)

    def _instant_power_w(self, handle: Any) -> float | None:
        nvml = self._nvml
        field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field is None:
            return None
        try:
            value = nvml.nvmlDeviceGetFieldValues(handle, [field])[0]
        except Exception:
            return None
        if int(value.nvmlReturn) != 0:
            return None
        raw = getattr(value.value, _VALUE_FIELDS.get(int(value.valueType), "uiVal"))
        return float(raw) / 1000.0

    def set_pid(self, pid: int | None) -> None:
        del pid

    def read(self) -> list[Reading]:
        nvml = self._nvml
        power = 0.0
        energy = 0.0
        mem = 0.0
        load = 0.0
        for h, instant, has_energy in zip(self._handles, self._instant, self._energy, strict=False):
            watts = self._instant_power_w(h) if instant else None
            if watts is None:
                watts = nvml.nvmlDeviceGetPowerUsage(h) / 1000.0
            power += watts
            if has_energy:
                energy += nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0
            mem += float(nvml.nvmlDeviceGetMemoryInfo(h, version=nvml.nvmlMemory_v2).used)
            load = max(load, float(nvml.nvmlDeviceGetUtilizationRates(h).gpu))
        out = [Reading("power_total", "W", power), Reading("gpu_mem_used", "B", mem),
               Reading("gpu_load", "%", load)]
        if self._energy and all(self._energy):
            out.append(Reading("energy_counter", "J", energy))
        return out

    def problems(self) -> list[str]:
        return []

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):  # already shut down
                self._nvml.nvmlShutdown()
            self._nvml = None
