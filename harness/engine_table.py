"""The engine table: what each engine runs and which options it takes, as plain data.

This module imports nothing from ``harness`` (and no framework), so configuration
can validate engines, modes, precisions and engine options anywhere, and the
``config -> engines -> base -> config`` import cycle cannot come back.
``harness.engines`` re-exports `ENGINES` and `EngineSpec`.

Option checks return a message instead of raising: the caller (``RunSettings``)
raises ``UserError`` with it, so this module needs no harness import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OptionSpec:
    """One ``[engine_options.<engine>]`` key: its type and the values allowed.

    ``kind`` is ``int``, ``float``, ``bool``, ``str`` or ``str_list``; ``minimum``
    and ``maximum`` bound numbers; ``choices`` lists the allowed strings; ``allowed``
    is what an error message shows.
    """

    name: str
    kind: str
    allowed: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def rejects(self, value: Any) -> bool:
        """True when ``value`` is not allowed for this option."""
        if self.kind == "bool":
            return not isinstance(value, bool)
        if self.kind == "str":
            return not isinstance(value, str) or (bool(self.choices) and value not in self.choices)
        if self.kind == "str_list":
            return (not isinstance(value, (list, tuple)) or not value
                    or not all(isinstance(v, str) for v in value))
        if isinstance(value, bool):
            return True
        types: tuple[type, ...] = (int,) if self.kind == "int" else (int, float)
        if not isinstance(value, types):
            return True
        number = float(value)  # type: ignore[arg-type]  # an int or float (checked above)
        if self.minimum is not None and number < self.minimum:
            return True
        return self.maximum is not None and number > self.maximum


# Options every engine accepts: parity thresholds (harness.parity) and the number of
# images drawn from the cell's data for int8 calibration (harness.worker).
COMMON_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("parity_max_rel_err", "float", "numbers >= 0", minimum=0),
    OptionSpec("parity_min_cosine", "float", "numbers from -1 to 1", minimum=-1, maximum=1),
    OptionSpec("calibration_samples", "int", "integers >= 1", minimum=1),
)
_THREADS = OptionSpec("num_threads", "int", "integers >= 0 (0: all cores)", minimum=0)


@dataclass(frozen=True)
class EngineSpec:
    """What an engine can run and which options it takes, known without importing it.

    ``framework`` is the package that runs the model (``tensorflow``, ``jax``,
    ``torch``); ``keras_backend`` is set for Keras-3-on-another-backend engines (the
    worker sets ``KERAS_BACKEND`` to it before Keras is imported); ``extra`` is the
    pip extra that installs the framework.
    """

    name: str
    module: str
    modes: tuple[str, ...]
    precisions: tuple[str, ...]
    description: str
    options: tuple[OptionSpec, ...] = ()
    framework: str = "tensorflow"
    keras_backend: str | None = None
    extra: str | None = None

    @property
    def all_options(self) -> dict[str, OptionSpec]:
        """This engine's own options plus the common ones, by name."""
        return {o.name: o for o in (*self.options, *COMMON_OPTIONS)}


ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec("tf", "harness.engines.tf", ("infer", "train"), ("fp32", "mixed"),
                   "TensorFlow graph mode (tf.function), XLA off"),
        EngineSpec("xla", "harness.engines.tf", ("infer", "train"), ("fp32", "mixed"),
                   "TensorFlow with XLA (jit_compile=True)"),
        EngineSpec("tftrt", "harness.engines.tftrt", ("infer",), ("fp32", "fp16", "int8"),
                   "TF-TRT (TrtGraphConverterV2) on a GPU",
                   options=(
                       OptionSpec("max_workspace_size_bytes", "int", "integers > 0 (bytes)",
                                  minimum=1),
                       OptionSpec("minimum_segment_size", "int", "integers >= 1", minimum=1),
                   )),
        EngineSpec("litert", "harness.engines.litert", ("infer",),
                   ("fp32", "fp16", "dynamic", "int8"),
                   "LiteRT / TFLite interpreter, XNNPACK delegate",
                   options=(_THREADS, OptionSpec("xnnpack", "bool", "true, false"))),
        EngineSpec("onnxruntime", "harness.engines.onnxruntime", ("infer",), ("fp32",),
                   "tf2onnx conversion, ONNX Runtime with the best provider available",
                   options=(
                       _THREADS,
                       OptionSpec("opset", "int", "integers >= 1", minimum=1),
                       OptionSpec("providers", "str_list",
                                  "a non-empty list of provider names, "
                                  "e.g. ['CUDAExecutionProvider']"),
                   )),
        EngineSpec("keras-jax", "harness.engines.keras_jax", ("infer", "train"), ("fp32",),
                   "Keras 3 on JAX: jax.jit inference, jitted value_and_grad train step",
                   framework="jax", keras_backend="jax", extra="jax"),
        EngineSpec("keras-torch", "harness.engines.keras_torch", ("infer", "train"), ("fp32",),
                   "Keras 3 on PyTorch: eager (or torch.compile) inference, autograd train step",
                   options=(OptionSpec("compile", "str", "eager, torch.compile",
                                       choices=("eager", "torch.compile")),),
                   framework="torch", keras_backend="torch", extra="torch"),
    )
}


def engine_options_problem(engine: str, options: Any) -> str | None:
    """Why ``[engine_options.<engine>]`` is not valid, or None when it is.

    The message names the field, the value and what is allowed; a key that belongs
    to another engine says which.
    """
    if engine not in ENGINES:
        return (f"engine_options: {engine!r} is not valid; allowed: "
                f"{', '.join(ENGINES)}")
    if not isinstance(options, Mapping):
        return f"engine_options.{engine}: {options!r} is not valid; allowed: a table of options"
    known = ENGINES[engine].all_options
    for key, value in options.items():
        spec = known.get(key)
        if spec is None:
            owners = [name for name, s in ENGINES.items()
                      if name != engine and key in s.all_options]
            hint = f" ({key!r} is an option of {', '.join(owners)})" if owners else ""
            return (f"engine_options.{engine} key: {key!r} is not valid; allowed: "
                    f"{', '.join(known)}{hint}")
        if spec.rejects(value):
            return f"engine_options.{engine}.{key}: {value!r} is not valid; allowed: {spec.allowed}"
    return None
