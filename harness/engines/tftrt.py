"""TF-TRT: SavedModel export, TrtGraphConverterV2 (FP32/FP16/INT8), engines built
before timing.

Availability follows what TensorFlow itself reports: the TF-TRT bindings
(``_pywrap_py_utils``) must exist, TensorFlow must be built with TensorRT, libnvinfer
must be loadable (its loaded version is ``0.0.0`` otherwise), and the cell must run on
a visible GPU. PyPI TensorFlow >= 2.18 is built without TensorRT, so there every
``tftrt`` cell is skipped with that reason (use ``onnxruntime`` with its TensorRT
provider instead).

The converted graph's make-up (TensorRT engines, ops inside them, ops left to
TensorFlow) goes into ``engine_detail``: fragmentation into many small segments is the
usual reason TF-TRT "is not faster".
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.availability import Availability
from harness.config import Cell, RunSettings
from harness.engines.base import Engine, PrepareInfo, option, run_in_batches
from harness.engines.tfruntime import TensorFlowRuntime

PRECISION_MODES = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8"}
DEFAULT_WORKSPACE_BYTES = 1 << 30
DEFAULT_MIN_SEGMENT = 3
INPUT_NAME = "image"
OUTPUT_NAME = "output"
# Graph plumbing that is neither TensorRT work nor real computation left to TensorFlow.
_PLUMBING = frozenset({
    "Placeholder", "Identity", "IdentityN", "NoOp", "Const", "_Arg", "_Retval",
    "ReadVariableOp", "VarHandleOp", "PartitionedCall", "StatefulPartitionedCall",
})


def probe() -> dict[str, Any]:
    """What this TensorFlow says about TensorRT (imports TensorFlow)."""
    import tensorflow as tf

    facts: dict[str, Any] = {"tf_version": tf.__version__}
    try:
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils as trt_utils
    except ImportError as exc:
        facts["import_error"] = f"{type(exc).__name__}: {exc}"
        return facts
    facts["enabled"] = bool(trt_utils.is_tensorrt_enabled())
    facts["linked"] = tuple(trt_utils.get_linked_tensorrt_version())
    facts["loaded"] = tuple(trt_utils.get_loaded_tensorrt_version())
    facts["gpus_visible"] = len(tf.config.get_visible_devices("GPU"))
    return facts


def _version(v: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v)


def decide(facts: Mapping[str, Any], device: str) -> Availability:
    """Availability from `probe` facts, with the exact reason for the first failing check."""
    tf_version = facts["tf_version"]
    if "import_error" in facts:
        return Availability(False, f"TensorFlow {tf_version} has no TF-TRT bindings "
                                   f"(tensorflow.compiler.tf2tensorrt: {facts['import_error']})")
    if not facts["enabled"]:
        return Availability(
            False,
            f"TensorFlow {tf_version} was built without TensorRT "
            "(_pywrap_py_utils.is_tensorrt_enabled() is False); PyPI TensorFlow >= 2.18 has no "
            "TF-TRT: use NVIDIA's Jetson wheel or TensorFlow <= 2.17 with TensorRT, or the "
            "onnxruntime engine with its TensorRT provider",
        )
    linked, loaded = facts["linked"], facts["loaded"]
    if not any(loaded):
        return Availability(
            False,
            f"TensorFlow {tf_version} is linked against TensorRT {_version(linked)} but "
            "libnvinfer could not be loaded (loaded TensorRT version 0.0.0); install TensorRT "
            f"{linked[0]} and put its libraries on LD_LIBRARY_PATH",
        )
    if loaded[0] != linked[0]:
        return Availability(
            False,
            f"TensorFlow {tf_version} is linked against TensorRT {_version(linked)} but "
            f"TensorRT {_version(loaded)} was loaded (major versions differ)",
        )
    if not device.startswith("gpu"):
        return Availability(False, f"TF-TRT runs on a GPU; this cell's device is {device}")
    if not facts["gpus_visible"]:
        return Availability(False, f"no GPU visible to TensorFlow ({device} requested)")
    return Availability(True, f"TensorRT {_version(loaded)} (linked {_version(linked)})")


def converter_params(precision: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``TrtGraphConverterV2`` from the cell and its engine options
    (validated by `RunSettings` against the engine table)."""
    workspace = option(options, "tftrt", "max_workspace_size_bytes", DEFAULT_WORKSPACE_BYTES)
    segment = option(options, "tftrt", "minimum_segment_size", DEFAULT_MIN_SEGMENT)
    return {
        "precision_mode": PRECISION_MODES[precision],
        "max_workspace_size_bytes": workspace,
        "minimum_segment_size": segment,
        "maximum_cached_engines": 1,
        "use_dynamic_shape": False,
        "use_calibration": precision == "int8",
    }


def export_saved_model(model: Any, path: Path, batch_size: int, input_size: int) -> None:
    """Write the model as a SavedModel whose ``serving_default`` takes a fixed-shape
    float32 ``image`` batch and returns ``{"output": ...}`` (what the converter reads)."""
    import tensorflow as tf

    module = tf.Module()
    module.model = model
    spec = tf.TensorSpec((batch_size, input_size, input_size, 3), tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(image: Any) -> dict[str, Any]:
        return {OUTPUT_NAME: model(image, training=False)}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def calibration_input_fn(calibration: Callable[[], Iterator[np.ndarray]]
                         ) -> Callable[[], Iterator[tuple[Any, ...]]]:
    """The INT8 calibration ``input_fn``: the cell's calibration batches as TF tensors."""
    import tensorflow as tf

    def input_fn() -> Iterator[tuple[Any, ...]]:
        for batch in calibration():
            yield (tf.constant(np.asarray(batch, dtype=np.float32)),)

    return input_fn


def graph_makeup(graph_def: Any) -> dict[str, Any]:
    """How a converted graph splits between TensorRT and TensorFlow.

    ``trt_engines``: TRTEngineOp nodes; ``trt_segment_ops``: ops inside them (their
    ``*_native_segment`` functions); ``tf_ops``: real ops left to TensorFlow outside the
    segments, with ``tf_op_types`` the commonest of them.
    """
    segments = [f for f in graph_def.library.function
                if f.signature.name.endswith("_native_segment")]
    others = [f for f in graph_def.library.function
              if not f.signature.name.endswith("_native_segment")]
    nodes = list(graph_def.node) + [n for f in others for n in f.node_def]
    engines = [n for n in nodes if n.op == "TRTEngineOp"]
    left = Counter(n.op for n in nodes if n.op != "TRTEngineOp" and n.op not in _PLUMBING)
    inside = sum(1 for f in segments for n in f.node_def if n.op not in _PLUMBING)
    return {
        "trt_engines": len(engines),
        "trt_segment_ops": inside,
        "tf_ops": sum(left.values()),
        "tf_op_types": dict(left.most_common(15)),
    }


class TfTrtEngine(TensorFlowRuntime):
    """A Keras model converted by TF-TRT, engines built for the cell's batch shape."""

    name = "tftrt"

    def __init__(self, cell: Cell, settings: RunSettings, options: Mapping[str, Any]) -> None:
        super().__init__(cell, settings, options)
        self.params = converter_params(cell.precision, self.options)
        self.workdir = Path(tempfile.mkdtemp(prefix="tfbench-tftrt-"))
        self.export_dir = self.workdir / "saved_model"
        self.converted_dir = self.workdir / "converted"

    @classmethod
    def availability(cls, cell: Cell, options: Mapping[str, Any]) -> Availability:
        return decide(probe(), cell.device)

    def prepare(self, workload: Any, example: tuple[Any, Any], calibration: Any) -> PrepareInfo:
        try:
            return self._prepare(workload, calibration)
        except BaseException:
            self.close()  # the worker does not call close() on a failed cell
            raise

    def _prepare(self, workload: Any, calibration: Any) -> PrepareInfo:
        import tensorflow as tf
        from tensorflow.python.compiler.tensorrt import trt_convert as trt

        bs, size = self.cell.batch_size, self.cell.input_size
        start = time.perf_counter()
        export_saved_model(workload.model, self.export_dir, bs, size)
        calib_fn = None
        if self.cell.precision == "int8":
            if calibration is None:
                raise ValueError("tftrt int8 needs calibration data (calibration_input_fn)")
            calib_fn = calibration_input_fn(calibration)
        converter = trt.TrtGraphConverterV2(input_saved_model_dir=str(self.export_dir),
                                            **self.params)
        converted = converter.convert(calibration_input_fn=calib_fn)
        convert_s = time.perf_counter() - start
        makeup = graph_makeup(converted.graph.as_graph_def())
        fixed = np.zeros((bs, size, size, 3), np.float32)

        def build_input() -> Iterator[tuple[Any, ...]]:
            yield (tf.constant(fixed),)

        start = time.perf_counter()
        converter.build(input_fn=build_input)  # engines built now, not on the first step
        converter.save(str(self.converted_dir))
        self._fn = tf.saved_model.load(str(self.converted_dir)).signatures["serving_default"]
        build_s = time.perf_counter() - start
        detail = {"converter": dict(self.params), **makeup}
        return PrepareInfo(convert_s=convert_s, build_s=build_s, xla=False, detail=detail)

    def step(self, batch: Any) -> Any:
        return self._fn(**{INPUT_NAME: batch[0]})[OUTPUT_NAME]

    def finish(self, result: Any) -> float | None:
        result.numpy()  # copies to the host, which waits for the GPU
        return None

    def predict(self, images: np.ndarray) -> np.ndarray:
        def run(chunk: np.ndarray) -> np.ndarray:
            return np.asarray(self._fn(**{INPUT_NAME: chunk})[OUTPUT_NAME].numpy())

        return run_in_batches(run, np.asarray(images, np.float32), self.cell.batch_size)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def engine_class(name: str) -> type[Engine]:
    return TfTrtEngine
