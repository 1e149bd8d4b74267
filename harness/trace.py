"""Profiler trace capture for one cell, after its measured steps.

`profile_cell` runs ``trace_steps`` extra steps under TensorFlow's profiler
(``tf.profiler.experimental.start``/``stop``), keeps them as ``phase=trace``
step records (never used for timing statistics), writes the trace in the layout
TensorBoard's profile plugin opens (``traces/<config_id>/plugins/profile/<run>/
<host>.xplane.pb``), and turns it into op rows (`harness.opstats`). Anything
that stops a trace — an engine without a TensorFlow profiler, the converter
missing, a trace that cannot be converted — is a `TraceSkipped` with its
reason: the cell stays ``ok``. TensorFlow is imported inside the functions that
need it only (this module runs in the worker).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.timing import NS, Clock, StepRecord

PROFILED_ENGINES = ("tf", "xla")
DEFAULT_TRACE_STEPS = 5
TRACE_PHASE = "trace"


def trace_steps_setting(trace: bool, steps: int | None) -> int | None:
    """``trace_steps`` from ``--trace`` / ``--trace-steps N`` (None: keep the profile's).
    ``--trace`` alone traces `DEFAULT_TRACE_STEPS` steps; ``--trace-steps`` implies
    ``--trace`` and must be at least 1."""
    from harness.errors import UserError

    if steps is not None and (isinstance(steps, bool) or steps < 1):
        raise UserError.invalid("--trace-steps", steps, "integers >= 1 (steps traced after "
                                "the measured ones, with --trace)")
    if steps is not None:
        return steps
    return DEFAULT_TRACE_STEPS if trace else None


class TraceSkipped(Exception):
    """No trace (or no op statistics) for this cell; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GraphOpCost:
    """What TensorFlow's graph statistics say one op of the step's graph costs per call:
    FLOPs (``RegisterStatistics("flops")``, absent for ops without a registered count) and
    the bytes of its input and output tensors (static shapes; an estimate of its memory
    traffic that ignores caches and fusion)."""

    op_type: str
    flops: float | None
    bytes: float | None


@dataclass
class TraceOutcome:
    """What tracing produced for one cell, as it travels in the worker's result."""

    status: str  # "ok" or "skipped (<reason>)"
    steps: list[StepRecord] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)
    flops_per_step: float | None = None
    bytes_per_step: float | None = None

    def to_result(self) -> dict[str, Any]:
        return {"trace": self.status, "trace_steps": [asdict(s) for s in self.steps],
                "ops": self.ops, "flops_per_step": self.flops_per_step,
                "bytes_per_step": self.bytes_per_step}


def time_traced_steps(
    step: Callable[[Any], Any],
    finish: Callable[[Any], float | None],
    next_input: Callable[[], Any],
    *,
    steps: int,
    images_per_step: int,
    first_index: int,
    t0_ns: int,
    step_context: Callable[[int], AbstractContextManager[Any]] = lambda i: nullcontext(),
    clock: Clock = time.perf_counter_ns,
) -> list[StepRecord]:
    """Run and time ``steps`` steps exactly as the timing loop does (input apart, the
    result synchronised inside the timed region), each inside ``step_context(i)`` (the
    profiler's step marker), as ``phase=trace`` records numbered from ``first_index``."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    records = []
    for i in range(steps):
        t_wait = clock()
        batch = next_input()
        with step_context(i):
            t_begin = clock()
            loss = finish(step(batch))
            t_end = clock()
        records.append(StepRecord(step=first_index + i, phase=TRACE_PHASE,
                                  start_s=(t_begin - t0_ns) / NS,
                                  duration_s=(t_end - t_begin) / NS,
                                  input_wait_s=(t_begin - t_wait) / NS,
                                  images=images_per_step, loss=loss))
    return records


def xplane_files(logdir: Path) -> list[Path]:
    """The ``*.xplane.pb`` files under a trace directory (TensorBoard profile layout)."""
    return sorted(Path(logdir).glob("plugins/profile/*/*.xplane.pb"))


def capture(engine: Any, next_input: Callable[[], Any], logdir: Path, *, steps: int,
            images_per_step: int, first_index: int, t0_ns: int) -> tuple[list[StepRecord],
                                                                       list[Path]]:
    """Trace ``steps`` steps of ``engine`` into ``logdir``; return their records and the
    new xplane files."""
    import tensorflow as tf

    logdir.mkdir(parents=True, exist_ok=True)
    before = set(xplane_files(logdir))
    kind = "train" if engine.cell.mode == "train" else "infer"

    def marker(i: int) -> AbstractContextManager[Any]:
        return tf.profiler.experimental.Trace(kind, step_num=first_index + i, _r=1)

    try:
        tf.profiler.experimental.start(str(logdir))
    except (tf.errors.OpError, RuntimeError) as exc:  # e.g. another profiler session
        raise TraceSkipped(f"profiler did not start: {_one_line(exc)}") from None
    try:
        records = time_traced_steps(engine.step, engine.finish, next_input, steps=steps,
                                    images_per_step=images_per_step, first_index=first_index,
                                    t0_ns=t0_ns, step_context=marker)
    finally:
        tf.profiler.experimental.stop()
    new = [p for p in xplane_files(logdir) if p not in before]
    if not new:
        raise TraceSkipped(f"the profiler wrote no *.xplane.pb under {logdir}")
    return records, new


def graph_costs(function: Any, args: tuple[Any, ...]) -> dict[str, GraphOpCost]:
    """Per-op FLOPs and tensor bytes of a ``tf.function``'s graph for ``args``, keyed by op
    name (the names the profiler's trace shows)."""
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops

    graph = function.get_concrete_function(*args).graph
    costs: dict[str, GraphOpCost] = {}
    for op in _all_ops(graph):
        flops: float | None
        try:
            stat = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops")
            flops = float(stat.value) if stat.value is not None else None
        except (ValueError, TypeError, tf.errors.OpError):  # shape unknown for this op
            flops = None
        costs[op.name] = GraphOpCost(op.type, flops, _tensor_bytes(op))
    return costs


def _all_ops(graph: Any) -> Iterator[Any]:
    yield from graph.get_operations()
    for fn in getattr(graph, "_functions", {}).values():  # nested functions (rare)
        inner = getattr(fn, "graph", None)
        if inner is not None:
            yield from inner.get_operations()


def _tensor_bytes(op: Any) -> float | None:
    total = 0
    for t in [*op.inputs, *op.outputs]:
        if t.dtype.is_numpy_compatible and t.shape.is_fully_defined():
            size = t.dtype.size
            total += size * int(t.shape.num_elements() or 0)
        elif t.dtype.name not in ("resource", "variant"):
            return None
    return float(total)


def engine_function(engine: Any) -> Any:
    """The ``tf.function`` behind a tf/xla engine's step (None if it has none)."""
    return getattr(engine, "_fn", None)


def scopes_for(workload: Any) -> dict[str, list[str]]:
    """The name scopes of a workload's model and optimizer (for `opstats.categorize`)."""
    model = workload.model
    optimizer = getattr(model, "optimizer", None)
    names = [getattr(optimizer, "name", None),
             getattr(getattr(optimizer, "inner_optimizer", None), "name", None)]
    return {"model": [model.name], "optimizer": [n for n in names if n]}


def profile_cell(engine: Any, next_input: Callable[[], Any], logdir: Path, *, steps: int,
                 first_index: int, t0_ns: int, scopes: Mapping[str, Any]) -> TraceOutcome:
    """Trace, convert and categorise one cell; a `TraceSkipped` becomes a skipped status.

    ``scopes`` holds the name scopes that tell the categories apart (see
    `harness.opstats.categorize`): ``model`` and ``optimizer`` name lists.
    """
    from harness import opstats

    cell = engine.cell
    try:
        if cell.engine not in PROFILED_ENGINES:
            raise TraceSkipped(f"engine {cell.engine} has no TensorFlow profiler trace "
                               f"(traced engines: {', '.join(PROFILED_ENGINES)})")
        function = engine_function(engine)
        example = next_input()
        costs: dict[str, GraphOpCost] = {}
        if function is not None:
            x, y = example
            costs = graph_costs(function, (x,) if cell.mode == "infer" else (x, y))
        records, paths = capture(engine, next_input, logdir, steps=steps,
                                 images_per_step=cell.batch_size, first_index=first_index,
                                 t0_ns=t0_ns)
        stats = opstats.convert_xplanes(paths)
        rows = opstats.op_rows(stats, steps=steps, mode=cell.mode, costs=costs,
                               model_scopes=scopes.get("model", ()),
                               optimizer_scopes=scopes.get("optimizer", ()))
        if not rows:
            raise TraceSkipped("the trace holds no TensorFlow ops")
    except TraceSkipped as exc:
        return TraceOutcome(f"skipped ({exc.reason})")
    flops, nbytes = opstats.step_totals(rows)
    return TraceOutcome("ok", records, rows, flops, nbytes)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
