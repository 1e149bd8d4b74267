"""One cell in its own process: select the device, build, prepare, check parity, time.

Run as ``python -m harness.worker SPEC.json RESULT.json``. The orchestrator
writes the spec (cell, settings, the run's clock origin), starts this process,
and reads the result file; a crash, an out-of-memory kill or a hang costs this
cell only.

The worker imports no framework: it sets ``KERAS_BACKEND`` for Keras-on-JAX/PyTorch
engines before anything imports Keras, then talks to the framework only through
the engine (`harness.engines.base.Engine`): device selection before the framework
initialises, input, model, synchronisation, device memory, the framework's
out-of-memory error and the device used. The tf fp32 parity reference comes from
`harness.reference`.

``TFBENCH_FAULT`` (``oom``, ``kill``, ``hang``, ``crash``) injects a fault into
the first measured step (``TFBENCH_FAULT_TASK=N``: only in multiworker task N);
the test-suite uses it to exercise the failure paths with a real worker. ``oom``
makes the engine's own framework fail an allocation
(`Engine.raise_oom`), so the error is recognised by the engine's `oom_reason`.

A `UserError` reaching the worker is a bug: preflight (``RunSettings``, ``Cell``,
``check_offline``) validates every input before a results directory exists. The
worker then crashes loudly (traceback in the cell's log, no result file, exit
code `EXIT_PREFLIGHT_BUG`), rather than recording an ordinary failed cell.
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
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from harness import slowdown  # [ab hook] TFBENCH_SLOWDOWN
from harness.availability import Availability
from harness.config import Cell, RunSettings
from harness.distributed import TASK_ENV
from harness.engine_table import ENGINES
from harness.engines import load_engine
from harness.engines.base import DEFAULT_CALIBRATION_SAMPLES, Engine, option
from harness.engines.keras_backend import importable
from harness.errors import UserError
from harness.lifecycle import die_with_parent
from harness.step_progress import StepReporter
from harness.timing import OnStep, time_steps

FAULT_ENV = "TFBENCH_FAULT"
FAULT_TASK_ENV = "TFBENCH_FAULT_TASK"  # multiworker: only this task index gets the fault
# task-raise: on a fleet the Ray task raises before the worker starts (harness.fleet)
FAULTS = ("oom", "kill", "hang", "crash", "task-raise")


def check_fault(value: str) -> str:
    """The ``TFBENCH_FAULT`` value, refused (`UserError`) unless empty or one of `FAULTS`."""
    if value and value not in FAULTS:
        raise UserError.invalid(FAULT_ENV, value, [*FAULTS, "empty (no fault)"])
    return value


EXIT_PREFLIGHT_BUG = 70  # EX_SOFTWARE: an internal error (a UserError preflight missed)


def settings_to_dict(settings: RunSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["engine_options"] = {k: dict(v) for k, v in settings.engine_options.items()}
    return data


def settings_from_dict(data: dict[str, Any]) -> RunSettings:
    names = {f.name for f in fields(RunSettings)}
    return RunSettings(**{k: v for k, v in data.items() if k in names})


def _inject_fault(engine: Engine, fault: str) -> None:
    """Wrap the engine's step so that the first measured-phase call fails as asked."""
    original = engine.step
    calls = {"n": 0}
    trigger = 1 + engine.settings.warmup_steps + 1  # first call, warm-up, then measure

    def faulty(batch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == trigger:
            if fault == "oom":
                return engine.raise_oom()
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "hang":
                threading.Event().wait()
            if fault == "crash":
                raise RuntimeError("injected crash (TFBENCH_FAULT=crash)")
        return original(batch)

    engine.step = faulty  # type: ignore[method-assign]


def framework_availability(cell: Cell) -> Availability:
    """Whether the engine's framework can be imported here (checked before importing it)."""
    spec = ENGINES[cell.engine]
    if importable(spec.framework):
        return Availability(True)
    extra = f"; pip install 'tfbench[{spec.extra}]'" if spec.extra else ""
    return Availability(False, f"engine {cell.engine}: {spec.framework} is not installed "
                               f"(or not importable){extra}")


def run_cell(cell: Cell, settings: RunSettings, t0_ns: int,
             trace_dir: str | None = None, on_step: OnStep | None = None) -> dict[str, Any]:
    """Run one cell in this process and return the result record (no exception escapes
    for expected failures: unavailable → skipped, out of memory → oom, else failed)."""
    spec = ENGINES[cell.engine]
    if spec.keras_backend:
        os.environ["KERAS_BACKEND"] = spec.keras_backend  # before anything imports Keras
    framework = framework_availability(cell)
    if not framework.ok:
        return {"status": "skipped", "reason": framework.reason}
    options = settings.engine_options.get(cell.engine, {})
    engine_cls = load_engine(cell.engine)
    device_avail = engine_cls.select_device(cell.device, settings)
    if cell.strategy != "none" and device_avail.ok:  # data parallel (harness.strategy)
        from harness import strategy

        strategy.configure_devices(cell, settings)
        engine_cls = strategy.distributed_engine(engine_cls,
                                                 strategy.make_distribution(cell, settings))
    avail = engine_cls.availability(cell, options)
    # Both reasons when both fail: a TF-TRT cell on a machine without GPU and TensorRT
    # should say that TensorRT is missing too, not only the GPU.
    reasons = [r for ok, r in ((device_avail.ok, device_avail.reason),
                               (avail.ok, f"engine {cell.engine}: {avail.reason}")) if not ok]
    if reasons:
        return {"status": "skipped", "reason": "; ".join(reasons)}
    engine = engine_cls(cell, settings, options)
    result: dict[str, Any] = {"status": "ok", "reason": ""}
    try:
        result.update(_measure(engine, cell, settings, options, t0_ns, trace_dir,
                                        on_step))
    except Exception as exc:
        reason = engine.oom_reason(exc)
        if reason is None:
            raise
        return {"status": "oom", "reason": _one_line(reason)}
    finally:
        result["host_rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def _measure(engine: Engine, cell: Cell, settings: RunSettings, options: Mapping[str, Any],
             t0_ns: int, trace_dir: str | None = None,
             on_step: OnStep | None = None) -> dict[str, Any]:
    """Build, check parity against the tf fp32 reference, and time one cell; ``on_step``
    hears of each timed call (progress, outside the timed regions)."""
    from harness.parity import parity_columns

    result: dict[str, Any] = {}
    source = engine.input_source(settings.num_classes)
    classes = max(settings.num_classes, source.num_classes)
    reference_needed = not (cell.engine == "tf" and cell.precision == "fp32")
    reference: Any = None
    if reference_needed:
        fixed = parity_inputs(cell, settings, classes)
        reference = _reference(engine, cell, settings, classes, fixed)
    workload = engine.build(classes)
    if reference is not None and not isinstance(reference, str):
        workload.model.set_weights(reference.weights)
    example = source.next()
    calibration = calibration_source(cell, settings, classes, options)
    info = engine.prepare(workload, example, calibration)
    detail = dict(info.detail)
    result.update(convert_s=info.convert_s, build_s=info.build_s, xla=info.xla,
                  engine_detail=detail)
    if isinstance(reference, str):
        result["parity"] = {"parity_reason": reference}
    elif reference is not None:
        result["parity"] = parity_columns(reference.outputs, engine.predict(fixed),
                                          cell.precision, options)
    dist = getattr(engine, "distribution", None)  # a strategy cell's (harness.strategy)
    if dist is not None:
        from harness.strategy import replica_digests

        detail["initial_weights_sha1"] = replica_digests(dist, workload.model)[0]
    fault = check_fault(os.environ.get(FAULT_ENV, ""))
    task = str(dist.task_index if dist else 0)
    if os.environ.get(FAULT_TASK_ENV, task) != task:
        fault = ""  # aimed at another process of a multiworker cell
    if fault:
        _inject_fault(engine, fault)
    # One timed step is one global step: batch_size x replicas images. Multi-worker
    # processes take the same number of steps (each is a collective): no adaptive stop.
    lockstep = dist is not None and dist.kind == "multiworker"
    engine.synchronize()
    engine.reset_memory_peak()
    step_fn, finish_fn = slowdown.from_env(engine.step, engine.finish)  # TFBENCH_SLOWDOWN (ab)
    timing = time_steps(
        step_fn,
        finish_fn,
        lambda: engine.adapt_input(source.next()),
        images_per_step=cell.batch_size * (dist.replicas if dist else 1),
        warmup_steps=settings.warmup_steps,
        measured_steps=settings.measured_steps,
        min_duration_s=0.0 if lockstep else settings.min_duration_s,
        max_measured_steps=(settings.measured_steps if lockstep
                            else max(settings.max_measured_steps, settings.measured_steps)),
        precise_enough=None if lockstep else _precision_rule(settings.target_ci_rel),
        t0_ns=t0_ns,
        on_step=on_step,
    )
    if dist is not None:
        from harness.strategy import strategy_result

        result.update(strategy_result(dist, cell, workload.model, detail))
    engine.synchronize()
    memory = engine.memory_peak()
    result["device_mem_peak_bytes"] = memory.peak_bytes
    detail["device_mem"] = memory.reason
    result["device_used"] = engine.device_used()
    result["first_step_s"] = timing.first_step_s
    result["steps"] = [asdict(s) for s in timing.steps]
    if settings.trace_steps and trace_dir:  # profiling: traced steps after the measured ones
        from harness.flops import analytic_counts
        from harness.trace import profile_cell, scopes_for

        traced = profile_cell(engine, lambda: engine.adapt_input(source.next()),
                              Path(trace_dir), steps=settings.trace_steps,
                              first_index=len(timing.steps), t0_ns=t0_ns,
                              scopes=scopes_for(workload)).to_result()
        result["steps"] += traced.pop("trace_steps")
        result.update(traced)
        detail.update(analytic_counts(workload.model, cell.batch_size, cell.mode))
    result["input_synthetic"] = source.synthetic
    engine.close()
    return result


def _reference(engine: Engine, cell: Cell, settings: RunSettings, classes: int,
               images: Any) -> Any:
    """The tf fp32 reference (`harness.reference.Reference`) or why there is none: in
    this process when TensorFlow builds the engine's model, else from a child process."""
    from harness.reference import build_reference, reference_in_child

    if engine.framework() == "tensorflow":
        return build_reference(cell, settings, classes, images)
    return reference_in_child(cell, settings, classes, images, settings.timeout_s)


def calibration_source(cell: Cell, settings: RunSettings, classes: int,
                       options: Mapping[str, Any]) -> Callable[[], Iterator[Any]]:
    """Calibration for int8 conversion: a generator function yielding float32 image batches
    in [0, 255] drawn from the cell's own data (an image folder, or synthetic images from
    a seed other than the timed batches'), ``calibration_samples`` images in all
    (engine option; default `DEFAULT_CALIBRATION_SAMPLES`)."""
    samples: int = option(options, cell.engine, "calibration_samples",
                          DEFAULT_CALIBRATION_SAMPLES)
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


def _precision_rule(target: float | None) -> Any:
    """Stop measuring once the median's 95% CI half-width is within ``target`` (relative);
    None: no target (the measured steps and min_duration_s decide)."""
    if target is None:
        return None
    from harness.stats import relative_ci_halfwidth

    return lambda durations: relative_ci_halfwidth(durations) <= target


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    # An orchestrator that dies (even by SIGKILL) takes this worker with it: no orphan is
    # left to write a result that a resumed run could mistake for its own.
    # A multiworker task process's parent is its launcher (harness.distributed), not the
    # orchestrator named in the spec.
    parent = os.getppid() if TASK_ENV in os.environ else int(spec.get("parent_pid") or 0)
    die_with_parent(parent)
    cell = Cell.from_factors(spec["cell"])
    settings = settings_from_dict(spec["settings"])
    if cell.strategy == "multiworker" and TASK_ENV not in os.environ:
        from harness.distributed import launch_local  # this process becomes the launcher

        return launch_local(spec_path, result_path, settings)
    progress = spec.get("progress_path")
    # One writer per progress file: in a multiworker cell only the chief (task 0) reports.
    chief = os.environ.get(TASK_ENV, "0") == "0"
    reporter = None if progress is None or not chief else StepReporter(Path(progress))
    try:
        check_fault(os.environ.get(FAULT_ENV, ""))
        from harness.fit_cell import needs_fit_loop, run_fit_cell

        if needs_fit_loop(cell):  # mode fit or base cached (harness.fit_cell)
            # The orchestrator keeps result files in RUN_DIR/.work/; models go in RUN_DIR.
            result = run_fit_cell(cell, settings, int(spec["t0_ns"]), result_path.parent.parent)
        else:
            result = run_cell(cell, settings, int(spec["t0_ns"]), spec.get("trace_dir"),
                              reporter)
    except UserError as exc:
        traceback.print_exc()
        print(f"tfbench bug: preflight let a bad input reach the worker: {exc.message}",
              flush=True)
        return EXIT_PREFLIGHT_BUG
    except Exception as exc:  # a failed cell, recorded with its error; the run goes on
        traceback.print_exc()
        result = {"status": "failed", "reason": _one_line(f"{type(exc).__name__}: {exc}")}
    # The attempt token ties this result to the spec it answers (see orchestrator.run_block).
    result["attempt"] = spec.get("attempt")
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
