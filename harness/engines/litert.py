"""LiteRT (TFLite): convert the Keras model to fp32, fp16, dynamic-range or full-int8
flatbuffers and run them with the LiteRT interpreter on the CPU.

The interpreter comes from ``ai-edge-litert`` (``tf.lite.Interpreter`` where that
package is missing). Both default to one thread, so ``num_threads`` is always set
(default: every core this process may use). XNNPACK is the default CPU delegate;
``xnnpack = false`` runs the builtin kernels without default delegates.

Full int8 has int8 input and output tensors (the converter's
``inference_input_type``/``inference_output_type``): `adapt_input` quantises the
float [0, 255] images outside the timed step, `predict` dequantises the outputs, so
the timed step is what an integer-only deployment runs.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from harness.availability import Availability
from harness.config import Cell, RunSettings
from harness.engines.base import (
    DeviceMemory,
    Engine,
    PrepareInfo,
    cpu_count,
    option,
    run_in_batches,
)
from harness.engines.tfruntime import TensorFlowRuntime


def interpreter_module() -> tuple[Any, Any, str]:
    """(Interpreter class, OpResolverType enum, runtime description): ai-edge-litert
    first, TensorFlow's deprecated tf.lite.Interpreter otherwise."""
    try:
        from ai_edge_litert import interpreter as litert

        try:
            from importlib.metadata import version

            label = f"ai-edge-litert {version('ai-edge-litert')}"
        except Exception:  # pragma: no cover - metadata missing in odd installs
            label = "ai-edge-litert"
        return litert.Interpreter, litert.OpResolverType, label
    except ImportError:
        import tensorflow as tf

        return (tf.lite.Interpreter, tf.lite.experimental.OpResolverType,
                f"tf.lite.Interpreter (TensorFlow {tf.__version__})")


def resolve_options(options: Mapping[str, Any]) -> tuple[int, bool]:
    """``(num_threads, xnnpack)`` from ``[engine_options.litert]`` (validated by
    `RunSettings` against the engine table): 0 threads means every core."""
    threads: int = option(options, "litert", "num_threads", 0)
    xnnpack: bool = option(options, "litert", "xnnpack", True)
    return threads or cpu_count(), xnnpack


def convert(model: Any, precision: str,
            calibration: Callable[[], Iterator[np.ndarray]] | None) -> bytes:
    """The TFLite flatbuffer of a Keras model at one precision (TensorFlow's converter)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision in ("fp16", "dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        if calibration is None:
            raise ValueError("litert int8 needs calibration data (a representative dataset)")

        def representative() -> Iterator[list[np.ndarray]]:
            for batch in calibration():
                yield [np.asarray(batch, dtype=np.float32)]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    flatbuffer: bytes = converter.convert()
    return flatbuffer


class LiteRtEngine(TensorFlowRuntime):
    """A converted TFLite model in the LiteRT interpreter (inference only)."""

    name = "litert"

    def __init__(self, cell: Cell, settings: RunSettings, options: Mapping[str, Any]) -> None:
        super().__init__(cell, settings, options)
        self.num_threads, self.xnnpack = resolve_options(self.options)

    @classmethod
    def availability(cls, cell: Cell, options: Mapping[str, Any]) -> Availability:
        if cell.device != "cpu":
            return Availability(False, f"LiteRT runs on the CPU here (no GPU delegate is wired "
                                       f"in); this cell's device is {cell.device}")
        try:
            _, _, label = interpreter_module()
        except ImportError as exc:
            return Availability(False, f"neither ai-edge-litert nor tf.lite is importable: {exc}")
        return Availability(True, label)

    def prepare(self, workload: Any, example: tuple[Any, Any], calibration: Any) -> PrepareInfo:
        interpreter_cls, resolver, label = interpreter_module()
        start = time.perf_counter()
        flatbuffer = convert(workload.model, self.cell.precision, calibration)
        convert_s = time.perf_counter() - start
        start = time.perf_counter()
        kwargs: dict[str, Any] = {"model_content": flatbuffer, "num_threads": self.num_threads}
        if not self.xnnpack:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interp = interpreter_cls(**kwargs)
        size = self.cell.input_size
        inp = interp.get_input_details()[0]
        interp.resize_tensor_input(inp["index"], [self.cell.batch_size, size, size, 3],
                                   strict=True)
        interp.allocate_tensors()  # the default delegate (XNNPACK) is applied here
        build_s = time.perf_counter() - start
        self.interp = interp
        self.input = interp.get_input_details()[0]
        self.output = interp.get_output_details()[0]
        ops = [op["op_name"] for op in interp._get_ops_details()]
        detail = {
            "runtime": label,
            "num_threads": self.num_threads,
            "xnnpack": self.xnnpack,
            "delegated": "DELEGATE" in ops,
            "model_bytes": len(flatbuffer),
            "input_dtype": np.dtype(self.input["dtype"]).name,
            "output_dtype": np.dtype(self.output["dtype"]).name,
            "input_quantization": list(self.input["quantization"]),
            "output_quantization": list(self.output["quantization"]),
            "ops": dict(Counter(ops)),
        }
        return PrepareInfo(convert_s=convert_s, build_s=build_s, xla=False, detail=detail)

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self.input["dtype"])
        if dtype == np.float32:
            return np.ascontiguousarray(images, dtype=np.float32)
        scale, zero = self.input["quantization"]
        info = np.iinfo(dtype)
        q = np.round(np.asarray(images, dtype=np.float32) / scale + zero)
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize(self, values: np.ndarray) -> np.ndarray:
        if np.dtype(self.output["dtype"]) == np.float32:
            return np.asarray(values, dtype=np.float32)
        scale, zero = self.output["quantization"]
        return ((values.astype(np.float32) - zero) * scale).astype(np.float32)

    def adapt_input(self, batch: tuple[Any, Any]) -> Any:
        images = batch[0]
        return self._quantize(images.numpy() if hasattr(images, "numpy") else images)

    def step(self, batch: Any) -> Any:
        self.interp.set_tensor(self.input["index"], batch)
        self.interp.invoke()  # synchronous: the work is done when it returns
        return None

    def finish(self, result: Any) -> float | None:
        self.interp.get_tensor(self.output["index"])  # the output copied to the caller
        return None

    def _run(self, images: np.ndarray) -> np.ndarray:
        self.step(self._quantize(images))
        return self._dequantize(self.interp.get_tensor(self.output["index"]))

    def predict(self, images: np.ndarray) -> np.ndarray:
        return run_in_batches(self._run, images, self.cell.batch_size)

    def memory_peak(self) -> DeviceMemory:
        return DeviceMemory(None, "LiteRT runs on the CPU here: its tensor arena is host "
                                  "memory (host_rss_peak_bytes)")

    def close(self) -> None:
        self.interp = None


def engine_class(name: str) -> type[Engine]:
    return LiteRtEngine
