"""Bad input, table-driven, in-process through `harness.cli.main`: every case exits 2 with
one line ``tfbench: error: ...`` naming the field or file, the value and what is allowed,
no traceback, and writes nothing (no results directory, no report, no charts)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error

from harness.cli import main

DATA = Path(__file__).parent / "data" / "compare"
GOOD = DATA / "base_r1"
OTHER = DATA / "base_r2"


def _profile(tmp: Path, text: str | bytes) -> list[str]:
    path = tmp / "p.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return ["--profile", str(path)]


def _images(tmp: Path, name: str, content: bytes) -> list[str]:
    from images import image_folder

    root = image_folder(tmp / "imgs", 0, ("a",))
    (root / "a" / name).write_bytes(content)
    return ["--data", str(root)]


def _truncated_jpeg(tmp: Path) -> list[str]:
    import numpy as np
    from images import image_folder
    from PIL import Image

    root = image_folder(tmp / "imgs", 0, ("a",))
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "a" / "cut.jpg")
    cut = root / "a" / "cut.jpg"
    cut.write_bytes(cut.read_bytes()[:400])  # header intact, data cut
    return ["--data", str(root)]


def _truncated_png(tmp: Path) -> list[str]:
    from PIL import Image

    root = tmp / "imgs" / "a"
    root.mkdir(parents=True)
    Image.new("RGB", (64, 64), (10, 200, 30)).save(root / "x.png")
    (root / "x.png").write_bytes((root / "x.png").read_bytes()[:60])
    return ["--data", str(tmp / "imgs")]


def _weights_dir(tmp: Path) -> list[str]:
    (tmp / "w").mkdir()
    (tmp / "w" / "notes.txt").write_text("no model here")
    return ["--weights", str(tmp / "w")]


def _old_run(tmp: Path) -> list[str]:
    run = tmp / "old"
    shutil.copytree(GOOD, run)
    return ["--resume", str(run)]


S = Callable[[Path], list[str]]
RUN_CASES: list[tuple[str, S, tuple[str, ...]]] = [
    ("profile-table-str", lambda t: _profile(t, 'profile = "x"\n[matrix]\nmodels=["tiny_cnn"]'),
     ("profile: 'x' is not valid", "a [profile] table")),
    ("matrix-int", lambda t: _profile(t, "matrix = 5"), ("matrix: 5 is not valid",)),
    ("settings-list", lambda t: _profile(t, 'settings = [1, 2]\n[matrix]\nmodels=["tiny_cnn"]'),
     ("settings: [1, 2] is not valid", "a [settings] table")),
    ("engine-options-int", lambda t: _profile(t, 'engine_options = 3\n[matrix]\nmodels=["x"]'),
     ("engine_options: 3 is not valid",)),
    ("engine-options-tf-int",
     lambda t: _profile(t, '[matrix]\nmodels=["tiny_cnn"]\n[engine_options]\ntf = 5'),
     ("engine_options.tf: 5 is not valid",)),
    ("non-utf8", lambda t: _profile(t, b'[matrix]\nmodels = ["tiny\xff\xfe"]\n'),
     ("is not UTF-8 text", "a UTF-8 TOML file")),
    ("samplers-string",
     lambda t: _profile(t, '[matrix]\nmodels=["tiny_cnn"]\n[settings]\nsamplers = "psutil"'),
     ("settings.samplers: 'psutil' is not valid", "a list of names")),
    ("models-string", lambda t: _profile(t, '[matrix]\nmodels = "tiny_cnn"'),
     ("matrix.models: 'tiny_cnn' is not valid", "a non-empty list")),
    ("batch-sizes-strings", lambda t: _profile(t, '[matrix]\nmodels=["tiny_cnn"]\n'
                                                  'batch_sizes = ["8"]'),
     ("matrix.batch_sizes: '8' is not valid", "integers > 0")),
    ("models-int", lambda t: _profile(t, "[matrix]\nmodels = [1]"),
     ("matrix.models: 1 is not valid", "strings")),
    ("profile-name-int", lambda t: _profile(t, '[profile]\nname = 5\n[matrix]\nmodels=["x"]'),
     ("profile.name: 5 is not valid", "a string")),
    ("plots-string",
     lambda t: _profile(t, '[matrix]\nmodels=["tiny_cnn"]\n[settings]\nplots = "yes"'),
     ("plots: 'yes' is not valid", "true, false")),
    ("toml-timeout-nan",
     lambda t: _profile(t, '[matrix]\nmodels=["tiny_cnn"]\n[settings]\ntimeout_s = nan'),
     ("timeout_s: nan is not valid", "finite numbers >= 0")),
    ("toml-min-duration-inf",
     lambda t: _profile(t, '[matrix]\nmodels=["tiny_cnn"]\n[settings]\nmin_duration_s = inf'),
     ("min_duration_s: inf is not valid", "finite")),
    ("settings-unknown-key",
     lambda t: _profile(t, '[matrix]\nmodels=["tiny_cnn"]\n[settings]\nspeed = 1'),
     ("settings key: 'speed' is not valid",)),
    ("unknown-table", lambda t: _profile(t, '[matrx]\nmodels=["tiny_cnn"]'),
     ("table: 'matrx' is not valid",)),
    ("profile-missing-toml", lambda t: ["--profile", str(t / "nope.toml")],
     ("is not a file",)),
    ("timeout-nan", lambda t: ["--timeout", "nan"], ("timeout_s: nan is not valid", "finite")),
    ("timeout-inf", lambda t: ["--timeout", "inf"], ("timeout_s: inf is not valid", "finite")),
    ("timeout-negative", lambda t: ["--timeout", "-1"], ("timeout_s: -1.0 is not valid",)),
    ("min-duration-nan", lambda t: ["--min-duration", "nan"],
     ("min_duration_s: nan is not valid",)),
    ("sample-interval-inf", lambda t: ["--sample-interval", "inf"],
     ("sample_interval_s: inf is not valid",)),
    ("sample-interval-nan", lambda t: ["--sample-interval", "nan"],
     ("sample_interval_s: nan is not valid",)),
    ("infer-with-bases", lambda t: ["--modes", "infer", "--bases", "frozen"],
     ("bases: --bases frozen makes no sense with modes infer", "modes train, fit")),
    ("litert-train", lambda t: ["--engines", "litert", "--modes", "train"],
     ("engine: 'litert' cannot run mode train", "it runs modes infer")),
    ("onnxruntime-train", lambda t: ["--engines", "onnxruntime", "--modes", "train"],
     ("engine: 'onnxruntime' cannot run mode train",)),
    ("samplers-none-psutil", lambda t: ["--samplers", "none,psutil"],
     ("samplers: 'none,psutil' makes no sense", "'none' cannot be combined")),
    ("samplers-all-psutil", lambda t: ["--samplers", "psutil,all"],
     ("'all' cannot be combined",)),
    ("data-text-as-jpg", lambda t: _images(t, "notes.jpg", b"hello, not an image"),
     ("notes.jpg' is not a readable JPEG or PNG image",)),
    ("data-truncated-jpeg", _truncated_jpeg, ("is not a readable JPEG or PNG image",
                                              "decoding failed")),
    ("data-truncated-png", _truncated_png, ("x.png' is not a readable JPEG or PNG image",)),
    ("data-empty-png", lambda t: _images(t, "empty.png", b""),
     ("empty.png' is not a readable JPEG or PNG image",)),
    ("weights-dir-without-model", _weights_dir,
     ("weights:", "is a directory; allowed: random, imagenet")),
    ("learning-rate-nan", lambda t: ["--modes", "train", "--learning-rates", "nan"],
     ("learning_rate: nan is not valid", "numbers > 0")),
    ("learning-rates-strings", lambda t: _profile(t, '[matrix]\nmodels=["tiny_cnn"]\n'
                                                     'modes=["train"]\nlearning_rates=["x"]'),
     ("matrix.learning_rates: 'x' is not valid", "numbers > 0")),
    ("seed-negative", lambda t: ["--seed", "-1"], ("seed: -1 is not valid",)),
    ("repeat-zero", lambda t: ["--repeat", "0"], ("repeat: 0 is not valid",)),
    ("warmup-negative", lambda t: ["--warmup-steps", "-1"], ("warmup_steps: -1 is not valid",)),
    ("interleave-float", lambda t: ["--interleave", "1.5"], ("--interleave", "1.5")),
    ("resume-missing", lambda t: ["--resume", str(t / "nope")], ("does not exist",)),
    ("resume-older-run", _old_run, ("does not record the profile and settings",)),
]


@pytest.mark.parametrize(("args", "fragments"), [c[1:] for c in RUN_CASES],
                         ids=[c[0] for c in RUN_CASES])
def test_bad_run_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: S,
                       fragments: tuple[str, ...]) -> None:
    argv = args(tmp_path)
    out = tmp_path / "results"
    if "--models" not in argv and "--profile" not in argv and "--resume" not in argv:
        argv = ["--models", "tiny_cnn", *argv]
    if "--resume" not in argv:
        argv = [*argv, "--out", str(out)]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    _assert_user_error(capsys, ["run", *argv], fragments)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_an_unknown_fault_value_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TFBENCH_FAULT", "nope")
    _assert_user_error(capsys, ["run", "--models", "tiny_cnn", "--out", str(tmp_path / "r")],
                       ("TFBENCH_FAULT: 'nope' is not valid",))


def _assert_user_error(capsys: pytest.CaptureFixture[str], argv: list[str],
                       fragments: tuple[str, ...]) -> None:
    code = main(argv)
    assert_one_line_error(code, capsys.readouterr().err, *fragments)


# -- analysis on broken results ------------------------------------------------------------


def _edit(name: str, change: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / name).write_text(change((run / name).read_text()))
    return apply


def _env(value: object) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / "environment.json").write_text(json.dumps(value))
    return apply


def _schema(version: object) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        env = json.loads((run / "environment.json").read_text())
        env["schema_version"] = version
        (run / "environment.json").write_text(json.dumps(env))
    return apply


def _cut_row(text: str) -> str:
    return text[: text.rstrip("\n").rfind(",") - 3]  # inside the last row, mid-number


def _field(text: str, column: str, value: str, line: int = 1) -> str:
    rows = text.splitlines()
    header = rows[0].split(",")
    cells = rows[line].split(",")
    cells[header.index(column)] = value
    rows[line] = ",".join(cells)
    return "\n".join(rows) + "\n"


def _non_utf8(run: Path) -> None:
    path = run / "configs.csv"
    path.write_bytes(path.read_bytes().replace(b"tiny_cnn", b"tiny_\xff", 1))


BROKEN: list[tuple[str, Callable[[Path], None], tuple[str, ...]]] = [
    ("env-list", _env([1, 2]), ("environment.json: holds a JSON list, not an object",)),
    ("env-string", _env("x"), ("environment.json: holds a JSON str, not an object",)),
    ("configs-header-only", _edit("configs.csv", lambda t: t.splitlines()[0] + "\n"),
     ("configs.csv: line 2: has a header but no rows",)),
    ("configs-cut-in-row", _edit("configs.csv", _cut_row),
     ("configs.csv: line", "the last row is cut short")),
    ("steps-cut-in-row", _edit("steps.csv", _cut_row),
     ("steps.csv: line", "the last row is cut short")),
    ("steps-cut-fields", _edit("steps.csv", lambda t: t + "r,c,tiny_cnn\n"),
     ("steps.csv: line", "has 3 fields, the header has 17")),
    ("steps-non-numeric", _edit("steps.csv", lambda t: _field(t, "duration_s", "fast", 5)),
     ("steps.csv: line 6, column duration_s: 'fast' is not valid; allowed: a finite number",)),
    ("steps-nan", _edit("steps.csv", lambda t: _field(t, "duration_s", "nan", 3)),
     ("steps.csv: line 4, column duration_s: 'nan' is not valid",)),
    ("steps-negative", _edit("steps.csv", lambda t: _field(t, "duration_s", "-0.1", 3)),
     ("column duration_s: '-0.1' is not valid; allowed: numbers >= 0",)),
    ("configs-batch-float", _edit("configs.csv", lambda t: _field(t, "batch_size", "8.5")),
     ("configs.csv: line 2, column batch_size: '8.5' is not valid; allowed: an integer",)),
    ("configs-median-inf", _edit("configs.csv", lambda t: _field(t, "step_s_median", "inf")),
     ("column step_s_median: 'inf' is not valid",)),
    ("configs-bad-phase", _edit("steps.csv", lambda t: _field(t, "phase", "warm", 2)),
     ("steps.csv: line 3, column phase: 'warm' is not valid; allowed:",)),
    ("schema-negative", _schema(-1), ("schema_version -1 is not valid",)),
    ("schema-float", _schema(1.5), ("schema_version 1.5 is not valid",)),
    ("schema-string", _schema("1"), ("schema_version '1' is not valid",)),
    ("duplicate-cell", _edit("configs.csv", lambda t: t + t.splitlines()[1] + "\n"),
     ("configs.csv: line", "column config_id", "is listed twice")),
    ("configs-non-utf8", _non_utf8, ("configs.csv: line 2: is not UTF-8 text",)),
]


def _command(kind: str, run: Path) -> list[str]:
    if kind == "compare":
        return ["compare", str(OTHER), str(run)]
    return [kind, str(run)]


@pytest.mark.parametrize("kind", ["plot", "report", "compare"])
@pytest.mark.parametrize(("breakage", "fragments"), [c[1:] for c in BROKEN],
                         ids=[c[0] for c in BROKEN])
def test_analysis_refuses_broken_results(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         kind: str, breakage: Callable[[Path], None],
                                         fragments: tuple[str, ...]) -> None:
    run = tmp_path / "run"
    shutil.copytree(GOOD, run)
    breakage(run)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    _assert_user_error(capsys, _command(kind, run), fragments)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def _read_only_dir(tmp: Path) -> Path:
    ro = tmp / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a read-only mount needs root (root ignores permission bits)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(ro)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mount not permitted: {done.stderr.strip()}")
    return ro


@pytest.mark.parametrize(("argv", "fragments"), [
    (lambda t: ["plot", str(GOOD), "--out", str(t / "file")], ("--out:", "is a file")),
    (lambda t: ["plot", str(GOOD), "--out", str(t / "file" / "sub")],
     ("--out:", "is a file, so")),
    (lambda t: ["report", str(GOOD), "--out", str(t / "file" / "r.md")], ("--out:", "is a file")),
    (lambda t: ["report", str(GOOD), "--out", str(t)], ("--out:", "is a directory")),
    (lambda t: ["plot", str(GOOD), "--format", "gif", "--out", str(t / "c")], ("--format",)),
], ids=["plot-out-file", "plot-out-under-file", "report-out-under-file", "report-out-dir",
        "plot-format"])
def test_analysis_out_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            argv: Callable[[Path], list[str]], fragments: tuple[str, ...]) -> None:
    (tmp_path / "file").write_text("x")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    args = argv(tmp_path)
    named = (str(tmp_path),) if "--format" not in args else ()  # the path is named
    _assert_user_error(capsys, args, (*fragments, *named))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("kind", ["plot", "report"])
def test_analysis_out_on_a_read_only_mount(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           kind: str) -> None:
    ro = _read_only_dir(tmp_path)
    try:
        target = ro / ("charts" if kind == "plot" else "report.md")
        _assert_user_error(capsys, [kind, str(GOOD), "--out", str(target)],
                           ("--out:", str(ro), "is not writable"))
    finally:
        subprocess.run(["umount", str(ro)], check=False)


# -- classify ------------------------------------------------------------------------------


def _image(tmp: Path) -> str:
    from images import image_folder

    return str(image_folder(tmp / "imgs", 0, ("a",), per_class=1) / "a" / "0.png")


def _labels(tmp: Path, content: bytes) -> Path:
    path = tmp / "labels.txt"
    path.write_bytes(content)
    return path


CLASSIFY: list[tuple[str, Callable[[Path], list[str]], tuple[str, ...]]] = [
    ("model-missing", lambda t: [str(t / "m.keras"), _image(t), "--labels",
                                 str(_labels(t, b"a\n"))], ("MODEL:", "does not exist")),
    ("model-not-keras", lambda t: [str(_labels(t, b"a\n")), _image(t), "--labels",
                                   str(_labels(t, b"a\n"))], ("MODEL:", "a .keras file")),
    ("top-k-zero", lambda t: ["m.keras", "i.jpg", "--top-k", "0"], ("--top-k: 0 is not valid",)),
    ("repeats-zero", lambda t: ["m.keras", "i.jpg", "--repeats", "0"],
     ("--repeats: 0 is not valid",)),
    ("top-k-text", lambda t: ["m.keras", "i.jpg", "--top-k", "three"], ("--top-k",)),
    ("labels-missing", lambda t: [str(t / "m.keras"), "i.jpg"], ("--labels: none given",)),
    ("labels-empty", lambda t: ["m.keras", "i.jpg", "--labels", str(_labels(t, b"\n\n"))],
     ("holds no labels",)),
    ("labels-non-utf8", lambda t: ["m.keras", "i.jpg", "--labels", str(_labels(t, b"\xff\n"))],
     ("--labels:", "cannot be read")),
    ("image-missing", lambda t: [str(t / "m.keras"), str(t / "nope.jpg"), "--labels",
                                 str(_labels(t, b"a\n"))], ("IMAGE:", "does not exist")),
]


@pytest.mark.parametrize(("argv", "fragments"), [c[1:] for c in CLASSIFY],
                         ids=[c[0] for c in CLASSIFY])
def test_bad_classify_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            argv: Callable[[Path], list[str]], fragments: tuple[str, ...]) -> None:
    args = argv(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    _assert_user_error(capsys, ["classify", *args], fragments)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_the_table_has_at_least_60_cases() -> None:
    total = len(RUN_CASES) + 1 + 3 * len(BROKEN) + 5 + 2 + len(CLASSIFY)
    assert total >= 60, total
