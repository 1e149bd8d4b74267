"""Fit mode end to end: real tiny models on a generated colour-image folder through
`tfbench run`, the bottleneck cache across runs, a diverging learning rate, the
saved model labelled by `tfbench classify`, and the accuracy charts and findings."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from imagesets import COLOURS, colour_folder

from harness.records import load_results

pytestmark = pytest.mark.slow
PROFILE = Path(__file__).parent / "data" / "profiles" / "tiny_fit.toml"


def _run(args: list[str], env: dict[str, str], out: Path) -> Path:
    before = set(out.iterdir()) if out.exists() else set()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--profile", str(PROFILE),
                           "--out", str(out), *args], capture_output=True, text=True,
                          timeout=600, env=env, check=False)
    new = sorted(set(out.iterdir()) - before)
    assert len(new) == 1, proc.stderr
    return new[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("acc")
    data = colour_folder(root / "colours", per_class=20)
    env = {**os.environ, "TFBENCH_CACHE_DIR": str(root / "cache")}
    first = _run(["--data", str(data), "--bases", "cached,unfrozen",
                  "--learning-rates", "0.05", "--epochs", "4"], env, root / "results")
    # One cell: the cache built by the first run, a learning rate that overflows the head.
    second = _run(["--data", str(data), "--bases", "cached", "--learning-rates", "1e38",
                   "--epochs", "1", "--no-plots"], env, root / "results")
    return {"root": root, "data": data, "env": env, "first": first, "second": second}


def _rows(run: Path) -> dict[str, dict[str, str]]:
    return {r["base"]: r for r in csv.DictReader((run / "configs.csv").open())}


def test_unfrozen_reaches_the_target_and_records_time_to_target(setup: dict) -> None:
    row = _rows(setup["first"])["unfrozen"]
    assert row["status"] == "ok", row["reason"]
    assert float(row["val_accuracy_final"]) >= 0.9
    assert float(row["val_accuracy_best"]) >= float(row["val_accuracy_final"])
    assert row["target_reached"] == "true" and float(row["target_accuracy"]) == 0.9
    steps = int(row["steps_to_target"])
    assert 0 < steps <= 4 * int(row["train_images"]) // 8
    assert 0 < float(row["time_to_target_s"]) <= float(row["train_time_s"])
    assert row["learning_rate"] == "0.05" and row["optimizer"] == "sgd"
    assert row["epochs"] == "4"
    assert int(row["train_images"]) == 48 and int(row["val_images"]) == 12  # 20% of each class


def test_eval_rows_are_apart_from_step_statistics(setup: dict) -> None:
    res = load_results(setup["first"])
    for cfg in res.configs.to_dict("records"):
        steps = res.steps[res.steps["config_id"] == cfg["config_id"]]
        evals = steps[steps["phase"] == "eval"]
        measure = steps[steps["phase"] == "measure"]
        assert len(evals) == 4  # once per epoch
        assert evals["val_accuracy"].between(0, 1).all() and evals["loss"].isna().all()
        assert (evals["duration_s"] > 0).all()
        assert cfg["measured_steps"] == len(measure)
        assert cfg["step_s_median"] == pytest.approx(float(np.median(measure["duration_s"])))
        train = steps[steps["phase"] != "eval"]
        assert train["accuracy"].between(0, 1).all() and train["val_accuracy"].isna().all()
        assert cfg["eval_time_s"] == pytest.approx(evals["duration_s"].sum())


def test_models_are_saved_with_their_labels(setup: dict) -> None:
    for row in _rows(setup["first"]).values():
        model = setup["first"] / row["model_path"]
        assert model.name == f"{row['config_id']}.keras" and model.is_file()
        labels = model.with_suffix(".labels.txt").read_text().split()
        assert labels == sorted(COLOURS)


def test_cache_is_built_once_and_reused_across_runs(setup: dict) -> None:
    first = _rows(setup["first"])["cached"]
    second = _rows(setup["second"])["cached"]
    assert first["cache_hit"] == "false" and float(first["cache_build_s"]) > 0
    assert second["cache_hit"] == "true"  # even though that cell then diverged
    assert second["cache_build_s"] == first["cache_build_s"]  # the stored build time
    folders = list((setup["root"] / "cache" / "bottlenecks").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("tiny_cnn-32-")
    features = np.load(folders[0] / "features.npy")
    assert features.shape == (60, 16)  # every image once; tiny_cnn's 16 pooled features
    assert _rows(setup["first"])["unfrozen"]["cache_build_s"] == ""


def test_a_diverging_learning_rate_is_a_failed_cell_that_keeps_its_rows(setup: dict) -> None:
    row = _rows(setup["second"])["cached"]
    assert row["status"] == "failed"
    assert row["reason"].startswith("loss diverged at step ")
    n = int(row["reason"].rsplit(" ", 1)[1])
    steps = [r for r in csv.DictReader((setup["second"] / "steps.csv").open())
             if r["config_id"] == row["config_id"]]
    assert [int(r["step"]) for r in steps] == list(range(n + 1))
    assert steps[-1]["loss"] == ""  # NaN is not written as a number
    assert row["model_path"] == ""


def test_classify_labels_a_held_out_image(setup: dict, tmp_path: Path) -> None:
    held_out = colour_folder(tmp_path / "held_out", per_class=1, seed=99)
    model = setup["first"] / _rows(setup["first"])["unfrozen"]["model_path"]
    images = [held_out / c / f"{c}_000.png" for c in sorted(COLOURS)]
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "classify", str(model),
                           *map(str, images), "--top-k", "2"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "input 32x32x3" in lines[0] and "rescaling" in lines[0]
    for colour, image in zip(sorted(COLOURS), images, strict=True):
        top = lines[lines.index(str(image)) + 1].split()
        assert top[1] == colour and 0 < float(top[0]) <= 1
    assert lines[-1].startswith("time: model load ")


def test_accuracy_charts_and_findings(setup: dict) -> None:
    index = (setup["first"] / "charts" / "index.md").read_text()
    for name in ("val_accuracy", "time_to_target"):
        assert (setup["first"] / "charts" / f"{name}.png").is_file(), index
    assert "learning_rate: not made" in index  # one learning rate only
    from harness.plots import load_runs
    from harness.report import build_report

    doc, _, _ = build_report(load_runs([setup["first"]]))
    bullets = [b for kind, items in doc.blocks if kind == "ul" for b in items]
    assert any("validation accuracy first in training time" in b for b in bullets)
