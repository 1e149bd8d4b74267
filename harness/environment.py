"""What this machine is and offers: environment.json for runs, and ``tfbench env``.

The orchestrator never imports TensorFlow, so TensorFlow's version and build
information come from a short probe subprocess (``python -m harness.environment
--probe``), whose answer is reused while nothing it depends on changes
(`harness.probe_cache`). ``tfbench env`` may import TensorFlow itself: listing
devices and engines is its whole point.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import __version__
from harness.engines import ENGINES
from harness.envmodel import Environment
from harness.probe_cache import cached_probe

REPO_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def probe_tensorflow() -> dict[str, Any]:
    """TensorFlow, Keras and build facts; imports TensorFlow (run in a subprocess)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    info: dict[str, Any] = {"tensorflow_version": tf.__version__}
    try:
        import keras

        info["keras_version"] = keras.__version__
    except ImportError:  # pragma: no cover - TF always ships a Keras
        info["keras_version"] = None
    build = dict(tf.sysconfig.get_build_info())
    info["tensorflow_build"] = {k: build.get(k) for k in
                                ("is_cuda_build", "is_rocm_build", "is_tensorrt_build",
                                 "cuda_version", "cudnn_version", "cuda_compute_capabilities")}
    try:
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils as trt

        info["tensorrt"] = {"enabled": bool(trt.is_tensorrt_enabled()),
                            "linked": ".".join(map(str, trt.get_linked_tensorrt_version())),
                            "loaded": ".".join(map(str, trt.get_loaded_tensorrt_version()))}
    except Exception as exc:  # TF builds without the TF-TRT wrapper
        info["tensorrt"] = {"enabled": False, "error": f"{type(exc).__name__}: {exc}"}
    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        gpus.append({"name": dev.name, **{k: str(v) for k, v in details.items()}})
    info["gpus"] = gpus
    info["engine_availability"] = engine_availability()
    return info


def tensorflow_info_subprocess(timeout_s: float = 120) -> dict[str, Any]:
    """`probe_tensorflow` in a child process, its TensorFlow C++ log silenced (level 3) and
    its stderr kept off the console; ``engine_availability`` is each engine's own check."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        out = subprocess.run([sys.executable, "-m", "harness.environment", "--probe"],
                             capture_output=True, text=True, timeout=timeout_s, check=False,
                             env=env)
    except subprocess.TimeoutExpired:
        return {"tensorflow_error": f"probe timed out after {timeout_s:g} s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [""])[-1]
        return {"tensorflow_error": f"probe failed: {last}"}
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def for_environment(probe: dict[str, Any]) -> dict[str, Any]:
    """The probe's output as environment.json records it: engines reduced to the
    unavailable ones with their reasons (``engines_unavailable``)."""
    out = {k: v for k, v in probe.items() if k != "engine_availability"}
    engines = probe.get("engine_availability")
    if isinstance(engines, dict):
        out["engines_unavailable"] = {name: str(e.get("reason") or "unavailable")
                                      for name, e in engines.items() if not e.get("available")}
    return out


def jetson_info() -> dict[str, Any] | None:
    try:
        from harness.samplers.jtop import board_info
    except ImportError:
        return None
    info: dict[str, Any] | None = board_info()
    return info


def build_environment(*, run_id: str, started_at_utc: str, clock_origin_ns: int,
                      command_line: Sequence[str], profile: str, platform_facts: dict[str, Any],
                      tensorflow: dict[str, Any], jetson: dict[str, Any] | None) -> Environment:
    """The typed environment of a run from what the probes found.

    ``platform_facts`` has ``host, os, machine, python, cpu_model, cpu_count,
    tfbench_version, git_commit`` (`platform_facts`); ``tensorflow`` is what
    `probe_tensorflow` prints (or ``{"tensorflow_error": ...}``); ``jetson`` is
    jtop's `board_info` or None. Kept apart from `collect` so that recorded
    probe output (the golden Jetson runs) goes through the same code.
    """
    data: dict[str, Any] = {
        "run_id": run_id, "started_at_utc": started_at_utc, "clock_origin_ns": clock_origin_ns,
        **platform_facts, "command_line": list(command_line), "profile": profile,
        **tensorflow, "jetson": jetson,
    }
    return Environment.from_json(data)


def platform_facts() -> dict[str, Any]:
    """Host, OS, Python, CPU and project facts of this machine."""
    uname = platform.uname()
    return {"host": socket.gethostname(), "os": f"{uname.system} {uname.release}",
            "machine": uname.machine, "python": platform.python_version(),
            "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
            "tfbench_version": __version__, "git_commit": git_commit()}


def collect(run_id: str, clock_origin_ns: int, command_line: Sequence[str],
            profile: str = "") -> Environment:
    """The environment.json record of a run, probed on this machine."""
    return build_environment(
        run_id=run_id,
        started_at_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        clock_origin_ns=clock_origin_ns, command_line=command_line, profile=profile,
        platform_facts=platform_facts(),
        tensorflow=for_environment(cached_probe(tensorflow_info_subprocess)),
        jetson=jetson_info())


# -- tfbench env -----------------------------------------------------------------------

def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--peak", action="store_true",  # profiling hook (harness.peak)
                        help="also measure attainable fp32 FLOP/s and memory bandwidth "
                        "(about 30 s per device)")


def engine_availability() -> dict[str, dict[str, Any]]:
    """Each engine's availability for an inference cell here, with the reason when not.

    TensorFlow-built engines are checked in this process (``tfbench env`` imports
    TensorFlow anyway). Keras-on-another-backend engines are checked without importing
    their framework here: only whether it (and Keras 3) is installed, with versions,
    since Keras binds one backend per process and the worker sets it per cell.
    """
    from harness.config import Cell
    from harness.engines import load_engine
    from harness.engines.keras_backend import backend_availability
    from harness.worker import framework_availability

    out: dict[str, dict[str, Any]] = {}
    for name, spec in ENGINES.items():
        device = "gpu" if name == "tftrt" else "cpu"
        cell = Cell(model="tiny_cnn", device=device, engine=name, precision=spec.precisions[0])
        framework = framework_availability(cell)
        try:
            if not framework.ok:
                avail = framework
            elif spec.keras_backend:
                avail = backend_availability(cell, spec.framework)
            else:
                avail = load_engine(name).availability(cell, {})
            out[name] = {"available": avail.ok, "reason": avail.reason}
        except ImportError as exc:
            out[name] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
        out[name]["description"] = spec.description
        out[name]["framework"] = spec.framework
    return out


def sampler_availability() -> dict[str, dict[str, Any]]:
    try:
        from harness.samplers import available_samplers
    except ImportError as exc:
        return {"samplers": {"available": False, "reason": str(exc)}}
    return {name: {"available": a.ok, "reason": a.reason}
            for name, a in available_samplers().items()}


def _build_line(build: dict[str, Any], gpus: list[Any]) -> str:
    cuda = build.get("is_cuda_build")
    line = (f"CUDA build: {'yes' if cuda else 'no'}  CUDA {build.get('cuda_version') or '-'}  "
            f"cuDNN {build.get('cudnn_version') or '-'}  "
            f"TensorRT build: {'yes' if build.get('is_tensorrt_build') else 'no'}")
    if cuda and not gpus:
        line += "  (CUDA build, no GPU visible)"
    return line


def _tensorrt_line(trt: dict[str, Any]) -> str:
    if trt.get("enabled"):
        return f"enabled (linked {trt.get('linked')}, loaded {trt.get('loaded')})"
    return "not available" + (f": {trt['error']}" if trt.get("error") else "")


def _jetson_line(jetson: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in jetson.items() if v not in (None, "", {}, []))


def run_command(args: argparse.Namespace) -> int:
    info: dict[str, Any] = {
        "host": socket.gethostname(), "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "tfbench_version": __version__,
    }
    # TensorFlow and the engines are probed in a child process: no C++ log on this console
    info.update(tensorflow_info_subprocess())
    info["engines"] = info.pop("engine_availability", {})
    info["samplers"] = sampler_availability()
    info["jetson"] = jetson_info()
    if getattr(args, "peak", False):  # profiling hook (harness.peak)
        from harness.peak import probe_subprocess

        info["peak"] = {d: probe_subprocess(d) for d in
                        ["cpu", *(f"gpu:{i}" for i in range(len(info["gpus"])))]}
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"host        {info['host']}  ({info['os']}, Python {info['python']})")
    print(f"cpu         {info['cpu_model']} x{info['cpu_count']}")
    if info.get("tensorflow_error"):
        print(f"tensorflow  unavailable: {info['tensorflow_error']}")
    else:
        print(f"tensorflow  {info['tensorflow_version']}  keras {info.get('keras_version')}")
        print(f"build       {_build_line(info['tensorflow_build'], info['gpus'])}")
        print(f"tensorrt    {_tensorrt_line(info['tensorrt'])}")
        print("devices     CPU" + "".join(f", {g['name']} ({g.get('device_name', '?')})"
                                           for g in info["gpus"]))
        if not info["gpus"]:
            print("            no GPU visible to TensorFlow: gpu cells will be skipped")
    print("engines")
    for name, e in info["engines"].items():
        state = "available" if e["available"] else f"unavailable: {e['reason']}"
        print(f"  {name:<12} {state}")
        if e["available"] and e.get("reason"):
            print(f"  {'':<12} {e['reason']}")
    print("samplers")
    for name, s in info["samplers"].items():
        state = "available" if s["available"] else f"unavailable: {s['reason']}"
        print(f"  {name:<12} {state}")
    for device, peak in info.get("peak", {}).items():  # profiling hook (harness.peak)
        from harness.peak import describe

        print(f"peak {device:<7}{describe(peak)}")
    if info["jetson"]:
        print(f"jetson      {_jetson_line(info['jetson'])}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        print(json.dumps(probe_tensorflow(), default=str))
        sys.exit(0)
    sys.exit(2)
