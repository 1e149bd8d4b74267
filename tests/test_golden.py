"""The golden Jetson runs are exactly what the harness's own code writes from recorded streams.

tests/data/make_golden.py feeds recorded tegrastats lines and a jtop trace
through the real environment, records, orchestrator and attribution code; these
tests regenerate the runs and compare byte for byte, and check that what the
files say agrees with the code that reads them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.attribution import attribute
from harness.records import Environment, load_environment, load_results

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = ("orin_nano", "orin_nano_super")


def _make_golden():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_golden"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_regenerated_golden_runs_are_byte_identical(tmp_path: Path) -> None:
    _make_golden().main(tmp_path)
    for name in GOLDEN:
        committed = sorted(p.name for p in (DATA / "results" / name).iterdir())
        made = sorted(p.name for p in (tmp_path / name).iterdir())
        assert made == committed == ["configs.csv", "environment.json", "samples.csv",
                                     "steps.csv"]
        for file in committed:
            assert (tmp_path / name / file).read_bytes() == \
                (DATA / "results" / name / file).read_bytes(), f"{name}/{file} differs"


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_power_and_energy_are_what_attribution_computes(name: str) -> None:
    # The hand-made data of the first wave failed this for 10-11 of 13 ok cells.
    res = load_results(DATA / "results" / name)
    ok = res.configs[res.configs["status"] == "ok"]
    assert len(ok) == 13
    interval = float(res.samples[res.samples["metric"] == "power_total"]["t_s"].diff().median())
    for row in ok.to_dict("records"):
        images = int(row["measured_steps"]) * int(row["batch_size"])
        got = attribute(res.samples, row["config_id"], row["measure_start_s"],
                        row["measure_end_s"], images, interval)
        assert got["power_w_mean"] == pytest.approx(row["power_w_mean"], rel=1e-12)
        assert got["energy_j_per_image"] == pytest.approx(row["energy_j_per_image"], rel=1e-12)
        assert got["energy_confidence"] == row["energy_confidence"]


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_power_samples_are_recorded_lines(name: str) -> None:
    res = load_results(DATA / "results" / name)
    power = res.samples[res.samples["metric"] == "power_total"]["value"]
    # Orin Nano, JetPack 6: 4824 mW idle (user line) or 12479 mW busy (root line); the jtop
    # trace's idle sample reads 5133 mW.
    allowed = {"orin_nano": {4.824, 12.479}, "orin_nano_super": {5.133, 12.479}}[name]
    assert set(power.round(6)) == allowed


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_environment_is_the_typed_model(name: str) -> None:
    path = DATA / "results" / name / "environment.json"
    raw = json.loads(path.read_text())
    env = load_environment(path.parent)
    assert env.to_json() == raw  # every key is a field of the model; nothing guessed
    assert env.jetson is not None and env.jetson.jetpack == "6.2"
    assert env.sampling is not None and env.sampling.problems == ()
    assert isinstance(Environment.from_json(raw), Environment)


def test_real_tiny_run_environment_reads_into_the_typed_model() -> None:
    env = load_environment(DATA / "results" / "real_tiny")
    assert env.gpus == () and env.jetson is None
    assert env.tensorflow_version == "2.21.0" and env.cpu_count == 2
    assert env.tensorrt is not None and env.tensorrt.describe() == "not available"
    assert env.sampling is not None and env.sampling.active == ("psutil",)
    frame = pd.read_csv(DATA / "results" / "real_tiny" / "configs.csv")
    assert len(frame) > 0
