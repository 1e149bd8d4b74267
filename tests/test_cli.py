"""Bad input through the real command line: one message, exit code 2, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def tfbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=cwd)


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfbench: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--models", "resnet9000"], ["model: 'resnet9000' is not valid", "mobilenet_v2"]),
        (["--devices", "tpu"], ["device: 'tpu'", "cpu, gpu, gpu:N"]),
        (["--modes", "serve"], ["modes: 'serve'", "infer, train"]),
        (["--engines", "tvm"], ["engines: 'tvm'", "tf, xla"]),
        (["--batch-sizes", "0"], ["batch_size: 0", "integers > 0"]),
        (["--batch-sizes", "eight"], ["batch_size: 'eight'", "integers > 0"]),
        (["--profile", "nope"], ["profile: 'nope'", "quick"]),
        (["--samplers", "thermometer"], ["samplers: 'thermometer'", "psutil"]),
        (["--measured-steps", "0"], ["measured_steps: 0"]),
    ],
)
def test_bad_run_options(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    out = tmp_path / "results"
    assert_user_error(tfbench("run", "--out", str(out), *args), *fragments)
    assert not out.exists()


def test_bad_data_directories(tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert_user_error(tfbench("run", "--out", str(out), "--data", str(tmp_path / "none")),
                      "data:", "not a directory")
    empty = tmp_path / "empty"
    (empty / "daisy").mkdir(parents=True)
    assert_user_error(tfbench("run", "--out", str(out), "--data", str(empty)), "holds no images")
    (empty / "daisy" / "broken.jpg").write_bytes(b"this is not a jpeg")
    assert_user_error(tfbench("run", "--out", str(out), "--models", "tiny_cnn", "--data",
                              str(empty)), "broken.jpg", "not a readable JPEG or PNG")
    assert not out.exists()


def test_malformed_profile_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[matrix]\nmodels = ['tiny_cnn'\n")
    assert_user_error(tfbench("run", "--profile", str(bad)), "not valid TOML")


def test_unwritable_output_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_user_error(tfbench("run", "--models", "tiny_cnn", "--out", str(blocker / "sub")),
                      "out:", "cannot be written")


def test_offline_by_default(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--models", "mobilenet_v2",
         "--weights", "imagenet", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120, check=False,
        env={"KERAS_HOME": str(tmp_path / "keras"), "PATH": "/usr/bin:/bin"},
    )
    assert_user_error(proc, "weights: 'imagenet'", "--allow-download")


def test_unknown_command_and_help() -> None:
    assert_user_error(tfbench("frobnicate"), "invalid choice")
    proc = tfbench("--help")
    assert proc.returncode == 0 and "run" in proc.stdout and "compare" in proc.stdout


def test_list_shows_cells_without_running() -> None:
    proc = tfbench("run", "--list", "--models", "tiny_cnn", "--modes", "infer")
    assert proc.returncode == 0
    assert proc.stdout.split() == ["infer-tiny_cnn-cpu-tf-fp32-bs8"]


@pytest.mark.slow
def test_env_lists_devices_engines_and_samplers_with_reasons() -> None:
    import json

    proc = tfbench("env", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["tensorflow_version"]
    assert info["gpus"] == []
    assert set(info["engines"]) >= {"tf", "xla", "tftrt", "litert", "onnxruntime"}
    assert info["engines"]["tf"]["available"] is True
    tftrt = info["engines"]["tftrt"]
    assert tftrt["available"] is False and tftrt["reason"]
    assert info["samplers"]["psutil"]["available"] is True
    for name, sampler in info["samplers"].items():
        assert sampler["available"] or sampler["reason"], name
    text = tfbench("env")
    assert text.returncode == 0 and "engines" in text.stdout and "samplers" in text.stdout
