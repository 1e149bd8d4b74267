"""What this machine is and offers: environment.json for runs, and ``tfbench env``.

The orchestrator never imports TensorFlow, so TensorFlow's version and build
information come from a short probe subprocess (``python -m harness.environment
--probe``). ``tfbench env`` may import TensorFlow itself: listing devices and
engines is its whole point.
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
    return info


def tensorflow_info_subprocess(timeout_s: float = 120) -> dict[str, Any]:
    try:
        out = subprocess.run([sys.executable, "-m", "harness.environment", "--probe"],
                             capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"tensorflow_error": f"probe timed out after {timeout_s:g} s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [""])[-1]
        return {"tensorflow_error": f"probe failed: {last}"}
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def jetson_info() -> dict[str, Any] | None:
    try:
        from harness.samplers.jtop import board_info
    except ImportError:
        return None
    info: dict[str, Any] | None = board_info()
    return info


def collect(run_id: str, clock_origin_ns: int, command_line: Sequence[str],
            profile: str = "") -> dict[str, Any]:
    """The environment.json record of a run (without schema_version; the writer adds it)."""
    uname = platform.uname()
    env: dict[str, Any] = {
        "run_id": run_id,
        "started_at_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "clock_origin_ns": clock_origin_ns,
        "host": socket.gethostname(),
        "os": f"{uname.system} {uname.release}",
        "machine": uname.machine,
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "tfbench_version": __version__,
        "git_commit": git_commit(),
        "command_line": list(command_line),
        "profile": profile,
    }
    env.update(tensorflow_info_subprocess())
    jetson = jetson_info()
    env["jetson"] = jetson
    return env


# -- tfbench env -----------------------------------------------------------------------

def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def engine_availability() -> dict[str, dict[str, Any]]:
    """Each engine's availability for an inference cell here (imports TensorFlow)."""
    from harness.config import Cell
    from harness.engines import load_engine

    out: dict[str, dict[str, Any]] = {}
    for name, spec in ENGINES.items():
        device = "gpu" if name == "tftrt" else "cpu"
        cell = Cell(model="tiny_cnn", device=device, engine=name, precision=spec.precisions[0])
        try:
            avail = load_engine(name).availability(cell, {})
            out[name] = {"available": avail.ok, "reason": avail.reason}
        except ImportError as exc:
            out[name] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
        out[name]["description"] = spec.description
    return out


def sampler_availability() -> dict[str, dict[str, Any]]:
    try:
        from harness.samplers import available_samplers
    except ImportError as exc:
        return {"samplers": {"available": False, "reason": str(exc)}}
    return {name: {"available": a.ok, "reason": a.reason}
            for name, a in available_samplers().items()}


def run_command(args: argparse.Namespace) -> int:
    info: dict[str, Any] = {
        "host": socket.gethostname(), "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "tfbench_version": __version__,
    }
    info.update(probe_tensorflow())
    info["engines"] = engine_availability()
    info["samplers"] = sampler_availability()
    info["jetson"] = jetson_info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"host        {info['host']}  ({info['os']}, Python {info['python']})")
    print(f"cpu         {info['cpu_model']} x{info['cpu_count']}")
    print(f"tensorflow  {info['tensorflow_version']}  keras {info.get('keras_version')}")
    b = info["tensorflow_build"]
    print(f"build       CUDA build: {b.get('is_cuda_build')}  CUDA {b.get('cuda_version') or '-'}  "
          f"cuDNN {b.get('cudnn_version') or '-'}  TensorRT build: {b.get('is_tensorrt_build')}")
    print(f"tensorrt    {info['tensorrt']}")
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
    if info["jetson"]:
        print(f"jetson      {json.dumps(info['jetson'], default=str)}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        print(json.dumps(probe_tensorflow(), default=str))
        sys.exit(0)
    sys.exit(2)
