"""Bad input through the real command line: one message, exit code 2, nothing half-written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error


def tfbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=cwd)


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert_one_line_error(proc.returncode, proc.stderr, *fragments)


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
        (["--interleave", "0"], ["interleave: 0 is not valid", "1: no interleaving"]),
        (["--sample-interval", "0"], ["sample_interval_s: 0.0 is not valid",
                                      "each sampler's own interval"]),
        (["--batch-sizes", "8,8"], ["matrix.batch_sizes: 8 is listed twice"]),
        (["--input-sizes", "0"], ["input_size: 0 is not valid", "integers > 0"]),
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


def test_list_shows_two_same_named_folders_as_two_cells(tmp_path: Path) -> None:
    from images import image_folder

    image_folder(tmp_path / "a" / "flowers", 1)
    image_folder(tmp_path / "b" / "flowers", 2)
    proc = tfbench("run", "--models", "tiny_cnn", "--modes", "infer", "--data",
                   "a/flowers,b/flowers", "--list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ids = proc.stdout.split()
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(re.fullmatch(r"infer-tiny_cnn-cpu-tf-fp32-bs8-data-flowers_[0-9a-f]{8}", i)
               for i in ids)
    same = tfbench("run", "--models", "tiny_cnn", "--data", "a/flowers,./a/flowers", "--list",
                   cwd=tmp_path)
    assert_user_error(same, "matrix.data: './a/flowers' is listed twice",
                      "the same as 'a/flowers'")


def test_a_savedmodel_without_input_size_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    assert_user_error(tfbench("run", "--models", str(tmp_path / "sm"), "--list"),
                      "input_size: not known", "--input-sizes")
    proc = tfbench("run", "--models", str(tmp_path / "sm"), "--modes", "infer", "--input-sizes",
                   "96", "--list")
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"infer-sm_[0-9a-f]{8}-96px-cpu-tf-fp32-bs8", proc.stdout.strip())


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
    # TensorFlow's C++ log stays in the probe; no Python dict reaches the console
    both = text.stdout + text.stderr
    assert not re.search(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|cuInit|oneDNN custom operations",
                         both, re.M), both
    assert "{" not in text.stdout and "'" not in text.stdout.split("engines")[0]
    assert "CUDA build, no GPU visible" in text.stdout or "CUDA build: no" in text.stdout


def test_run_help_lists_the_allowed_values_of_each_matrix_option() -> None:
    proc = tfbench("run", "--help")
    assert proc.returncode == 0
    flat = " ".join(proc.stdout.split())
    for fragment in ("--models LIST allowed: mobilenet_v2, inception_v3",
                     "--devices LIST allowed: cpu, gpu, gpu:N",
                     "--modes LIST allowed: infer, train, fit",
                     "--engines LIST allowed: tf, xla, tftrt, litert, onnxruntime",
                     "--precisions LIST allowed: fp32, mixed, fp16, int8, dynamic",
                     "--bases LIST allowed: frozen, unfrozen, cached"):
        assert fragment in flat, fragment
