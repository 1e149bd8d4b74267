"""Inference/training engines behind one narrow protocol.

The registry below is static data (no TensorFlow import), so configuration can
validate engine, mode and precision combinations anywhere. Each engine's code
lives in its own module, imported only inside a worker process; adding an
engine means adding a module and one `EngineSpec` line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.engines.base import Engine


@dataclass(frozen=True)
class EngineSpec:
    """What an engine can run, known without importing it."""

    name: str
    module: str
    modes: tuple[str, ...]
    precisions: tuple[str, ...]
    description: str


ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec("tf", "harness.engines.tf", ("infer", "train"), ("fp32", "mixed"),
                   "TensorFlow graph mode (tf.function), XLA off"),
        EngineSpec("xla", "harness.engines.tf", ("infer", "train"), ("fp32", "mixed"),
                   "TensorFlow with XLA (jit_compile=True)"),
        EngineSpec("tftrt", "harness.engines.tftrt", ("infer",), ("fp32", "fp16", "int8"),
                   "TF-TRT (TrtGraphConverterV2) on a GPU"),
        EngineSpec("litert", "harness.engines.litert", ("infer",),
                   ("fp32", "fp16", "dynamic", "int8"),
                   "LiteRT / TFLite interpreter, XNNPACK delegate"),
        EngineSpec("onnxruntime", "harness.engines.onnxruntime", ("infer",), ("fp32",),
                   "tf2onnx conversion, ONNX Runtime with the best provider available"),
    )
}


def load_engine(name: str) -> type[Engine]:
    """Import an engine's module (TensorFlow may be imported) and return its class."""
    spec = ENGINES[name]
    module = importlib.import_module(spec.module)
    cls: type[Engine] = module.engine_class(name)
    return cls
