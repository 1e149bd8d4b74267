"""Security: offline means offline (a corrupt cache file is an error, never a download or a
deletion), Markdown output cannot carry HTML, SavedModel inputs load."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import Cell, RunSettings
from harness.orchestrator import RunSession

REPO = Path(__file__).resolve().parent.parent
INCEPTION = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
NO_NETWORK = """\
import socket

def _refuse(self, address, *args, **kwargs):
    with open({marker!r}, "a") as fh:
        fh.write(repr(address) + "\\n")
    raise OSError("network blocked by the test (offline)")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = lambda address, *a, **k: _refuse(None, address)
"""


def _corrupt_cache(tmp: Path) -> Path:
    cached = tmp / "keras" / "models" / INCEPTION
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4096))  # an h5 magic, then garbage
    return cached


@pytest.mark.slow
def test_a_corrupt_cached_weights_file_is_an_error_not_a_download(tmp_path: Path) -> None:
    # The worker runs with connect() blocked (an injected sitecustomize): Keras's own
    # path would see the hash mismatch, try to download again and delete the cached file.
    cached = _corrupt_cache(tmp_path)
    before = cached.read_bytes()
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "connect-attempts.txt"
    (site / "sitecustomize.py").write_text(NO_NETWORK.format(marker=str(marker)))
    env = {"KERAS_HOME": str(tmp_path / "keras"),
           "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    (tmp_path / "run").mkdir()
    session = RunSession(tmp_path / "run", RunSettings(warmup_steps=1, measured_steps=2,
                                                       samplers=()),
                         run_id="t", t0_ns=time.perf_counter_ns(), worker_env=env)
    cell = Cell(model="inception_v3", weights="imagenet", input_size=75, batch_size=1)
    outcome = session.run_block(cell)
    assert outcome.status == "failed"
    assert "the cached ImageNet file" in outcome.reason and "nothing was downloaded" in \
        outcome.reason
    assert not marker.exists(), marker.read_text()  # no code path tried to connect
    assert cached.read_bytes() == before  # nothing deleted or replaced


def test_preflight_refuses_a_cached_file_with_the_wrong_hash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    cached = _corrupt_cache(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    out = tmp_path / "results"
    code = main(["run", "--models", "inception_v3", "--weights", "imagenet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"the cached file {cached} has MD5" in err and "bcbd6486424b2319ff4ef7d526e38f63" in err
    assert cached.exists() and not out.exists()


def test_markdown_report_and_compare_escape_html(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(__file__).parent / "data" / "compare"
    run = tmp_path / "run"
    shutil.copytree(data / "base_r1", run)
    evil = "<img src=x onerror=alert(1)>"
    env = json.loads((run / "environment.json").read_text())
    env["host"] = evil
    env["cpu_model"] = "<script>alert('cpu')</script>"
    (run / "environment.json").write_text(json.dumps(env))
    configs = (run / "configs.csv").read_text().splitlines()
    header = configs[0].split(",")
    cells = configs[1].split(",")
    cells[header.index("reason")] = evil.replace(",", " ")
    configs[1] = ",".join(cells)
    (run / "configs.csv").write_text("\n".join(configs) + "\n")
    out = tmp_path / "report.md"
    assert main(["report", str(run), "--out", str(out)]) == 0
    text = out.read_text()
    assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;" in text
    capsys.readouterr()
    main(["compare", str(data / "base_r2"), str(run), "--format", "markdown", "--force"])
    md = capsys.readouterr().out
    assert "<img" not in md and "<script>" not in md


def test_sampler_death_is_reported_in_report_and_compare(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(__file__).parent / "data" / "compare"
    run = tmp_path / "run"
    shutil.copytree(data / "base_r1", run)
    env = json.loads((run / "environment.json").read_text())
    env["sampling"] = {"active": ["psutil"], "status": {"psutil": "active"}, "rows": 10,
                       "samples": {"psutil": 10}, "problems": [], "last_sample_s": 1.5,
                       "died_at_s": 2.0}
    (run / "environment.json").write_text(json.dumps(env))
    out = tmp_path / "report.md"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert "sampler process died at t=2.0 s" in out.read_text()
    capsys.readouterr()
    main(["compare", str(data / "base_r2"), str(run), "--format", "markdown"])
    captured = capsys.readouterr()
    assert "sampler process died at t=2.0 s" in captured.out
    assert "sampler process died at t=2.0 s" in captured.err


@pytest.mark.slow
def test_a_savedmodel_exported_by_keras_runs(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, x)
    exported = tmp_path / "exported"
    model.export(str(exported))  # a plain keras.Model.export(): a SavedModel directory
    (tmp_path / "run").mkdir()
    session = RunSession(tmp_path / "run", RunSettings(warmup_steps=1, measured_steps=3,
                                                       samplers=()),
                         run_id="t", t0_ns=time.perf_counter_ns(),
                         worker_env={"PYTHONPATH": str(REPO)})
    outcome = session.run_cell(Cell(model=str(exported), input_size=32, batch_size=2))
    assert outcome.status == "ok", outcome.reason
    assert len(outcome.measured_durations()) >= 3

