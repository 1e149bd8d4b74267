"""Jetson telemetry through the jtop service (jetson-stats): power rails, memory, GPU load, EMC.

The jtop client talks to a root service over ``/run/jtop.sock``. Importing jtop
switches `multiprocessing` to ``fork``, so it is imported only inside the
sampler process (`JtopSampler.open`) and in a child process for `board_info`;
`availability` only looks at the package and the socket. Samples are stamped
in jtop's callback, when they arrive, not when the host polls. Power is read
from the instantaneous ``power`` field (jtop's ``avg`` is not a time average)
and converted to W; memory from kB to bytes; frequencies from kHz to Hz.
Both the dict power API (jetson-stats >= 4.2) and the tuple one (<= 4.1) are
understood.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from harness.samplers import Availability, Reading, SamplerUnavailable

JTOP_SOCKET = "/run/jtop.sock"
_INSTALL_HINT = "install the service with: sudo jtop --install-service"


def _plain(value: Any) -> Any:
    """jtop's GPU/Memory objects are dict-like without being Mappings: make them dicts."""
    if not isinstance(value, Mapping) and hasattr(value, "items") and hasattr(value, "keys"):
        return dict(value.items())
    return value


def _mw(value: Any) -> float | None:
    return float(value) / 1000.0 if isinstance(value, (int, float)) else None


def readings_from_power(power: Any) -> list[tuple[str, str, float]]:
    """Total and per-rail power in W from ``jetson.power`` (dict API >= 4.2, tuple API <= 4.1)."""
    out: list[tuple[str, str, float]] = []
    power = _plain(power)
    if isinstance(power, tuple) and len(power) == 2:
        # jetson-stats <= 4.1: (total, rails), each {'cur': mW, 'avg': mW}.
        total, rails = power
        cur = _mw(total.get("cur")) if isinstance(total, Mapping) else None
        if cur is not None:
            out.append(("power_total", "W", cur))
        for name, rail in (rails or {}).items():
            value = _mw(rail.get("cur")) if isinstance(rail, Mapping) else None
            if value is not None:
                out.append((f"power_rail:{name}", "W", value))
        return out
    if not isinstance(power, Mapping) or not power:
        return out
    tot = power.get("tot")
    if isinstance(tot, Mapping):
        value = _mw(tot.get("power"))
        if value is not None:
            out.append(("power_total", "W", value))
    for name, rail in (power.get("rail") or {}).items():
        if not isinstance(rail, Mapping) or rail.get("online") is False:
            continue
        value = _mw(rail.get("power"))
        if value is not None:
            out.append((f"power_rail:{name}", "W", value))
    return out


def readings_from_memory(memory: Any) -> list[tuple[str, str, float]]:
    """RAM, the GPU's shared (NvMap) memory and swap in bytes, EMC load % and frequency Hz."""
    out: list[tuple[str, str, float]] = []
    memory = _plain(memory)
    if not isinstance(memory, Mapping):
        return out
    ram = memory.get("RAM")
    if isinstance(ram, Mapping):
        if isinstance(ram.get("used"), (int, float)):
            out.append(("ram_used", "B", float(ram["used"]) * 1024))
        if isinstance(ram.get("shared"), (int, float)):
            out.append(("gpu_shared_mem", "B", float(ram["shared"]) * 1024))
    swap = memory.get("SWAP")
    if isinstance(swap, Mapping) and isinstance(swap.get("used"), (int, float)):
        out.append(("swap_used", "B", float(swap["used"]) * 1024))
    emc = memory.get("EMC")
    if isinstance(emc, Mapping) and emc.get("online", True):
        if isinstance(emc.get("val"), (int, float)):
            out.append(("emc_load", "%", float(emc["val"])))
        if isinstance(emc.get("cur"), (int, float)):
            out.append(("emc_freq", "Hz", float(emc["cur"]) * 1000))
    return out


def readings_from_gpu(gpu: Any) -> list[tuple[str, str, float]]:
    """GPU load % and frequency Hz; one GPU gives ``gpu_load``, several ``gpu_load:<name>``."""
    out: list[tuple[str, str, float]] = []
    gpu = _plain(gpu)
    if not isinstance(gpu, Mapping):
        return out
    several = len(gpu) > 1
    for name, g in gpu.items():
        if not isinstance(g, Mapping):
            continue
        suffix = f":{name}" if several else ""
        load = (g.get("status") or {}).get("load")
        if isinstance(load, (int, float)):
            out.append((f"gpu_load{suffix}", "%", float(load)))
        cur = (g.get("freq") or {}).get("cur")
        if isinstance(cur, (int, float)):
            out.append((f"gpu_freq{suffix}", "Hz", float(cur) * 1000))
    return out


def readings_from_temperature(temperature: Any) -> list[tuple[str, str, float]]:
    """Online temperature sensors in °C (offline ones read -256 and are skipped)."""
    out: list[tuple[str, str, float]] = []
    temperature = _plain(temperature)
    if not isinstance(temperature, Mapping):
        return out
    for name, t in temperature.items():
        if not isinstance(t, Mapping) or t.get("online") is False:
            continue
        value = t.get("temp")
        if isinstance(value, (int, float)) and value > -256:
            out.append((f"temp:{name}", "degC", float(value)))
    return out


def socket_availability(path: str = JTOP_SOCKET) -> Availability:
    """Whether a jtop service answers on its socket, judged without importing jtop."""
    if importlib.util.find_spec("jtop") is None:
        return Availability(False, "jetson-stats is not installed (pip install 'tfbench[jetson]')")
    if not os.path.exists(path):
        return Availability(False, f"no jtop service: {path} does not exist ({_INSTALL_HINT})")
    if not os.access(path, os.R_OK | os.W_OK):
        return Availability(False, f"permission denied on {path}: add this user to the 'jtop' "
                                   "group (sudo usermod -aG jtop $USER) and log in again")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect(path)
    except PermissionError:
        return Availability(False, f"permission denied on {path}: add this user to the 'jtop' "
                                   "group and log in again")
    except OSError as exc:
        return Availability(False, f"no jtop service answers on {path} ({exc.strerror or exc}); "
                                   f"{_INSTALL_HINT} or restart it (sudo systemctl restart jtop)")
    finally:
        sock.close()
    return Availability(True, "")


def _clean(message: str) -> str:
    return " ".join(message.replace("Please run:", "").split())


class JtopSampler:
    """Power, memory, GPU and EMC from the jtop service, stamped as each sample arrives."""

    name = "jtop"
    default_interval_s = 0.5

    def __init__(self) -> None:
        self._jetson: Any = None
        self._lock = threading.Lock()
        self._pending: list[Reading] = []
        self._problems: list[str] = []
        self._last_tick: Any = None
        self.samples = 0

    def availability(self) -> Availability:
        return socket_availability()

    def open(self, interval_s: float) -> None:
        avail = self.availability()
        if not avail.ok:
            raise SamplerUnavailable(avail.reason)
        try:
            from jtop import JtopException, jtop
        except ImportError as exc:
            raise SamplerUnavailable(f"cannot import jtop: {exc}") from None
        jetson = jtop(interval=interval_s)
        jetson.attach(self._on_sample)
        try:
            jetson.start()
        except JtopException as exc:
            raise SamplerUnavailable(f"jtop: {_clean(str(exc))}") from None
        except OSError as exc:
            raise SamplerUnavailable(f"jtop: cannot connect to {JTOP_SOCKET}: {exc}") from None
        self._jetson = jetson
        served = float(jetson.interval)
        if abs(served - interval_s) > 1e-6:
            self._problems.append(f"the jtop service samples every {served:g} s (set by another "
                                  f"client), not the {interval_s:g} s asked for")

    def _on_sample(self, jetson: Any) -> None:
        t_ns = time.perf_counter_ns()
        # When the service ticks slower than this client's interval (another client set it),
        # jtop calls back again with the previous tick's data; /proc/uptime, read by the
        # service at each tick, tells a repeat from a fresh sample.
        try:
            tick = jetson.uptime
        except Exception:  # older jtop without uptime: every callback counts
            tick = None
        if tick is not None and tick == self._last_tick:
            return
        self._last_tick = tick
        try:
            values = [*readings_from_power(jetson.power), *readings_from_memory(jetson.memory),
                      *readings_from_gpu(jetson.gpu),
                      *readings_from_temperature(jetson.temperature)]
        except Exception as exc:  # jtop's reader thread must not die on one odd sample
            with self._lock:
                if not self._problems:
                    self._problems.append(f"jtop sample not understood: {exc!r}")
            return
        with self._lock:
            self._pending.extend(Reading(m, u, v, t_ns) for m, u, v in values)
            self.samples += 1

    def set_pid(self, pid: int | None) -> None:
        del pid

    def read(self) -> list[Reading]:
        with self._lock:
            out, self._pending = self._pending, []
        if out or self._jetson is None:
            return out
        try:
            alive = self._jetson.ok(spin=True)
        except Exception as exc:
            raise RuntimeError(f"jtop connection lost: {_clean(str(exc))}") from None
        if not alive or not self._jetson.is_alive():
            raise RuntimeError("jtop connection lost (the client thread stopped)")
        return out

    def problems(self) -> list[str]:
        with self._lock:
            out, self._problems = self._problems, []
        return out

    def close(self) -> None:
        if self._jetson is not None:
            with contextlib.suppress(Exception):  # the connection may already be broken
                self._jetson.close()
            self._jetson = None


def clock_warning(jetson_clocks: Any, nvpmodel: Any) -> str:
    """The warning to show when clocks are not fixed (published numbers assume jetson_clocks)."""
    if jetson_clocks is True or jetson_clocks == "running":
        return ""
    mode = f" (nvpmodel {nvpmodel})" if nvpmodel else ""
    state = "unknown" if jetson_clocks is None else str(jetson_clocks)
    return (f"jetson_clocks is {state}{mode}: clocks are not fixed, so step times vary with "
            "DVFS; run 'sudo jetson_clocks' (and the MAX-N nvpmodel) for comparable numbers")


def _collect_board_info(interval_s: float = JtopSampler.default_interval_s) -> dict[str, Any]:
    """Board, L4T/JetPack, nvpmodel and jetson_clocks from a short jtop connection."""
    from jtop import jtop

    with jtop(interval=interval_s) as jetson:
        hardware = dict(jetson.board.get("hardware", {}))
        nvp = jetson.nvpmodel
        jc = jetson.jetson_clocks
        nvpmodel = str(nvp.name) if nvp is not None and hasattr(nvp, "name") else (
            str(nvp) if nvp is not None else None)
        jc_state: Any = None
        if jc is not None:
            jc_state = "running" if bool(jc) else str(getattr(jc, "status", "inactive"))
    info: dict[str, Any] = {
        "model": hardware.get("Model"),
        "module": hardware.get("Module"),
        "l4t": hardware.get("L4T"),
        "jetpack": hardware.get("Jetpack"),
        "hardware": hardware,
        "nvpmodel": nvpmodel,
        "jetson_clocks": jc_state,
    }
    info["warning"] = clock_warning(jc_state, nvpmodel)
    return info


def board_info(timeout_s: float = 20.0) -> dict[str, Any] | None:
    """Jetson board facts for environment.json, or None where no jtop service answers.

    Runs in a child process so that importing jtop does not change this
    process's multiprocessing start method.
    """
    if not socket_availability().ok:
        return None
    try:
        out = subprocess.run([sys.executable, "-m", "harness.samplers.jtop", "--board-info"],
                             capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


if __name__ == "__main__":
    if sys.argv[1:] == ["--board-info"]:
        print(json.dumps(_collect_board_info(), default=str))
