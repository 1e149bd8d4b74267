"""ONNX Runtime: tf2onnx conversion with an explicit input signature, then an
InferenceSession on the best execution provider available.

Provider choice: a ``cpu`` cell uses ``CPUExecutionProvider``; a ``gpu`` cell uses
``TensorrtExecutionProvider`` if present, else ``CUDAExecutionProvider`` (CPU kept
as the fallback for unsupported nodes), and is skipped when onnxruntime has neither.
``providers = [...]`` in ``[engine_options.onnxruntime]`` overrides the choice. This is
the route to TensorRT on TensorFlow >= 2.18, which has no TF-TRT.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.availability import Availability
from harness.config import Cell, RunSettings
from harness.engines.base import DeviceMemory, Engine, PrepareInfo, cpu_count, option
from harness.engines.tfruntime import TensorFlowRuntime

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
DEFAULT_OPSET = 17


def choose_providers(device: str, available: Sequence[str],
                     requested: Sequence[str] | None = None) -> tuple[list[str], str]:
    """The provider list for a session, or ``([], reason)`` when none fits the device."""
    have = list(available)
    if requested:
        missing = [p for p in requested if p not in have]
        if missing:
            return [], (f"requested provider(s) {', '.join(missing)} not in this onnxruntime "
                        f"(available: {', '.join(have)})")
        return list(requested), ""
    if device == "cpu":
        return ["CPUExecutionProvider"], ""
    gpu = [p for p in GPU_PROVIDERS if p in have]
    if not gpu:
        return [], (f"no GPU execution provider in this onnxruntime (available: "
                    f"{', '.join(have)}); install onnxruntime-gpu for CUDA/TensorRT")
    return [*gpu, "CPUExecutionProvider"], ""


def resolve_options(options: Mapping[str, Any]) -> tuple[int, int, list[str] | None]:
    """``(num_threads, opset, providers)`` from ``[engine_options.onnxruntime]`` (validated
    by `RunSettings` against the engine table): 0 threads means every core."""
    threads: int = option(options, "onnxruntime", "num_threads", 0)
    opset: int = option(options, "onnxruntime", "opset", DEFAULT_OPSET)
    providers = option(options, "onnxruntime", "providers", None)
    return threads or cpu_count(), opset, list(providers) if providers else None


def convert(model: Any, input_size: int, opset: int) -> Any:
    """The ONNX ModelProto of a Keras model (input ``image``: float32 [N, H, W, 3])."""
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec((None, input_size, input_size, 3), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    return proto


class OnnxRuntimeEngine(TensorFlowRuntime):
    """A tf2onnx-converted model in an ONNX Runtime InferenceSession (inference only)."""

    name = "onnxruntime"

    def __init__(self, cell: Cell, settings: RunSettings, options: Mapping[str, Any]) -> None:
        super().__init__(cell, settings, options)
        self.num_threads, self.opset, self.requested = resolve_options(self.options)

    @classmethod
    def availability(cls, cell: Cell, options: Mapping[str, Any]) -> Availability:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not installed ({exc}); "
                                       "pip install 'tfbench[onnx]'")
        try:
            import tf2onnx
        except Exception as exc:  # protobuf/numpy mismatches raise more than ImportError
            return Availability(False, f"tf2onnx cannot be imported ({type(exc).__name__}: {exc}); "
                                       "pip install 'tfbench[onnx]'")
        available = ort.get_available_providers()
        requested = options.get("providers")
        chosen, reason = choose_providers(cell.device, available,
                                          requested if isinstance(requested, list) else None)
        if not chosen:
            return Availability(False, f"onnxruntime {ort.__version__}: {reason}")
        return Availability(True, f"onnxruntime {ort.__version__}, tf2onnx {tf2onnx.__version__}; "
                                  f"providers {', '.join(chosen)} "
                                  f"(available: {', '.join(available)})")

    def prepare(self, workload: Any, example: tuple[Any, Any], calibration: Any) -> PrepareInfo:
        import onnxruntime as ort

        start = time.perf_counter()
        proto = convert(workload.model, self.cell.input_size, self.opset)
        content = proto.SerializeToString()
        convert_s = time.perf_counter() - start
        available = ort.get_available_providers()
        providers, reason = choose_providers(self.cell.device, available, self.requested)
        if not providers:
            raise RuntimeError(reason)
        start = time.perf_counter()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.num_threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(content, sess_options=opts, providers=providers)
        build_s = time.perf_counter() - start
        self.input_name = self.session.get_inputs()[0].name
        detail = {
            "onnxruntime": ort.__version__,
            "opset": self.opset,
            "providers_requested": providers,
            "providers_used": self.session.get_providers(),
            "providers_available": available,
            "num_threads": self.num_threads,
            "model_bytes": len(content),
            "onnx_nodes": len(proto.graph.node),
            "onnx_ops": dict(Counter(n.op_type for n in proto.graph.node)),
        }
        return PrepareInfo(convert_s=convert_s, build_s=build_s, xla=False, detail=detail)

    def adapt_input(self, batch: tuple[Any, Any]) -> Any:
        images = batch[0]
        array = images.numpy() if hasattr(images, "numpy") else images
        return np.ascontiguousarray(array, dtype=np.float32)

    def step(self, batch: Any) -> Any:
        return self.session.run(None, {self.input_name: batch})  # synchronous, host outputs

    def finish(self, result: Any) -> float | None:
        return None

    def predict(self, images: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.asarray(images, dtype=np.float32)})
        return np.asarray(out[0], dtype=np.float32)

    def memory_peak(self) -> DeviceMemory:
        return DeviceMemory(None, "ONNX Runtime does not report its allocator's peak "
                                  "(TensorFlow's allocator does not see its memory)")

    def oom_reason(self, exc: BaseException) -> str | None:
        """TensorFlow's error (conversion), or ONNX Runtime's allocation failure, which
        its Python binding raises as a generic error with this message."""
        text = str(exc)
        if "Failed to allocate memory" in text or "bad_alloc" in text:
            return f"{type(exc).__name__}: {text}"
        return super().oom_reason(exc)

    def close(self) -> None:
        self.session = None


def engine_class(name: str) -> type[Engine]:
    return OnnxRuntimeEngine
