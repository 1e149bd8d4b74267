"""Which runs may be compared: the machine class and power settings from the typed environment.

CPU model, GPU names, TensorFlow (and its CUDA/cuDNN) version and the Jetson
board with its JetPack/L4T make up the class: a difference refuses a
comparison unless forced. The power mode (nvpmodel) and jetson_clocks are
settings: a difference warns. Measured, time-varying readings are not part of
the typed environment at all, so they can never count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.envmodel import Environment


def _typed(environment: Environment | Mapping[str, Any]) -> Environment:
    if isinstance(environment, Environment):
        return environment
    return Environment.from_json(environment)


def machine_class(environment: Environment | Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``{"class": {...}, "settings": {...}}`` of one run, keyed by environment.json path."""
    env = _typed(environment)
    klass: dict[str, str | None] = {"cpu_model": env.cpu_model,
                                    "tensorflow_version": env.tensorflow_version}
    if env.tensorflow_build is not None:
        klass["tensorflow_build.cuda_version"] = env.tensorflow_build.cuda_version
        klass["tensorflow_build.cudnn_version"] = env.tensorflow_build.cudnn_version
    for i, gpu in enumerate(env.gpus or ()):
        klass[f"gpus.{i}.name"] = gpu.name
        klass[f"gpus.{i}.device_name"] = gpu.device_name
    settings: dict[str, str | None] = {}
    if env.jetson is not None:
        klass.update({"jetson.model": env.jetson.model, "jetson.module": env.jetson.module,
                      "jetson.jetpack": env.jetson.jetpack, "jetson.l4t": env.jetson.l4t})
        settings = {"jetson.nvpmodel": env.jetson.nvpmodel,
                    "jetson.jetson_clocks": env.jetson.jetson_clocks}
    return {"class": {k: v for k, v in klass.items() if v is not None},
            "settings": {k: v for k, v in settings.items() if v is not None}}


def class_differences(named_envs: Sequence[tuple[str, Environment | Mapping[str, Any]]]
                      ) -> tuple[list[str], list[str]]:
    """Machine-class and setting differences between runs, as readable lines."""
    classes = [(name, machine_class(env)) for name, env in named_envs]
    found: dict[str, list[str]] = {"class": [], "settings": []}
    for part in ("class", "settings"):
        paths = sorted({p for _, c in classes for p in c[part]})
        for path in paths:
            seen = {name: c[part].get(path, "(absent)") for name, c in classes}
            if len(set(seen.values())) > 1:
                found[part].append(
                    f"{path}: " + ", ".join(f"{v!r} in {n}" for n, v in seen.items()))
    return found["class"], found["settings"]
