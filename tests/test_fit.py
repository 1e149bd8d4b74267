"""Fit mode's pure parts: plan, batch order, stratified split, the loop on a fake clock,
the time-to-target summary, and the configuration rules (bad input → UserError)."""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from imagesets import colour_folder

from harness.cli import main
from harness.config import (
    Cell,
    Profile,
    RunSettings,
    expand_matrix,
    path_label,
    profile_from_dict,
)
from harness.data import check_split, stratified_split
from harness.errors import UserError
from harness.fit import FitPlan, batch_order, plan_fit, run_fit, summarize_fit

MS = 1_000_000


# ------------------------------------------------------------------ plan and order


def test_plan_evaluates_once_per_epoch_by_default() -> None:
    plan = plan_fit(train_images=50, batch_size=8, epochs=3, max_steps=None,
                    eval_every_steps=None)
    assert plan == FitPlan(steps_per_epoch=6, total_steps=18, eval_after=(6, 12, 18))


def test_plan_max_steps_caps_and_last_step_is_evaluated() -> None:
    plan = plan_fit(50, 8, epochs=3, max_steps=10, eval_every_steps=4)
    assert plan.total_steps == 10
    assert plan.eval_after == (4, 8, 10)


def test_plan_refuses_fewer_images_than_a_batch() -> None:
    with pytest.raises(ValueError):
        plan_fit(5, 8, 1, None, None)


def test_batch_order_is_a_fresh_permutation_each_epoch_and_seeded() -> None:
    plan = plan_fit(20, 4, epochs=3, max_steps=None, eval_every_steps=None)
    order = batch_order(20, plan, 4, seed=7)
    assert order.shape == (15, 4)
    for epoch in range(3):
        block = order[epoch * 5:(epoch + 1) * 5].ravel()
        assert sorted(block) == list(range(20))  # every image once per epoch
    assert not np.array_equal(order[:5], order[5:10])
    assert np.array_equal(order, batch_order(20, plan, 4, seed=7))
    assert not np.array_equal(order, batch_order(20, plan, 4, seed=8))


def test_stratified_split_holds_out_each_class_in_proportion() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 10)
    train, val = stratified_split(labels, 0.2, seed=3)
    assert set(train).isdisjoint(val) and len(train) + len(val) == 90
    assert np.bincount(labels[val]).tolist() == [10, 6, 2]
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(val, again[1])
    assert not np.array_equal(val, stratified_split(labels, 0.2, seed=4)[1])


def test_check_split_refuses_one_class_thin_classes_and_small_sets() -> None:
    with pytest.raises(UserError, match="at least two classes"):
        check_split(np.zeros(20, np.int64), ["a"], 0.2, 4, "d")
    with pytest.raises(UserError, match="class 'b' has one image"):
        check_split(np.array([0] * 10 + [1]), ["a", "b"], 0.2, 4, "d")
    with pytest.raises(UserError, match=r"leaves 16 training images.*batch_size 17"):
        check_split(np.array([0] * 10 + [1] * 10), ["a", "b"], 0.2, 17, "d")
    check_split(np.array([0] * 10 + [1] * 10), ["a", "b"], 0.2, 16, "d")  # exactly enough


# ------------------------------------------------------------------ the loop


def _loop(losses: list[float], plan: FitPlan, evals: list[tuple[float, float, int]],
          warmup: int = 1):
    ticks = itertools.count(0, 2 * MS)  # every clock read: +2 ms
    loss_iter = iter(losses)
    eval_iter = iter(evals)
    return run_fit(lambda batch: batch, lambda r: (next(loss_iter), 0.5),
                   lambda: "batch", lambda: next(eval_iter), plan, images_per_step=4,
                   warmup_steps=warmup, clock=functools.partial(next, ticks))


def test_loop_rows_phases_and_eval_rows_apart() -> None:
    plan = FitPlan(steps_per_epoch=3, total_steps=6, eval_after=(3, 6))
    out = _loop([1.0] * 6, plan, [(0.9, 0.5, 10), (0.4, 0.95, 10)])
    phases = [r["phase"] for r in out.rows]
    assert phases == ["warmup", "warmup", "measure", "eval", "measure", "measure", "measure",
                      "eval"]
    train = [r for r in out.rows if r["phase"] != "eval"]
    assert [r["step"] for r in train] == list(range(6))
    assert all(r["duration_s"] == pytest.approx(0.002) for r in out.rows)
    assert all(r["input_wait_s"] == pytest.approx(0.002) for r in train)
    evals = out.evals
    assert [e["step"] for e in evals] == [2, 5]
    assert [e["val_accuracy"] for e in evals] == [0.5, 0.95]
    assert all(e["loss"] is None and e["images"] == 10 for e in evals)
    assert out.first_step_s == pytest.approx(0.002)


def test_loop_stops_at_a_nan_loss_and_keeps_the_rows() -> None:
    plan = FitPlan(steps_per_epoch=5, total_steps=5, eval_after=(5,))
    out = _loop([2.0, 1.5, math.nan, 1.0, 1.0], plan, [])
    assert out.diverged_at == 2
    assert len(out.rows) == 3 and math.isnan(out.rows[-1]["loss"])
    assert out.evals == []


def test_summary_time_to_target_counts_training_time_only() -> None:
    rows = [
        {"step": 0, "phase": "warmup", "duration_s": 1.0, "input_wait_s": 0.5},
        {"step": 1, "phase": "measure", "duration_s": 0.25, "input_wait_s": 0.25},
        {"step": 1, "phase": "eval", "duration_s": 100.0, "input_wait_s": 0.0,
         "val_accuracy": 0.6, "val_loss": 1.0},
        {"step": 2, "phase": "measure", "duration_s": 0.25, "input_wait_s": 0.0},
        {"step": 2, "phase": "eval", "duration_s": 100.0, "input_wait_s": 0.0,
         "val_accuracy": 0.92, "val_loss": 0.3},
        {"step": 3, "phase": "measure", "duration_s": 0.25, "input_wait_s": 0.0},
        {"step": 3, "phase": "eval", "duration_s": 100.0, "input_wait_s": 0.0,
         "val_accuracy": 0.91, "val_loss": 0.35},
    ]
    s = summarize_fit(rows, 0.9)
    assert s["target_reached"] is True
    assert s["steps_to_target"] == 3
    assert s["time_to_target_s"] == pytest.approx(2.25)  # evaluations (300 s) excluded
    assert s["val_accuracy_final"] == 0.91 and s["val_accuracy_best"] == 0.92
    assert s["train_time_s"] == pytest.approx(2.5) and s["eval_time_s"] == pytest.approx(300)
    missed = summarize_fit(rows, 0.95)
    assert missed["target_reached"] is False
    assert missed["steps_to_target"] is None and missed["time_to_target_s"] is None


# ------------------------------------------------------------------ configuration


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_folder(tmp_path_factory.mktemp("colours"), per_class=6)


def test_learning_rates_are_a_factor_of_train_and_fit_cells(colours: Path) -> None:
    profile = Profile("p", {"models": ("tiny_cnn",), "modes": ("infer", "train", "fit"),
                            "bases": ("frozen", "cached"), "learning_rates": (0.005, 1.0),
                            "data": (str(colours),)}, RunSettings())
    cells = expand_matrix(profile)
    infer = [c for c in cells if c.mode == "infer"]
    assert len(infer) == 1 and infer[0].learning_rate is None
    assert len([c for c in cells if c.mode == "train"]) == 4
    fit_ids = sorted(c.config_id for c in cells if c.mode == "fit")
    data = path_label(str(colours), colours.name)  # the folder's name and a hash of its path
    assert fit_ids == [f"fit-tiny_cnn-cpu-{b}-tf-fp32-bs8-data-{data}-lr{lr}"
                       for b in ("cached", "frozen") for lr in ("0.005", "1")]
    assert len({c.config_id for c in cells}) == len(cells)


def test_train_cell_default_learning_rate_keeps_its_old_id() -> None:
    cell = Cell("tiny_cnn", mode="train", base="frozen")
    assert cell.learning_rate == 0.01
    assert cell.config_id == "train-tiny_cnn-cpu-frozen-tf-fp32-bs8"


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "infer", "base": "cached"}, "base: 'cached'.*train or fit"),
    ({"mode": "train", "base": "frozen", "learning_rate": 0.0}, "learning_rate: 0.0"),
    ({"mode": "train", "base": "frozen", "learning_rate": -1.0}, "learning_rate: -1.0"),
    ({"mode": "fit", "base": "frozen"}, "mode 'fit' needs a data set"),
    ({"mode": "infer", "data": "mnist"}, "MNIST models and data run in fit mode"),
])
def test_bad_cells(kwargs: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        Cell("tiny_cnn", **kwargs)


@pytest.mark.parametrize("settings,match", [
    ({"target_accuracy": 0.0}, r"target_accuracy: 0.0 .*\(0, 1\]"),
    ({"target_accuracy": 1.5}, "target_accuracy: 1.5"),
    ({"epochs": 0}, "epochs: 0"),
    ({"max_steps": 0}, "max_steps: 0"),
    ({"validation_fraction": 1.0}, "validation_fraction: 1.0"),
    ({"eval_every_steps": 0}, "eval_every_steps: 0"),
    ({"optimizer": "rmsprop"}, "optimizer: 'rmsprop'.*sgd, adam"),
])
def test_bad_fit_settings(settings: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        RunSettings(**settings)


def test_profile_settings_accept_the_fit_keys() -> None:
    p = profile_from_dict({"matrix": {"models": ["tiny_cnn"], "learning_rates": [0.1]},
                           "settings": {"epochs": 3, "target_accuracy": 0.8,
                                        "optimizer": "adam", "eval_every_steps": 5}})
    assert p.settings.epochs == 3 and p.settings.optimizer == "adam"
    assert p.matrix["learning_rates"] == (0.1,)


def test_homework_profile_pairs_mnist_models_with_mnist(colours: Path) -> None:
    from harness.config import load_profile

    p = load_profile("homework").with_overrides({"data": [str(colours), "mnist"]}, {})
    cells = expand_matrix(p)
    assert {c.data for c in cells if c.model.startswith("mnist_")} == {"mnist"}
    assert {c.data for c in cells if not c.model.startswith("mnist_")} == {str(colours)}
    assert {c.base for c in cells} == {"frozen", "cached", "unfrozen"}
    assert {c.learning_rate for c in cells} == {0.005, 0.01, 1.0}
    assert {c.batch_size for c in cells} == {16}


# ------------------------------------------------------------------ the CLI refuses


def _refused(args: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["run", "--profile", "quick", "--out", str(out), "--no-plots",
                 "--samplers", "none", *args])
    assert code == 2
    assert not out.exists() or not any(out.iterdir()), "nothing may be written"
    err = capsys.readouterr().err
    assert err.startswith("tfbench: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("args,match", [
    (["--target-accuracy", "0"], "target_accuracy: 0.0"),
    (["--target-accuracy", "1.01"], "target_accuracy: 1.01"),
    (["--learning-rates", "0.01,-0.1"], "learning_rate: -0.1"),
    (["--learning-rates", "abc"], "learning_rate: 'abc'"),
    (["--epochs", "0"], "epochs: 0"),
    (["--validation-fraction", "0"], "validation_fraction: 0.0"),
    (["--modes", "infer", "--bases", "cached"],
     "bases: --bases cached makes no sense with modes infer"),
    (["--optimizer", "rmsprop"], "optimizer: 'rmsprop'"),
    (["--interleave", "2"], "interleave (fit cells): 2"),
])
def test_cli_refuses_bad_fit_input(args: list[str], match: str, tmp_path: Path,
                                   colours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--models", "tiny_cnn", "--modes", "fit", "--data", str(colours)]
    err = _refused(base + args, tmp_path / "o", capsys)
    assert match in err


def test_cli_refuses_fit_on_one_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    one = colour_folder(tmp_path / "one", per_class=4)
    for extra in ("green", "blue"):
        for f in (one / extra).iterdir():
            f.unlink()
        (one / extra).rmdir()
    err = _refused(["--models", "tiny_cnn", "--modes", "fit", "--data", str(one)],
                   tmp_path / "o", capsys)
    assert "at least two classes" in err


def test_cli_refuses_fit_on_too_few_images(tmp_path: Path, colours: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(["--models", "tiny_cnn", "--modes", "fit", "--data", str(colours),
                    "--batch-sizes", "32"], tmp_path / "o", capsys)
    assert "batch_size 32 needs at least 32" in err


def test_cli_refuses_mnist_without_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras"))
    err = _refused(["--models", "mnist_dense", "--modes", "fit", "--data", "mnist",
                    "--bases", "unfrozen"], tmp_path / "o", capsys)
    assert "mnist" in err and "--allow-download" in err
    assert not (tmp_path / "empty_keras").exists()


@pytest.mark.parametrize("optimizer,kind", [("sgd", "SGD"), ("adam", "Adam")])
def test_train_cells_use_their_learning_rate_and_optimizer(optimizer: str, kind: str) -> None:
    from harness.workloads import build_workload

    cell = Cell("tiny_cnn", mode="train", base="frozen", learning_rate=0.005, batch_size=2)
    w = build_workload(cell, RunSettings(optimizer=optimizer), num_classes=3)
    opt = w.model.optimizer
    assert type(opt).__name__ == kind
    assert float(opt.learning_rate.numpy()) == pytest.approx(0.005)
    if kind == "SGD":
        assert opt.momentum == 0.9
