"""Op-level statistics from a profiler trace: the rows of ``ops.csv``.

The converter is xprof's (``xprof.convert.raw_to_tool_data.xspace_to_tool_data``
with the ``framework_op_stats`` tool): the maintained successor of
tensorboard-plugin-profile and the code TensorBoard's profile page runs, so the
numbers here are the ones a user sees when opening the trace. It reads the
``*.xplane.pb`` files and needs no TensorFlow; this module never imports it.
`parse_framework_op_stats` turns the tool's JSON into `OpStat` records, and
`op_rows` into per-step rows with a category (forward, backward, optimizer,
input, other) and, where TensorFlow's graph statistics know them, FLOPs and
tensor bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.trace import GraphOpCost, TraceSkipped

TOOL = "framework_op_stats"
# Op types that deliver input batches inside a step function.
INPUT_TYPES = ("IteratorGetNext", "IteratorGetNextSync", "OptionalGetValue",
               "MultiDeviceIteratorGetNextFromShard")
# Variable updates outside any optimizer scope (e.g. the iteration counter) and fused
# optimizer kernels.
OPTIMIZER_TYPE_PREFIXES = ("AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
                           "ResourceApply")
GRADIENT_SCOPES = ("gradient_tape", "gradients")
LOSS_WORDS = ("crossentropy", "loss")


@dataclass(frozen=True)
class OpStat:
    """One op of a trace, summed over all traced steps (microseconds, as xprof reports)."""

    device: str  # "Host" or "Device"
    op_type: str
    op_name: str
    occurrences: float
    total_us: float
    self_us: float
    eager: bool


def convert_xplanes(paths: Sequence[Path]) -> list[OpStat]:
    """Op statistics of xplane files through xprof; `TraceSkipped` when xprof is missing
    or cannot convert them."""
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError as exc:
        raise TraceSkipped(f"no profile converter: xprof is not importable ({exc}); "
                           "install it with: pip install 'tfbench[profile]'") from None
    files = [str(p) for p in paths]
    try:
        data, _ = raw_to_tool_data.xspace_to_tool_data(files, TOOL, {})
    except (ValueError, RuntimeError, OSError) as exc:
        raise TraceSkipped(f"xprof could not convert the trace: {exc}") from None
    if not data:
        raise TraceSkipped(f"xprof could not convert the trace ({', '.join(files)})")
    return parse_framework_op_stats(data)


def parse_framework_op_stats(data: bytes | str) -> list[OpStat]:
    """`OpStat` records from the ``framework_op_stats`` tool's JSON (a list of data
    tables, the first one including idle time, which is dropped)."""
    try:
        tables = json.loads(data)
        table = tables[0] if isinstance(tables, list) else tables
        ids = [c["id"] for c in table["cols"]]
        rows = [[c.get("v") for c in r["c"]] for r in table.get("rows", [])]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as exc:
        raise TraceSkipped(f"unexpected {TOOL} output from xprof ({type(exc).__name__}: "
                           f"{exc})") from None
    need = ("host_or_device", "type", "operation", "occurrences", "total_time",
            "total_self_time")
    missing = [n for n in need if n not in ids]
    if missing:
        raise TraceSkipped(f"unexpected {TOOL} output from xprof: no {', '.join(missing)}")
    at = {name: ids.index(name) for name in ids}
    stats = []
    for r in rows:
        if r[at["type"]] == "IDLE":
            continue
        eager = "eager" in at and str(r[at["eager"]]).lower() == "eager"
        stats.append(OpStat(device=str(r[at["host_or_device"]]), op_type=str(r[at["type"]]),
                            op_name=str(r[at["operation"]]),
                            occurrences=float(r[at["occurrences"]] or 0),
                            total_us=float(r[at["total_time"]] or 0),
                            self_us=float(r[at["total_self_time"]] or 0), eager=eager))
    return stats


def _first_scope(name: str) -> str:
    return name.split("/", 1)[0].lower()


def categorize(op: OpStat, mode: str, model_scopes: Iterable[str] = (),
               optimizer_scopes: Iterable[str] = ()) -> str:
    """forward, backward, optimizer, input or other, from TensorFlow's name scopes.

    Eager ops and iterator ops are ``input`` (the step itself runs as one graph
    function; eager work in the traced window makes the next batch). For an infer
    cell everything else is ``forward``. For a train cell, ops under the gradient tape's
    scope are ``backward``; ops under the optimizer's scope and variable updates are
    ``optimizer``; ops under the model's or the loss's scope are ``forward``; the
    rest (loss bookkeeping outside any scope, casts) is ``other``.
    """
    if op.eager or op.op_type in INPUT_TYPES:
        return "input"
    if mode != "train":
        return "forward"
    parts = [p.lower() for p in op.op_name.split("/")]
    if parts[0] in GRADIENT_SCOPES or "gradient_tape" in parts:
        return "backward"
    first = parts[0]
    if _in_scopes(first, optimizer_scopes) or op.op_type.startswith(
            OPTIMIZER_TYPE_PREFIXES):
        return "optimizer"
    if _in_scopes(first, model_scopes) or any(w in first for w in LOSS_WORDS):
        return "forward"
    return "other"


def _in_scopes(first: str, scopes: Iterable[str]) -> bool:
    """Whether a name's first scope is one of ``scopes``, also with the ``_<N>`` suffix
    TensorFlow adds when a scope name is used again (``mymodel_1``)."""
    for scope in scopes:
        scope = scope.lower()
        if first == scope or (first.startswith(scope + "_") and first[len(scope) + 1:].isdigit()):
            return True
    return False


def _is_fused(op_type: str) -> bool:
    return "Fused" in op_type


def _absorbed_costs(stats: Sequence[OpStat], costs: Mapping[str, GraphOpCost]
                    ) -> dict[str, list[GraphOpCost]]:
    """Graph ops that did not run under their own name but inside a fused kernel: the
    grappler/oneDNN fusion keeps the last op's name (``conv/Relu`` for conv+bias+relu),
    so an unmatched graph op is credited to a fused kernel of the same name scope."""
    names = {s.op_name for s in stats}
    fused_in_scope: dict[str, str] = {}
    for s in sorted(stats, key=lambda s: -s.self_us):
        if _is_fused(s.op_type):
            fused_in_scope.setdefault(s.op_name.rsplit("/", 1)[0], s.op_name)
    absorbed: dict[str, list[GraphOpCost]] = {}
    for name, cost in costs.items():
        if name in names or not cost.flops:
            continue
        target = fused_in_scope.get(name.rsplit("/", 1)[0])
        if target is not None:
            absorbed.setdefault(target, []).append(cost)
    return absorbed


def op_rows(stats: Sequence[OpStat], *, steps: int, mode: str,
            costs: Mapping[str, GraphOpCost] | None = None, model_scopes: Iterable[str] = (),
            optimizer_scopes: Iterable[str] = ()) -> list[dict[str, Any]]:
    """ops.csv rows (without run and factor columns) for one cell: values per step.

    ``flops_per_step``/``bytes_per_step`` come from the graph statistics of the op of the
    same name plus the graph ops fused into it; empty where TensorFlow registers no
    count (or the op is not in the step's graph).
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    costs = costs or {}
    model_scopes, optimizer_scopes = tuple(model_scopes), tuple(optimizer_scopes)
    absorbed = _absorbed_costs(stats, costs)
    rows: list[dict[str, Any]] = []
    for s in stats:
        parts = [c for c in (costs.get(s.op_name), *absorbed.get(s.op_name, [])) if c]
        flop_parts = [c.flops for c in parts if c.flops is not None]
        byte_parts = [c.bytes for c in parts if c.bytes is not None]
        # Each op of the step's graph function runs once per step: its graph cost is the
        # per-step cost. (The trace's occurrences can count one kernel twice: oneDNN
        # kernels show two events per call, so they are reported but not multiplied in.)
        calls = s.occurrences / steps
        rows.append({
            "op_type": s.op_type, "op_name": s.op_name,
            "category": categorize(s, mode, model_scopes, optimizer_scopes),
            "op_device": s.device, "occurrences_per_step": calls,
            "self_s_per_step": s.self_us / 1e6 / steps,
            "total_s_per_step": s.total_us / 1e6 / steps,
            "flops_per_step": sum(flop_parts) if flop_parts else None,
            "bytes_per_step": sum(byte_parts) if byte_parts else None,
        })
    _credit_compiled_function(rows, costs)
    rows.sort(key=lambda r: -r["self_s_per_step"])
    return rows


def _credit_compiled_function(rows: list[dict[str, Any]],
                              costs: Mapping[str, GraphOpCost]) -> None:
    """An XLA (jit_compile) step shows as one op, the compiled function
    (``__inference_train_783``), with no TensorFlow op inside it to join: it gets the
    whole graph's FLOPs (bytes stay unknown: XLA's fusion decides the traffic)."""
    if any(r["flops_per_step"] is not None for r in rows):
        return
    compiled = [r for r in rows if r["op_name"].startswith("__inference_")]
    total = sum(c.flops for c in costs.values() if c.flops)
    if len(compiled) == 1 and total:
        compiled[0]["flops_per_step"] = total


def step_totals(rows: Iterable[Mapping[str, Any]]) -> tuple[float | None, float | None]:
    """FLOPs and bytes per step of a cell: the sums over its ops, None where no op has one."""
    rows = list(rows)
    flops = [r["flops_per_step"] for r in rows if r.get("flops_per_step") is not None]
    nbytes = [r["bytes_per_step"] for r in rows if r.get("bytes_per_step") is not None]
    return (sum(flops) if flops else None, sum(nbytes) if nbytes else None)


def record_cell_profile(row: dict[str, Any], block_results: Sequence[Mapping[str, Any]],
                        keys: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Fill a configs.csv row's profiling columns (``trace``, ``flops_per_step``,
    ``bytes_per_step``, ``achieved_flops_per_s``) from the worker results of its blocks and
    return its ops.csv rows (``keys``: run, config and factor columns). The first block
    with op rows is used; a cell that is not ok has no ops rows."""
    if row.get("status") != "ok":
        row["trace"] = f"skipped (cell {row.get('status')})"
        return []
    traced = [r for r in block_results if r.get("trace")]
    if not traced:
        row["trace"] = "skipped (the worker recorded no trace)"
        return []
    chosen = next((r for r in traced if r.get("ops")), traced[0])
    row["trace"] = chosen["trace"]
    ops = chosen.get("ops") or []
    if not ops:
        return []
    row["flops_per_step"] = chosen.get("flops_per_step")
    row["bytes_per_step"] = chosen.get("bytes_per_step")
    median = row.get("step_s_median")
    if row["flops_per_step"] and median:
        row["achieved_flops_per_s"] = row["flops_per_step"] / median
    return [{**keys, **op} for op in ops]
