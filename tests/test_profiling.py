"""Profiling parts that need no TensorFlow run: op statistics from recorded real xprof
output, categories, per-step rows, the traced-step loop on a fake clock, settings,
the configs/ops columns, and the charts and report section from files."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from harness.config import RunSettings
from harness.errors import UserError
from harness.opstats import (
    OpStat,
    categorize,
    convert_xplanes,
    op_rows,
    parse_framework_op_stats,
    record_cell_profile,
    step_totals,
)
from harness.records import CONFIGS_COLUMNS, FACTOR_COLUMNS, OPS_COLUMNS, OPS_FILE, PHASES
from harness.trace import GraphOpCost, TraceSkipped, time_traced_steps, trace_steps_setting

DATA = Path(__file__).parent / "data" / "profiling"
RECORDED = DATA / "framework_op_stats_tiny_train.json"  # 3 traced train steps (README.md)


@pytest.fixture(scope="module")
def recorded() -> list[OpStat]:
    return parse_framework_op_stats(RECORDED.read_bytes())


def test_recorded_output_parses_without_idle(recorded: list[OpStat]) -> None:
    assert recorded and all(s.op_type != "IDLE" for s in recorded)
    conv = next(s for s in recorded if s.op_name == "functional_1/conv2d_1/Relu")
    assert conv.op_type == "_MklNativeFusedConv2D"
    assert conv.occurrences == 3.0
    assert conv.self_us == pytest.approx(2858.48)
    assert conv.device == "Host" and not conv.eager


def test_unexpected_converter_output_is_a_skip_not_a_crash() -> None:
    for bad in (b"not json", b"[]", json.dumps([{"cols": [{"id": "rank"}], "rows": []}])):
        with pytest.raises(TraceSkipped):
            parse_framework_op_stats(bad)


def test_train_categories_from_gradient_and_optimizer_scopes(recorded: list[OpStat]) -> None:
    def cat(name: str) -> str:
        op = next(s for s in recorded if s.op_name == name)
        return categorize(op, "train", ["functional"], ["adam"])

    assert cat("gradient_tape/functional_1/conv2d_1/convolution/Conv2DBackpropFilter") == \
        "backward"
    assert cat("adam/Mul_11") == "optimizer"
    assert cat("AssignVariableOp") == "optimizer"
    assert cat("functional_1/conv2d_1/Relu") == "forward"  # model scope with TF's _1 suffix
    assert cat("sparse_categorical_crossentropy/div_no_nan") == "forward"
    assert cat("Add") == "other"


def test_infer_is_forward_and_eager_ops_are_input() -> None:
    op = OpStat("Host", "Mul", "gradient_tape/x", 1, 1, 1, eager=False)
    assert categorize(op, "infer") == "forward"
    assert categorize(OpStat("Host", "RandomUniform", "r", 1, 1, 1, eager=True), "train") \
        == "input"
    assert categorize(OpStat("Host", "IteratorGetNext", "it", 1, 1, 1, False), "infer") \
        == "input"


def test_rows_are_per_step_and_fused_kernels_carry_their_graph_flops(
        recorded: list[OpStat]) -> None:
    costs = {
        # conv+bias+relu ran as one fused kernel named after the Relu
        "functional_1/conv2d_1/convolution": GraphOpCost("Conv2D", 3110400.0, 100.0),
        "functional_1/conv2d_1/BiasAdd": GraphOpCost("BiasAdd", 57600.0, 10.0),
        "functional_1/conv2d_1/Relu": GraphOpCost("Relu", None, 5.0),
        # pruned by grappler: never ran, never counted
        "gradient_tape/functional_1/conv2d_1/convolution/Conv2DBackpropInput":
            GraphOpCost("Conv2DBackpropInput", 3538944.0, 1.0),
        "functional_1/dense_1/MatMul": GraphOpCost("MatMul", 640.0, 1.0),
    }
    rows = op_rows(recorded, steps=3, mode="train", costs=costs, model_scopes=["functional"],
                   optimizer_scopes=["adam"])
    fused = next(r for r in rows if r["op_name"] == "functional_1/conv2d_1/Relu")
    assert fused["flops_per_step"] == 3110400.0 + 57600.0
    assert fused["bytes_per_step"] == 115.0
    assert fused["occurrences_per_step"] == 1.0
    assert fused["self_s_per_step"] == pytest.approx(2858.48e-6 / 3)
    dense = next(r for r in rows if r["op_name"] == "functional_1/dense_1/BiasAdd")
    assert dense["flops_per_step"] == 640.0  # fused MatMul+BiasAdd: MatMul absorbed
    assert step_totals(rows)[0] == 3110400.0 + 57600.0 + 640.0
    assert {r["category"] for r in rows} >= {"forward", "backward", "optimizer"}
    assert set(rows[0]) == set(OPS_COLUMNS) - {"run_id", "config_id", *FACTOR_COLUMNS}
    assert [r["self_s_per_step"] for r in rows] == sorted(
        (r["self_s_per_step"] for r in rows), reverse=True)


def test_a_kernel_seen_twice_per_step_is_counted_once() -> None:
    # MobileNetV2 on oneDNN: each _MklNativeConv2D shows 2 events per step in the trace;
    # its graph op still runs once per step, so its FLOPs are not doubled.
    op = OpStat("Host", "_MklNativeConv2D", "m/Conv1/convolution", 6.0, 60.0, 60.0, False)
    costs = {"m/Conv1/convolution": GraphOpCost("Conv2D", 173408256.0, 1000.0)}
    (row,) = op_rows([op], steps=3, mode="infer", costs=costs)
    assert row["occurrences_per_step"] == 2.0
    assert row["flops_per_step"] == 173408256.0 and row["bytes_per_step"] == 1000.0
    assert row["self_s_per_step"] == pytest.approx(20e-6)


def test_an_xla_step_is_one_compiled_function_with_the_graph_flops() -> None:
    # What a real jit_compile=True train step of tiny_cnn looks like in framework_op_stats.
    op = OpStat("Host", "__inference_train_783", "__inference_train_783", 2.0, 25352.0,
                25352.0, False)
    costs = {"m/conv/Conv2D": GraphOpCost("Conv2D", 1000.0, 10.0),
             "m/head/MatMul": GraphOpCost("MatMul", 20.0, 1.0),
             "m/relu": GraphOpCost("Relu", None, 1.0)}
    (row,) = op_rows([op], steps=2, mode="train", costs=costs)
    assert row["flops_per_step"] == 1020.0 and row["bytes_per_step"] is None
    assert row["self_s_per_step"] == pytest.approx(0.012676)


def test_traced_steps_on_a_fake_clock() -> None:
    ticks = iter([0, 5, 25, 30, 31, 35])  # wait, begin, end per step
    markers: list[int] = []

    @contextmanager
    def marker(i: int) -> Iterator[None]:
        markers.append(i)
        yield

    records = time_traced_steps(lambda b: b, lambda r: 0.5, lambda: "batch", steps=2,
                                images_per_step=4, first_index=40, t0_ns=0,
                                step_context=marker, clock=functools.partial(next, ticks))
    assert markers == [0, 1]
    assert [r.phase for r in records] == ["trace", "trace"]
    assert [r.step for r in records] == [40, 41]
    assert [r.duration_s for r in records] == [20e-9, 4e-9]
    assert [r.input_wait_s for r in records] == [5e-9, 1e-9]
    assert records[1].start_s == 31e-9 and records[0].images == 4 and records[0].loss == 0.5
    assert "trace" in PHASES


def test_trace_settings() -> None:
    assert trace_steps_setting(True, None) == 5
    assert trace_steps_setting(True, 2) == 2
    assert trace_steps_setting(False, None) is None
    for bad in (0, -3):
        with pytest.raises(UserError, match=r"--trace-steps: .* integers >= 1"):
            trace_steps_setting(True, bad)
    assert RunSettings(trace_steps=3).trace_steps == 3
    with pytest.raises(UserError, match="trace_steps"):
        RunSettings(trace_steps=-1)


def test_missing_converter_and_unconvertible_trace_are_skips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "plugins" / "profile" / "r" / "host.xplane.pb"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00garbage, not an XSpace proto")
    with pytest.raises(TraceSkipped, match="could not convert"):
        convert_xplanes([bad])
    monkeypatch.setitem(sys.modules, "xprof.convert", None)  # import fails like a missing one
    with pytest.raises(TraceSkipped, match="xprof is not importable"):
        convert_xplanes([bad])


def test_configs_row_gets_trace_columns_and_ops_rows() -> None:
    keys = {"run_id": "r", "config_id": "c"}
    ops = [{"op_name": "a", "flops_per_step": 10.0}]
    row = {"status": "ok", "step_s_median": 0.5}
    out = record_cell_profile(row, [{"trace": "ok", "ops": ops, "flops_per_step": 30.0,
                                     "bytes_per_step": 6.0}], keys)
    assert out == [{"run_id": "r", "config_id": "c", "op_name": "a", "flops_per_step": 10.0}]
    assert row["trace"] == "ok" and row["achieved_flops_per_s"] == 60.0
    assert row["bytes_per_step"] == 6.0
    skipped = {"status": "ok", "step_s_median": 0.5}
    assert record_cell_profile(skipped, [{"trace": "skipped (engine litert has none)"}],
                               keys) == []
    assert skipped["trace"] == "skipped (engine litert has none)"
    assert "flops_per_step" not in skipped
    failed = {"status": "failed"}
    assert record_cell_profile(failed, [{}], keys) == [] and failed["trace"] == \
        "skipped (cell failed)"
    profiling = ("trace", "flops_per_step", "achieved_flops_per_s", "bytes_per_step")
    start = CONFIGS_COLUMNS.index("trace")
    assert CONFIGS_COLUMNS[start:start + 4] == profiling
    assert OPS_FILE == "ops.csv"


def test_cli_refuses_zero_trace_steps(tmp_path: Path) -> None:
    import subprocess

    for value in ("0", "-2"):
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--models",
                               "tiny_cnn", "--trace", "--trace-steps", value, "--out",
                               str(tmp_path)], capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"--trace-steps: {value} is not valid" in proc.stderr
        assert not any(tmp_path.iterdir())


def _frame(ops: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(ops)


def test_analytic_flops_of_a_small_keras_model() -> None:
    import keras

    from harness.flops import analytic_counts, model_flops

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, name="conv")(inputs)  # 30x30x16, 3x3x3 kernel
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)  # 30x30x16, 3x3
    base = keras.Model(inputs, x, name="base")
    base.trainable = False
    outer_in = keras.Input((32, 32, 3))
    y = keras.layers.GlobalAveragePooling2D()(base(outer_in))
    model = keras.Model(outer_in, keras.layers.Dense(5, name="head")(y))
    by_name = {f.name: f for f in model_flops(model)}
    conv = 2 * 30 * 30 * 16 * 3 * 3 * 3
    dw = 2 * 30 * 30 * 16 * 3 * 3
    head = 2 * 16 * 5
    assert by_name["conv"].flops_per_image == conv and not by_name["conv"].trainable
    assert by_name["dw"].flops_per_image == dw
    assert by_name["head"].flops_per_image == head and by_name["head"].trainable
    counts = analytic_counts(model, batch_size=4, mode="train")
    assert counts["analytic_forward_flops_per_image"] == conv + dw + head
    assert counts["analytic_flops_per_step"] == 4 * (conv + dw + head + 2 * head)
    assert analytic_counts(model, 4, "infer")["analytic_flops_per_step"] == \
        4 * (conv + dw + head)


def test_ops_analysis_imports_no_tensorflow() -> None:
    import subprocess

    code = ("import sys\n"
            "import harness.opstats, harness.profile_charts, harness.profile_report\n"
            "import harness.records\n"
            "print('tensorflow' in sys.modules, 'xprof' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]
