"""The TensorFlow probe's answer, reused while nothing it depends on has changed.

`harness.environment.tensorflow_info_subprocess` starts a Python process that imports
TensorFlow (and every engine's framework, to check it) only to learn versions, build
facts, the GPUs TensorFlow sees and which engines can run: about 7 s on a 2-core
machine, before the first cell of every ``tfbench run`` (measured in
docs/measurements.md). Its answer is a function of

- the interpreter and what is installed where it imports from (the names of the
  ``*.dist-info`` / ``*.egg-info`` / ``*.pth`` entries of each ``sys.path`` folder:
  they carry the versions),
- the environment variables that steer TensorFlow, CUDA, Keras and the other
  frameworks (``TF_*``, ``CUDA*``, ``NVIDIA*``, ``XLA*``, ``KERAS*``, ``JAX*``,
  ``TORCH*``, ``LD_*``, ``PYTHON*``, ``TFBENCH_*`` but the cache folder),
- the hardware and driver as this boot sees them (the kernel's ``boot_id``, the
  NVIDIA driver's version file, the ``/dev/nvidia*`` nodes),
- tfbench's own source (path, size and modification time of each ``harness`` file).

A key over all of these names one cache file, ``$TFBENCH_CACHE_DIR/probe/<key>.json``
(default ``~/.cache/tfbench``). A hit returns the stored answer with the time it was
probed (environment.json records it as ``tensorflow_probed_at_utc``); a miss probes and
stores. A failed probe (``tensorflow_error``) is never stored. Without a ``boot_id``
(not Linux) nothing is cached, and ``TFBENCH_PROBE_CACHE=0`` turns the cache off.
``tfbench env`` always probes afresh. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import NoSpace
from harness.records import write_atomic

CACHE_ENV = "TFBENCH_CACHE_DIR"
SWITCH_ENV = "TFBENCH_PROBE_CACHE"
PROBED_AT = "tensorflow_probed_at_utc"
ENV_PREFIXES = ("TF_", "CUDA", "NVIDIA", "XLA", "KERAS", "JAX", "TORCH", "LD_", "PYTHON",
                "TFBENCH_")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
NVIDIA_VERSION = Path("/proc/driver/nvidia/version")
HARNESS = Path(__file__).resolve().parent
_INSTALLED = (".dist-info", ".egg-info", ".egg-link", ".pth")


def cache_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get(CACHE_ENV) or Path.home() / ".cache" / "tfbench") / "probe"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _installed(paths: list[str]) -> list[list[str]]:
    out = []
    for entry in paths:
        try:
            names = sorted(n for n in os.listdir(entry or ".") if n.endswith(_INSTALLED))
        except OSError:
            continue
        out.append([entry, *names])
    return out


def _sources() -> list[tuple[str, int, int]]:
    out = []
    for path in sorted(HARNESS.rglob("*.py")):
        st = path.stat()
        out.append((str(path.relative_to(HARNESS)), st.st_size, st.st_mtime_ns))
    return out


def probe_key(env: Mapping[str, str], python: str = sys.executable,
              paths: list[str] | None = None, boot_id: Path | None = None,
              nvidia_version: Path | None = None, dev: Path = Path("/dev")) -> str | None:
    """The key of everything the probe's answer depends on; None when this machine does
    not say which boot it is in (then nothing is cached)."""
    boot = _read(BOOT_ID if boot_id is None else boot_id)
    if not boot:
        return None
    try:
        nodes = sorted(n for n in os.listdir(dev) if n.startswith("nvidia"))
    except OSError:
        nodes = []
    facts = {
        "python": [os.path.realpath(python), sys.version],
        "installed": _installed(sys.path if paths is None else paths),
        "env": {k: v for k, v in sorted(env.items())
                if k.startswith(ENV_PREFIXES) and k not in (CACHE_ENV, SWITCH_ENV)},
        "boot_id": boot.strip(), "dev": nodes,
        "nvidia_driver": _read(NVIDIA_VERSION if nvidia_version is None else nvidia_version),
        "harness": _sources(),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def cached_probe(probe: Callable[[], dict[str, Any]], env: Mapping[str, str] | None = None,
                 key: str | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
                 ) -> dict[str, Any]:
    """``probe()``'s answer with ``tensorflow_probed_at_utc``: from the cache when an
    answer for the same key is stored, else probed now (and stored unless it failed)."""
    env = os.environ if env is None else env
    if env.get(SWITCH_ENV, "1") == "0":
        key = None
    elif key is None:
        key = probe_key(env)
    path = None if key is None else cache_dir(env) / f"{key}.json"
    if path is not None:
        try:
            stored: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            pass
        else:
            if isinstance(stored, dict) and isinstance(stored.get(PROBED_AT), str):
                return stored
    answer = {**probe(), PROBED_AT: now().isoformat(timespec="seconds")}
    if path is not None and "tensorflow_error" not in answer:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(answer, sort_keys=True))
        except (OSError, NoSpace):  # a read-only or full cache folder: the run goes on
            pass
    return answer
