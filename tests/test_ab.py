"""`tfbench ab` through the real command line: bad input, and real A/B runs on tiny models.

The real runs start one TensorFlow worker per block (2 pairs = 4 workers per
run), so they are marked slow and kept to the fewest blocks that can show the
behaviour named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cli_errors import assert_one_line_error

from harness.commands import ab

TINY = ["--models", "tiny_cnn", "--modes", "infer", "--batch-sizes", "8",
        "--measured-steps", "12", "--warmup-steps", "2", "--samplers", "psutil", "--no-plots"]


def tfbench(*args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "ab", *args],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def assert_user_error(proc: subprocess.CompletedProcess[str], out: Path, *fragments: str
                      ) -> None:
    assert_one_line_error(proc.returncode, proc.stderr, *fragments)
    assert not out.exists() or not any(out.iterdir()), "nothing may be written"


@pytest.mark.parametrize(("args", "fragments"), [
    (["--candidate-python", "/no/such/python"], ["--candidate-python", "does not exist"]),
    (["--baseline-env", "TF_NUM_INTRAOP_THREADS"], ["--baseline-env",
                                                    "'TF_NUM_INTRAOP_THREADS'", "NAME=VALUE"]),
    (["--candidate-env", "=1"], ["--candidate-env"]),
    (["--candidate-rev", "no-such-rev-xyz"], ["--candidate-rev: 'no-such-rev-xyz'",
                                              "git revision"]),
    (["--interleave", "1"], ["--interleave: 1", "integers >= 2"]),
    (["--threshold", "latency=5%"], ["--threshold metric: 'latency'", "step_s"]),
    (["--baseline-python", sys.executable, "--baseline-rev", "HEAD"], ["give one"]),
])
def test_bad_input_is_one_message_exit_2_nothing_written(
        tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    out = tmp_path / "out"
    assert_user_error(tfbench(*TINY, "--out", str(out), *args), out, *fragments)


def test_a_python_that_cannot_import_the_project(tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    out = tmp_path / "out"
    proc = tfbench(*TINY, "--out", str(out), "--candidate-python", str(venv / "bin" / "python"))
    assert_user_error(proc, out, "--candidate-python", "cannot import the project")


def read(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    return (pd.read_csv(run_dir / "configs.csv"), pd.read_csv(run_dir / "steps.csv"),
            pd.read_csv(run_dir / "blocks.csv"),
            json.loads((run_dir / "environment.json").read_text()))


@pytest.mark.slow
def test_a_a_with_the_same_interpreter_is_no_regression(tmp_path: Path) -> None:
    proc = tfbench(*TINY, "--interleave", "2", "--out", str(tmp_path),
                   "--baseline-python", sys.executable, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REGRESSION (" not in proc.stdout
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    configs, steps, blocks, env = read(run_dir)
    assert sorted(configs["side"]) == ["baseline", "candidate"]
    assert set(configs["status"]) == {"ok"}
    assert set(steps["side"]) == {"baseline", "candidate"}
    assert configs["other_cpu_cores"].notna().all() and configs["load_avg_1m"].notna().all()
    # A B B A: pair 0 baseline first, pair 1 candidate first
    order = blocks.sort_values("order")[["pair", "side"]].values.tolist()
    assert order == [[0, "baseline"], [0, "candidate"], [1, "candidate"], [1, "baseline"]]
    sides = env["ab"]["sides"]
    assert sides["baseline"]["executable"] and sides["candidate"]["packages"]["tensorflow"]
    assert sides["baseline"]["env"] == {"PYTHONSAFEPATH": "1"}
    assert "load" in env and env["load"]["cpu_count"] >= 1
    verdicts = json.loads((run_dir / "verdicts.json").read_text())
    assert verdicts["exit_code"] == 0
    logs = sorted(p.name for p in (run_dir / "logs").iterdir())
    assert logs[0].startswith("baseline-") and logs[-1].startswith("candidate-")


@pytest.mark.slow
def test_a_candidate_that_crashes_in_every_block(tmp_path: Path) -> None:
    proc = tfbench(*TINY, "--interleave", "2", "--out", str(tmp_path),
                   "--candidate-env", "TFBENCH_FAULT=crash", timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    configs, _, blocks, _ = read(run_dir)
    cand = configs[configs["side"] == "candidate"].iloc[0]
    assert cand["status"] == "failed" and "injected crash" in cand["reason"]
    assert set(blocks[blocks["side"] == "candidate"]["status"]) == {"failed"}
    assert "candidate failed" in proc.stdout and "INCONCLUSIVE" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_one_intra_op_thread_instead_of_two_is_a_regression(tmp_path: Path) -> None:
    """The issue's check on a tiny model: TF_NUM_INTRAOP_THREADS=2 (baseline) vs 1
    (candidate) reaches TensorFlow in each side's workers, is recorded with the side, and
    is a REGRESSION with exit 1.

    The model must be one that a second thread speeds up: on the 2-core CI VM the 32-pixel
    tiny models are not (their ops are too small; tiny_mobilenet_v2 at batch 128 ran 0.72x
    with one thread), while tiny_cnn at 224 pixels, batch 16, ran 31.9 ms with one thread
    and 15.2 ms with two, and in a K = 4 ab run 1.69x (1.45-1.97; block-pair ratios
    1.54-1.91). On the CI machine a second thread helped less and the blocks were noisier:
    K = 3 gave 1.41x (0.85-2.35), INCONCLUSIVE (block-pair log-ratio spread about 0.21),
    so the test runs ab's default K = 8, whose t interval is 2.4 times narrower."""
    import json

    proc = tfbench("--models", "tiny_cnn", "--input-sizes", "224", "--modes", "infer",
                   "--batch-sizes", "16", "--measured-steps", "20", "--warmup-steps", "2",
                   "--samplers", "none", "--no-plots", "--interleave", "8",
                   "--out", str(tmp_path),
                   "--baseline-env", "TF_NUM_INTRAOP_THREADS=2",
                   "--candidate-env", "TF_NUM_INTRAOP_THREADS=1", timeout=1500)
    line = next(ln for ln in proc.stdout.splitlines() if "step_s ratio" in ln)
    assert "REGRESSION" in line, proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    sides = json.loads((run_dir / "environment.json").read_text())["ab"]["sides"]
    assert sides["baseline"]["env"] == {"TF_NUM_INTRAOP_THREADS": "2"}
    assert sides["candidate"]["env"] == {"TF_NUM_INTRAOP_THREADS": "1"}


@pytest.mark.slow
def test_a_revision_installs_into_its_own_venv_and_imports_from_there(tmp_path: Path) -> None:
    side = ab.Side("candidate", sys.executable, {})
    side.rev = ab.resolve_rev("HEAD", "--candidate-rev")
    side.isolated = True
    ab.install_rev(side, tmp_path)
    ab.probe(side)
    assert side.python.startswith(str(tmp_path))
    assert side.record["harness_path"].startswith(str(tmp_path))  # not this checkout
    assert side.record["packages"]["tensorflow"]  # reused from the current venv
    assert side.record["rev"] == side.rev and len(side.rev) == 40
