"""Engines beyond plain TensorFlow, run for real on the CPU with tiny models.

xla, mixed precision, LiteRT (fp32, fp16, dynamic, int8) and ONNX Runtime run real
conversions and real interpreters/sessions, with output parity against the TF fp32
reference. TF-TRT's availability check runs on the installed TensorFlow; its export
and conversion code runs up to the TensorRT call. Unavailable engines give skipped
cells, and a failing conversion gives a failed cell while the run goes on.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.config import Cell, RunSettings
from harness.engines.base import cpu_count
from harness.parity import DEFAULT_THRESHOLDS, compare_outputs, parity_columns, thresholds
from harness.worker import calibration_source, run_cell

pytestmark = pytest.mark.slow

FAST = {"warmup_steps": 1, "measured_steps": 3, "samplers": ("none",)}


def settings(**engine_options: dict[str, Any]) -> RunSettings:
    return RunSettings(**FAST, engine_options=engine_options)  # type: ignore[arg-type]


def run(cell: Cell, s: RunSettings | None = None) -> dict[str, Any]:
    return run_cell(cell, s or settings(), time.perf_counter_ns())


def assert_ok_with_parity(result: dict[str, Any], precision: str) -> None:
    assert result["status"] == "ok", result.get("reason")
    measured = [s for s in result["steps"] if s["phase"] == "measure"]
    assert len(measured) == 3
    assert all(s["duration_s"] > 0 for s in measured)
    parity = result["parity"]
    max_rel, min_cos = DEFAULT_THRESHOLDS[precision]
    assert parity["parity_ok"] is True
    assert 0 <= parity["parity_max_rel_err"] <= max_rel
    assert min_cos <= parity["parity_cosine"] <= 1 + 1e-9


# -- parity (pure numpy) ------------------------------------------------------------------

def test_compare_outputs_worked_by_hand() -> None:
    ref = np.array([[3.0, 4.0]])
    cand = np.array([[3.0, 5.0]])
    figures = compare_outputs(ref, cand)
    assert figures["max_rel_err"] == pytest.approx(1.0 / 4.0)  # |5-4| / max|ref|
    assert figures["cosine"] == pytest.approx((9 + 20) / (5.0 * math.sqrt(34)))


def test_compare_outputs_refuses_other_shapes() -> None:
    with pytest.raises(ValueError, match="output shapes differ"):
        compare_outputs(np.zeros((2, 5)), np.zeros((2, 4)))


def test_parity_thresholds_default_and_override() -> None:
    assert thresholds("int8", {}) == DEFAULT_THRESHOLDS["int8"]
    assert thresholds("fp32", {"parity_max_rel_err": 0.5, "parity_min_cosine": 0.9}) == (0.5, 0.9)
    ref = np.array([1.0, 2.0, 3.0])
    near = ref * 1.0001
    assert parity_columns(ref, near, "fp32", {})["parity_ok"] is True
    assert parity_columns(ref, near, "fp32", {"parity_max_rel_err": 1e-6})["parity_ok"] is False


# -- xla and mixed precision --------------------------------------------------------------

@pytest.mark.parametrize(("engine", "mode", "base", "precision"), [
    ("xla", "infer", "", "fp32"),
    ("xla", "train", "frozen", "mixed"),
    ("tf", "infer", "", "mixed"),
    ("tf", "train", "unfrozen", "mixed"),
])
def test_xla_and_mixed_run_with_parity(engine: str, mode: str, base: str, precision: str) -> None:
    cell = Cell(model="tiny_cnn", engine=engine, mode=mode, base=base, precision=precision,
                batch_size=4)
    result = run(cell)
    assert_ok_with_parity(result, precision)
    assert result["xla"] is (engine == "xla")
    assert result["device_mem_peak_bytes"] is None  # a cpu cell: host memory only
    assert result["engine_detail"]["device_mem"].startswith("cpu cell:")
    losses = [s["loss"] for s in result["steps"]]
    if mode == "train":
        assert all(loss is not None and math.isfinite(loss) for loss in losses)
    else:
        assert all(loss is None for loss in losses)


def test_graph_build_s_times_the_trace() -> None:
    """prepare traces the step (get_concrete_function), so graph_build_s is the trace and
    the first call reuses it instead of tracing again."""
    from harness.data import make_source
    from harness.engines.tf import TensorFlowEngine
    from harness.workloads import build_workload

    for mode, base in (("infer", ""), ("train", "unfrozen")):
        cell = Cell(model="tiny_cnn", mode=mode, base=base, batch_size=2)
        engine = TensorFlowEngine(cell, settings(), {})
        source = make_source("synthetic", 2, 32, 5, 0)
        info = engine.prepare(build_workload(cell, settings()), source.next(), None)
        assert engine._fn.experimental_get_tracing_count() == 1
        assert info.detail["graph_build_s"] > 0
        assert info.detail["graph_build"] == "tf.function trace (get_concrete_function)"
        engine.finish(engine.step(source.next()))
        assert engine._fn.experimental_get_tracing_count() == 1  # no second trace


# -- LiteRT -------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp32", "fp16", "dynamic", "int8"])
def test_litert_every_precision(precision: str) -> None:
    result = run(Cell(model="tiny_cnn", engine="litert", precision=precision, batch_size=4))
    assert_ok_with_parity(result, precision)
    assert result["xla"] is False
    assert result["convert_s"] > 0 and result["build_s"] >= 0
    detail = result["engine_detail"]
    assert detail["num_threads"] == cpu_count()  # set explicitly, not the interpreter's 1
    assert detail["xnnpack"] is True and detail["delegated"] is True
    io = "int8" if precision == "int8" else "float32"
    assert (detail["input_dtype"], detail["output_dtype"]) == (io, io)
    if precision == "fp16":
        assert detail["ops"].get("DEQUANTIZE", 0) > 0  # float16 weights, dequantised
    # LiteRT's memory is not TensorFlow's allocator: no device figure, and why.
    assert result["device_mem_peak_bytes"] is None
    assert detail["device_mem"].startswith("LiteRT runs on the CPU here")


def test_litert_without_xnnpack_on_one_thread() -> None:
    cell = Cell(model="tiny_cnn", engine="litert", precision="fp32", batch_size=2)
    result = run(cell, settings(litert={"xnnpack": False, "num_threads": 1}))
    assert_ok_with_parity(result, "fp32")
    detail = result["engine_detail"]
    assert detail["num_threads"] == 1
    assert detail["delegated"] is False and "DELEGATE" not in detail["ops"]
    assert detail["ops"]["CONV_2D"] == 2  # the builtin kernels run every op


def test_parity_miss_is_flagged_and_still_timed() -> None:
    cell = Cell(model="tiny_cnn", engine="litert", precision="int8", batch_size=4)
    result = run(cell, settings(litert={"parity_max_rel_err": 1e-12}))
    assert result["status"] == "ok"
    assert result["parity"]["parity_ok"] is False
    assert result["parity"]["parity_max_rel_err"] > 1e-12
    assert len([s for s in result["steps"] if s["phase"] == "measure"]) == 3


def test_litert_int8_needs_calibration() -> None:
    from harness.engines.litert import LiteRtEngine
    from harness.workloads import build_workload

    cell = Cell(model="tiny_cnn", engine="litert", precision="int8", batch_size=2)
    engine = LiteRtEngine(cell, settings(), {})
    workload = build_workload(cell, settings())
    with pytest.raises(ValueError, match="litert int8 needs calibration data"):
        engine.prepare(workload, (None, None), None)


def test_calibration_comes_from_the_image_folder(tmp_path: Path) -> None:
    import tensorflow as tf

    for name, value in (("a", 10), ("b", 200)):
        (tmp_path / name).mkdir()
        for i in range(3):
            image = tf.fill((40, 40, 3), tf.constant(value, tf.uint8))
            (tmp_path / name / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    cell = Cell(model="tiny_cnn", engine="litert", precision="int8", batch_size=2,
                data=str(tmp_path))
    calibration = calibration_source(cell, settings(), 2, {"calibration_samples": 5})
    batches = list(calibration())
    assert len(batches) == 3  # ceil(5 / 2)
    assert all(b.shape == (2, 32, 32, 3) and b.dtype == np.float32 for b in batches)
    assert set(np.unique(np.concatenate(batches))) <= {10.0, 200.0}  # the folder's pixels


def test_litert_int8_calibrated_on_an_image_folder(tmp_path: Path) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(4):
            pixels = rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)
            (tmp_path / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    cell = Cell(model="tiny_cnn", engine="litert", precision="int8", batch_size=2,
                data=str(tmp_path))
    result = run(cell, settings(litert={"calibration_samples": 8}))
    assert_ok_with_parity(result, "int8")
    assert result["input_synthetic"] is False


# -- ONNX Runtime -------------------------------------------------------------------------

def test_onnxruntime_runs_with_parity() -> None:
    result = run(Cell(model="tiny_mobilenet_v2", engine="onnxruntime", batch_size=2))
    assert_ok_with_parity(result, "fp32")
    assert result["xla"] is False
    detail = result["engine_detail"]
    assert detail["providers_used"] == ["CPUExecutionProvider"]
    assert "CPUExecutionProvider" in detail["providers_available"]
    assert detail["opset"] == 17 and detail["onnx_ops"]["Conv"] > 0
    assert detail["num_threads"] == cpu_count()
    assert result["device_mem_peak_bytes"] is None
    assert detail["device_mem"].startswith("ONNX Runtime does not report its allocator's peak")


def test_onnxruntime_provider_choice() -> None:
    from harness.engines.onnxruntime import choose_providers

    have = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cpu", have) == (["CPUExecutionProvider"], "")
    assert choose_providers("gpu", have)[0] == have
    assert choose_providers("gpu", have[1:])[0] == have[1:]
    chosen, reason = choose_providers("gpu", ["CPUExecutionProvider"])
    assert chosen == [] and reason.startswith("no GPU execution provider in this onnxruntime")
    chosen, reason = choose_providers("cpu", ["CPUExecutionProvider"], ["CUDAExecutionProvider"])
    assert chosen == [] and "CUDAExecutionProvider not in this onnxruntime" in reason


def test_onnxruntime_gpu_cell_without_gpu_provider_is_skipped() -> None:
    from harness.engines.onnxruntime import OnnxRuntimeEngine

    avail = OnnxRuntimeEngine.availability(Cell(model="tiny_cnn", engine="onnxruntime",
                                                device="gpu"), {})
    import onnxruntime as ort

    if any(p in ort.get_available_providers() for p in ("CUDAExecutionProvider",
                                                         "TensorrtExecutionProvider")):
        pytest.skip("this onnxruntime has a GPU provider")
    assert not avail.ok
    assert avail.reason.startswith(f"onnxruntime {ort.__version__}: no GPU execution provider")


# -- TF-TRT -------------------------------------------------------------------------------

def _no_tensorrt() -> bool:
    import tensorflow as tf

    return not tf.sysconfig.get_build_info().get("is_tensorrt_build", False)


def test_tftrt_availability_on_this_tensorflow() -> None:
    import tensorflow as tf

    from harness.engines.tftrt import decide, probe

    if not _no_tensorrt():
        pytest.skip("this TensorFlow is built with TensorRT")
    facts = probe()
    assert facts["enabled"] is False
    assert decide(facts, "gpu").reason == (
        f"TensorFlow {tf.__version__} was built without TensorRT "
        "(_pywrap_py_utils.is_tensorrt_enabled() is False); PyPI TensorFlow >= 2.18 has no "
        "TF-TRT: use NVIDIA's Jetson wheel or TensorFlow <= 2.17 with TensorRT, or the "
        "onnxruntime engine with its TensorRT provider"
    )


def test_tftrt_reasons_for_each_failed_check() -> None:
    from harness.engines.tftrt import decide

    good: dict[str, Any] = {"tf_version": "2.16.1", "enabled": True, "linked": (8, 6, 1),
                            "loaded": (8, 6, 1), "gpus_visible": 1}
    assert decide(good, "gpu").ok
    assert decide(good, "gpu").reason == "TensorRT 8.6.1 (linked 8.6.1)"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"import_error": "ImportError: no module"}, "TensorFlow 2.16.1 has no TF-TRT bindings"),
        ({"loaded": (0, 0, 0)}, "TensorFlow 2.16.1 is linked against TensorRT 8.6.1 but "
                                "libnvinfer could not be loaded (loaded TensorRT version 0.0.0)"),
        ({"loaded": (10, 0, 1)}, "TensorFlow 2.16.1 is linked against TensorRT 8.6.1 but "
                                 "TensorRT 10.0.1 was loaded (major versions differ)"),
        ({"gpus_visible": 0}, "no GPU visible to TensorFlow (gpu requested)"),
    ]
    for change, reason in cases:
        avail = decide({**good, **change}, "gpu")
        assert not avail.ok and avail.reason.startswith(reason)
    assert decide(good, "cpu").reason == "TF-TRT runs on a GPU; this cell's device is cpu"


def test_tftrt_cells_are_skipped_with_the_reason() -> None:
    if not _no_tensorrt():
        pytest.skip("this TensorFlow is built with TensorRT")
    cpu = run(Cell(model="tiny_cnn", engine="tftrt", device="cpu", batch_size=2))
    assert cpu == {"status": "skipped", "reason": cpu["reason"]}
    assert cpu["reason"].startswith("engine tftrt: TensorFlow ")
    assert "was built without TensorRT" in cpu["reason"]
    gpu = run(Cell(model="tiny_cnn", engine="tftrt", device="gpu", batch_size=2,
                   precision="int8"))
    assert gpu["status"] == "skipped"
    assert "was built without TensorRT" in gpu["reason"]


def test_tftrt_export_and_conversion_up_to_tensorrt(tmp_path: Path) -> None:
    import tensorflow as tf

    from harness.engines.tftrt import (
        TfTrtEngine,
        calibration_input_fn,
        converter_params,
        export_saved_model,
        graph_makeup,
    )
    from harness.workloads import build_workload

    cell = Cell(model="tiny_cnn", engine="tftrt", device="gpu", precision="int8", batch_size=2)
    workload = build_workload(cell, settings())
    export_saved_model(workload.model, tmp_path / "sm", 2, 32)
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    exported = serve(image=tf.constant(images))["output"].numpy()
    np.testing.assert_allclose(exported, workload.model.predict_on_batch(images), rtol=1e-5)

    makeup = graph_makeup(serve.graph.as_graph_def())
    assert makeup["trt_engines"] == 0 and makeup["trt_segment_ops"] == 0
    assert makeup["tf_ops"] > 0 and "Conv2D" in makeup["tf_op_types"]

    params = converter_params("int8", {"minimum_segment_size": 5})
    assert params == {"precision_mode": "INT8", "max_workspace_size_bytes": 1 << 30,
                      "minimum_segment_size": 5, "maximum_cached_engines": 1,
                      "use_dynamic_shape": False, "use_calibration": True}
    calibration = calibration_source(cell, settings(), 5, {"calibration_samples": 4})
    fed = list(calibration_input_fn(calibration)())
    assert len(fed) == 2 and all(t[0].shape == (2, 32, 32, 3) for t in fed)

    if not _no_tensorrt():
        return
    engine = TfTrtEngine(cell, settings(), {})
    with pytest.raises(RuntimeError, match="Tensorflow has not been built with TensorRT support"):
        engine.prepare(workload, (None, None), calibration)
    assert not engine.workdir.exists()  # the export is cleaned up after the failure


def test_graph_makeup_counts_segments_and_ops_left() -> None:
    from tensorflow.core.framework import graph_pb2

    from harness.engines.tftrt import graph_makeup

    g = graph_pb2.GraphDef()
    for name, op in (("image", "Placeholder"), ("trt0", "TRTEngineOp"), ("trt1", "TRTEngineOp"),
                     ("nms", "NonMaxSuppressionV5"), ("top", "TopKV2"), ("out", "Identity")):
        g.node.add(name=name, op=op)
    seg = g.library.function.add()
    seg.signature.name = "TRTEngineOp_000_000_native_segment"
    for op in ("Conv2D", "Relu6", "Const"):
        seg.node_def.add(name=op.lower(), op=op)
    assert graph_makeup(g) == {"trt_engines": 2, "trt_segment_ops": 2, "tf_ops": 2,
                                  "tf_op_types": {"NonMaxSuppressionV5": 1, "TopKV2": 1}}


# -- through the orchestrator: skipped, failed and ok cells in one run ---------------------

def test_failed_conversion_and_skipped_engine_do_not_stop_the_run(tmp_path: Path) -> None:
    from harness.orchestrator import RunSession

    s = settings(onnxruntime={"opset": 30})
    session = RunSession(tmp_path, s, run_id="engines-test", t0_ns=time.perf_counter_ns())
    cells = [
        Cell(model="tiny_cnn", engine="onnxruntime", batch_size=2),
        Cell(model="tiny_cnn", engine="tftrt", device="cpu", batch_size=2),
        Cell(model="tiny_cnn", engine="litert", precision="fp32", batch_size=2),
    ]
    outcomes = [session.run_cell(c) for c in cells]
    session.close()
    assert [o.status for o in outcomes] == ["failed", "skipped", "ok"]
    assert outcomes[0].reason.startswith("ValueError: make_sure failure: Opset 30 is not supported")
    assert "tftrt" in outcomes[1].reason
    configs = pd.read_csv(tmp_path / "configs.csv")
    assert list(configs["status"]) == ["failed", "skipped", "ok"]
    ok = configs.iloc[2]
    assert bool(ok["parity_ok"]) and ok["parity_max_rel_err"] < 1e-3
    assert ok["convert_s"] > 0 and not bool(ok["xla"])
    assert json.loads(ok["engine_detail"])["num_threads"] == cpu_count()
    assert configs.iloc[0][["step_s_median", "images_per_s"]].isna().all()  # no fake numbers
