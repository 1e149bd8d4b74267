"""One cell in its own process: select the device, build, prepare, check parity, time.

Run as ``python -m harness.worker SPEC.json RESULT.json``. The orchestrator
writes the spec (cell, settings, the run's clock origin), starts this process,
and reads the result file; a crash, an out-of-memory kill or a hang costs this
cell only. TensorFlow is imported here, after the device has been chosen.

``TFBENCH_FAULT`` (``oom``, ``kill``, ``hang``, ``crash``) injects a fault into
the first measured step; the test-suite uses it to exercise the failure paths
with a real worker.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from harness.config import Cell, RunSettings
from harness.engines import load_engine
from harness.engines.base import DEFAULT_CALIBRATION_SAMPLES, Availability, Engine
from harness.errors import UserError
from harness.timing import time_steps

FAULT_ENV = "TFBENCH_FAULT"


def settings_to_dict(settings: RunSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["engine_options"] = {k: dict(v) for k, v in settings.engine_options.items()}
    return data


def settings_from_dict(data: dict[str, Any]) -> RunSettings:
    names = {f.name for f in fields(RunSettings)}
    return RunSettings(**{k: v for k, v in data.items() if k in names})


def select_device(device: str, settings: RunSettings) -> Availability:
    """Make only the requested device visible; must run before TensorFlow initialises."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    else:
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= len(gpus):
            build = tf.sysconfig.get_build_info()
            return Availability(
                False,
                f"{device} requested but TensorFlow sees {len(gpus)} GPU(s) "
                f"(TensorFlow {tf.__version__}, built with CUDA: "
                f"{'yes' if build.get('is_cuda_build') else 'no'}, "
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})",
            )
        tf.config.set_visible_devices([gpus[index]], "GPU")
        tf.config.experimental.set_memory_growth(gpus[index], True)
    if settings.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(settings.intra_op_threads)
    if settings.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(settings.inter_op_threads)
    return Availability(True)


def _inject_fault(engine: Engine, fault: str) -> None:
    """Wrap the engine's step so that the first measured-phase call fails as asked."""
    original = engine.step
    calls = {"n": 0}
    trigger = 1 + engine.settings.warmup_steps + 1  # first call, warm-up, then measure

    def faulty(batch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == trigger:
            if fault == "oom":
                import tensorflow as tf

                # A real allocation failure from TensorFlow's allocator (2^45 floats).
                return tf.zeros([1 << 45], tf.float32)
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "hang":
                threading.Event().wait()
            if fault == "crash":
                raise RuntimeError("injected crash (TFBENCH_FAULT=crash)")
        return original(batch)

    engine.step = faulty  # type: ignore[method-assign]


def run_cell(cell: Cell, settings: RunSettings, t0_ns: int) -> dict[str, Any]:
    """Run one cell in this process and return the result record (no exception escapes
    for expected failures: unavailable → skipped, out of memory → oom, else failed)."""
    result: dict[str, Any] = {"status": "ok", "reason": ""}
    device_avail = select_device(cell.device, settings)
    options = settings.engine_options.get(cell.engine, {})
    engine_cls = load_engine(cell.engine)
    avail = engine_cls.availability(cell, options)
    # Both reasons when both fail: a TF-TRT cell on a machine without GPU and TensorRT
    # should say that TensorRT is missing too, not only the GPU.
    reasons = [r for ok, r in ((device_avail.ok, device_avail.reason),
                               (avail.ok, f"engine {cell.engine}: {avail.reason}")) if not ok]
    if reasons:
        return {"status": "skipped", "reason": "; ".join(reasons)}

    import tensorflow as tf

    from harness.data import make_source
    from harness.parity import parity_columns
    from harness.workloads import build_workload

    try:
        import keras

        keras.utils.set_random_seed(settings.seed)
        source = make_source(cell.data, cell.batch_size, cell.input_size, settings.num_classes,
                             settings.seed)
        classes = max(settings.num_classes, source.num_classes)
        reference_needed = not (cell.engine == "tf" and cell.precision == "fp32")
        fixed = parity_inputs(cell, settings, classes)
        if reference_needed:
            reference = build_workload(replace(cell, engine="tf", precision="fp32", mode="infer",
                                               base=""), settings, classes, mixed=False)
            ref_weights = reference.model.get_weights()
            ref_out = reference.model.predict_on_batch(fixed)
            del reference
        workload = build_workload(cell, settings, classes)
        if reference_needed:
            workload.model.set_weights(ref_weights)
        engine = engine_cls(cell, settings, options)
        example = source.next()

        calibration = calibration_source(cell, settings, classes, options)

        info = engine.prepare(workload, example, calibration)
        result.update(convert_s=info.convert_s, build_s=info.build_s, xla=info.xla,
                      engine_detail=info.detail)
        if reference_needed:
            result["parity"] = parity_columns(ref_out, engine.predict(fixed), cell.precision,
                                              options)
        fault = os.environ.get(FAULT_ENV, "")
        if fault:
            _inject_fault(engine, fault)
        gpu = cell.device.startswith("gpu")
        if gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
        timing = time_steps(
            engine.step,
            engine.finish,
            lambda: engine.adapt_input(source.next()),
            images_per_step=cell.batch_size,
            warmup_steps=settings.warmup_steps,
            measured_steps=settings.measured_steps,
            min_duration_s=settings.min_duration_s,
            max_measured_steps=max(settings.max_measured_steps, settings.measured_steps),
            precise_enough=_precision_rule(settings.target_ci_rel),
            t0_ns=t0_ns,
        )
        if gpu:
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
            result["device_mem_peak_bytes"] = peak
        result["device_used"] = _device_used(tf, cell)
        result["first_step_s"] = timing.first_step_s
        result["steps"] = [asdict(s) for s in timing.steps]
        result["input_synthetic"] = source.synthetic
        engine.close()
    except tf.errors.ResourceExhaustedError as exc:
        return {"status": "oom", "reason": _one_line(f"ResourceExhaustedError: {exc.message}")}
    finally:
        result["host_rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def calibration_source(cell: Cell, settings: RunSettings, classes: int,
                       options: Mapping[str, Any]) -> Callable[[], Iterator[Any]]:
    """Calibration for int8 conversion: a generator function yielding float32 image batches
    in [0, 255] drawn from the cell's own data (an image folder, or synthetic images from
    a seed other than the timed batches'), ``calibration_samples`` images in all
    (engine option; default `DEFAULT_CALIBRATION_SAMPLES`)."""
    samples = options.get("calibration_samples", DEFAULT_CALIBRATION_SAMPLES)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UserError.invalid(f"engine_options.{cell.engine}.calibration_samples", samples,
                                "integers >= 1")
    count = -(-samples // cell.batch_size)

    def calibration() -> Iterator[Any]:
        from harness.data import make_source, synthetic_arrays

        if cell.data == "synthetic":
            for x, _ in synthetic_arrays(cell.batch_size, cell.input_size, classes,
                                         settings.seed + 1, count=count):
                yield x
            return
        source = make_source(cell.data, cell.batch_size, cell.input_size, classes,
                             settings.seed + 1)
        for _ in range(count):
            yield source.next()[0].numpy()

    return calibration


def parity_inputs(cell: Cell, settings: RunSettings, classes: int) -> Any:
    """Fixed images for the parity check, from the same distribution as the cell's data:
    a quantised engine calibrated on real images is judged on real images too (drawn
    with their own seed), not on uniform noise that leaves its calibrated ranges."""
    from harness.data import fixed_inputs, make_source

    count = min(cell.batch_size, 8)
    if cell.data == "synthetic":
        return fixed_inputs(count, cell.input_size)
    source = make_source(cell.data, count, cell.input_size, classes, settings.seed + 2)
    return source.next()[0].numpy()


def _precision_rule(target: float) -> Any:
    """Stop measuring once the median's 95% CI half-width is within ``target`` (relative)."""
    if target <= 0:
        return None
    from harness.stats import relative_ci_halfwidth

    return lambda durations: relative_ci_halfwidth(durations) <= target


def _device_used(tf: Any, cell: Cell) -> str:
    """The device TensorFlow places ops on after selection (e.g. /device:CPU:0)."""
    kind = "GPU" if cell.device.startswith("gpu") else "CPU"
    devices = tf.config.list_logical_devices(kind)
    return devices[0].name if devices else ""


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    cell = Cell.from_factors(spec["cell"])
    settings = settings_from_dict(spec["settings"])
    try:
        result = run_cell(cell, settings, int(spec["t0_ns"]))
    except Exception as exc:  # a failed cell, recorded with its error; the run goes on
        traceback.print_exc()
        result = {"status": "failed", "reason": _one_line(f"{type(exc).__name__}: {exc}")}
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
