"""Engine options are static data on each engine's spec and are checked by
``RunSettings`` (preflight), before a worker or a results directory exists.
No framework is imported here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.config import RunSettings
from harness.engine_table import COMMON_OPTIONS, ENGINES, engine_options_problem
from harness.errors import UserError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("engine", "options", "message"), [
    ("litert", {"num_thread": 4},
     "engine_options.litert key: 'num_thread' is not valid; allowed: num_threads, xnnpack, "
     "parity_max_rel_err, parity_min_cosine, calibration_samples"),
    ("tf", {"threads": 2}, "engine_options.tf key: 'threads' is not valid; allowed: "
                           "parity_max_rel_err, parity_min_cosine, calibration_samples"),
    ("xla", {"jit": True}, "engine_options.xla key: 'jit' is not valid"),
    ("litert", {"num_threads": -1},
     "engine_options.litert.num_threads: -1 is not valid; allowed: integers >= 0 (0: all cores)"),
    ("litert", {"num_threads": True}, "engine_options.litert.num_threads: True is not valid"),
    ("litert", {"xnnpack": "yes"}, "engine_options.litert.xnnpack: 'yes' is not valid; "
                                   "allowed: true, false"),
    ("onnxruntime", {"opset": "17"}, "engine_options.onnxruntime.opset: '17' is not valid"),
    ("onnxruntime", {"providers": "CPUExecutionProvider"},
     "engine_options.onnxruntime.providers: 'CPUExecutionProvider' is not valid"),
    ("tftrt", {"minimum_segment_size": 0}, "engine_options.tftrt.minimum_segment_size: 0"),
    ("keras-torch", {"compile": "inductor"},
     "engine_options.keras-torch.compile: 'inductor' is not valid; allowed: eager, "
     "torch.compile"),
    ("tf", {"calibration_samples": 0}, "engine_options.tf.calibration_samples: 0 is not valid"),
    ("tf", {"parity_min_cosine": 2}, "engine_options.tf.parity_min_cosine: 2 is not valid"),
    ("keras-mlx", {}, "engine_options: 'keras-mlx' is not valid; allowed: tf, xla, tftrt, "
                      "litert, onnxruntime, keras-jax, keras-torch"),
    ("tf", 4, "engine_options.tf: 4 is not valid; allowed: a table of options"),
])
def test_bad_engine_options_are_refused_by_run_settings(engine: str, options: Any,
                                                         message: str) -> None:
    with pytest.raises(UserError) as info:
        RunSettings(engine_options={engine: options})
    assert info.value.message.startswith(message)


def test_an_option_of_another_engine_names_its_owner() -> None:
    with pytest.raises(UserError) as info:
        RunSettings(engine_options={"keras-jax": {"compile": "torch.compile"}})
    assert info.value.message.endswith("('compile' is an option of keras-torch)")
    with pytest.raises(UserError, match=r"'xnnpack' is an option of litert\)"):
        RunSettings(engine_options={"onnxruntime": {"xnnpack": False}})


def test_valid_options_pass() -> None:
    settings = RunSettings(engine_options={
        "litert": {"num_threads": 2, "xnnpack": False, "calibration_samples": 8},
        "onnxruntime": {"providers": ["CPUExecutionProvider"], "opset": 17},
        "keras-torch": {"compile": "torch.compile"},
        "tf": {"parity_max_rel_err": 1e-4, "parity_min_cosine": 0.99},
        "keras-jax": {},
    })
    assert settings.engine_options["litert"]["num_threads"] == 2
    assert engine_options_problem("tftrt", {"max_workspace_size_bytes": 1 << 20}) is None


def test_every_engine_declares_typed_options() -> None:
    kinds = {"int", "float", "bool", "str", "str_list"}
    for spec in ENGINES.values():
        names = [o.name for o in spec.options]
        assert len(set(names)) == len(names)
        assert not set(names) & {o.name for o in COMMON_OPTIONS}
        for opt in (*spec.options, *COMMON_OPTIONS):
            assert opt.kind in kinds and opt.allowed
            assert opt.kind != "str" or opt.choices


def test_engine_table_imports_nothing_from_harness() -> None:
    tree = ast.parse((REPO / "harness" / "engine_table.py").read_text())
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert modules and not [m for m in modules if m.startswith("harness")]
    code = ("import sys; import harness.config; from harness.engines import ENGINES, EngineSpec;"
            "import harness.engine_table as t; assert ENGINES is t.ENGINES;"
            "assert 'harness.engines.base' not in sys.modules, 'config pulled in engines.base';"
            "assert 'tensorflow' not in sys.modules and 'jax' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_profile_with_an_unknown_engine_option_exits_2_before_writing(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('[matrix]\nmodels = ["tiny_cnn"]\nengines = ["litert"]\n'
                       '[engine_options.litert]\nnum_thread = 4\n')
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--profile", str(profile),
                           "--out", str(out)], capture_output=True, text=True, timeout=120,
                          check=False, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "tfbench: error: engine_options.litert key: 'num_thread' is not valid; allowed: "
        "num_threads, xnnpack, parity_max_rel_err, parity_min_cosine, calibration_samples")
    assert not out.exists()


def test_unknown_backend_engine_is_a_user_error(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--models", "tiny_cnn",
                           "--engines", "keras-mlx", "--out", str(out)], capture_output=True,
                          text=True, timeout=120, check=False, cwd=REPO)
    assert proc.returncode == 2
    assert "engines: 'keras-mlx' is not valid; allowed: tf, xla, tftrt, litert, onnxruntime, " \
           "keras-jax, keras-torch" in proc.stderr
    assert not out.exists()
