"""Discrete NVIDIA GPU telemetry through NVML (nvidia-ml-py, imported as ``pynvml``).

Power is the instantaneous field (``NVML_FI_DEV_POWER_INSTANT``) where the
driver supports it, else ``nvmlDeviceGetPowerUsage`` (a 1 s average on Ampere
and newer), chosen once per GPU at open and reported as a problem when it is
the average; a failed instant read later stops the sampler rather than switch
silently. The cumulative energy counter (mJ since driver load) is recorded
as ``energy_counter`` in J so that a cell's energy is a counter difference.
Memory uses the v2 struct (v1's ``used`` includes reserved memory). With
several GPUs the values are summed (power, energy, memory) or the maximum is
taken (load). No library, no GPU, or NotSupported for power (Jetson Orin) make
the sampler unavailable with the reason (NVML's own errors only: any other
exception is a bug and propagates); NVML is initialised in the sampler
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
        self._pending: list[str] = []

    def _module(self) -> Any:
        return self._nvml_module if self._nvml_module is not None else _import_nvml()

    def _probe(self) -> tuple[Any, list[Any]]:
        """Initialise NVML and return the handles whose power can be read; raise the reason.

        Only NVML's own errors mean "unavailable"; anything else is a bug and propagates."""
        nvml = self._module()
        nvml_error = nvml.NVMLError
        try:
            nvml.nvmlInit()
        except nvml_error as exc:
            raise SamplerUnavailable(_reason(nvml, exc, "initialisation")) from None
        try:
            count = int(nvml.nvmlDeviceGetCount())
            if count == 0:
                raise SamplerUnavailable("NVML sees no NVIDIA GPU")
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            for h in handles:
                nvml.nvmlDeviceGetPowerUsage(h)
        except nvml_error as exc:
            nvml.nvmlShutdown()
            raise SamplerUnavailable(_reason(nvml, exc, "power")) from None
        except BaseException:
            nvml.nvmlShutdown()
            raise
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
        self._instant = [self._instant_power_w(i, h, probing=True) is not None
                         for i, h in enumerate(self._handles)]
        self._energy = []
        for h in self._handles:
            try:
                self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)
                self._energy.append(True)
            except self._nvml.NVMLError:  # pre-Volta or not supported: power only
                self._energy.append(False)
        self._pending = [
            f"GPU {i}: NVML_FI_DEV_POWER_INSTANT is not supported; power_total is "
            "nvmlDeviceGetPowerUsage, a 1 s average on Ampere and newer"
            for i, instant in enumerate(self._instant) if not instant]
        if self._energy and not all(self._energy):
            missing = [str(i) for i, e in enumerate(self._energy) if not e]
            self._pending.append(f"GPU {', '.join(missing)}: no energy counter "
                                 "(nvmlDeviceGetTotalEnergyConsumption); energy is the trapezoid "
                                 "of power_total")

    def _instant_power_w(self, index: int, handle: Any, probing: bool = False) -> float | None:
        """The instantaneous power field in W. While probing, None means "not supported";
        once chosen, a failed read raises rather than switch silently to the 1 s average."""
        nvml = self._nvml
        field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field is None:
            if probing:
                return None
            raise RuntimeError("NVML_FI_DEV_POWER_INSTANT vanished from pynvml")
        try:
            value = nvml.nvmlDeviceGetFieldValues(handle, [field])[0]
        except nvml.NVMLError:
            if probing:
                return None
            raise
        code = int(value.nvmlReturn)
        if code != 0:
            if probing:
                return None
            raise RuntimeError(f"GPU {index}: NVML_FI_DEV_POWER_INSTANT read returned NVML "
                               f"error {code}; stopping rather than switching to the 1 s average")
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
        for i, (h, instant, has_energy) in enumerate(zip(self._handles, self._instant,
                                                         self._energy, strict=True)):
            if instant:
                watts = self._instant_power_w(i, h)
                assert watts is not None
            else:
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
        pending, self._pending = self._pending, []
        return pending

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(self._nvml.NVMLError):  # already shut down
                self._nvml.nvmlShutdown()
            self._nvml = None
