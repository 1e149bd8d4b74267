"""The Markdown/HTML writeup: its tables and numbers are recomputed from the CSVs."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import plots, report
from harness.cli import main
from harness.plots import Ratio, fmt_number
from harness.records import RunFiles, write_environment

RESULTS = Path(__file__).resolve().parent / "data" / "results"
NANO = RESULTS / "orin_nano"
MNV2_CPU = "infer-mobilenet_v2-cpu-tf-fp32-bs8"
MNV2_GPU = "infer-mobilenet_v2-gpu-tf-fp32-bs8"
INC_CPU = "infer-inception_v3-cpu-tf-fp32-bs8"
INC_TRAIN_CPU = "train-inception_v3-cpu-frozen-tf-fp32-bs8"
MNV2_TRAIN_CPU = "train-mobilenet_v2-cpu-frozen-tf-fp32-bs8"
MNV2_GPU32 = "infer-mobilenet_v2-gpu-tf-fp32-bs32"
NX = RESULTS / "orin_nano_super"
REAL = RESULTS / "real_tiny"


@pytest.fixture(scope="module")
def nano_md(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("nano") / "report.md"
    assert main(["report", str(NANO), "--out", str(out)]) == 0
    return out.read_text(), out


def _measure(run_dir: Path) -> pd.DataFrame:
    steps = pd.read_csv(run_dir / "steps.csv")
    return steps[steps["phase"] == "measure"]


def _row(md: str, cell: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(f"| {cell} |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_environment_section_holds_the_machine_tf_and_jetson_fields(nano_md: tuple[str, Path]
                                                                    ) -> None:
    md, _ = nano_md
    assert md.startswith("# tfbench report: orin-nano (NVIDIA Jetson Orin Nano Developer Kit")
    for row in ("| TensorFlow | 2.16.1+nv24.08 |", "| JetPack | 6.2 |",
                "| power mode (nvpmodel) | 15W |", "| jetson_clocks | running |",
                "| L4T | 36.4.3 |", "| TensorRT | 8.6.2 |"):
        assert row in md


def test_summary_rows_are_computed_from_the_measured_steps(nano_md: tuple[str, Path]) -> None:
    md, _ = nano_md
    steps = _measure(NANO)
    cells = {INC_CPU: "inception_v3 · cpu · infer · tf fp32 · bs8",
             INC_TRAIN_CPU: "inception_v3 · cpu · train frozen · tf fp32 · bs8",
             MNV2_GPU32: "mobilenet_v2 · gpu · infer · tf fp32 · bs32"}
    for config_id, cell in cells.items():
        d = steps[steps["config_id"] == config_id]["duration_s"].to_numpy()
        bs = int(steps[steps["config_id"] == config_id]["batch_size"].iloc[0])
        row = _row(md, cell)
        assert row[1] == "ok"
        assert row[2] == fmt_number(np.median(d) * 1000)
        assert row[3] == fmt_number(np.percentile(d, 90) * 1000)
        assert row[4].startswith(fmt_number(bs / np.median(d)) + " (")
    configs = pd.read_csv(NANO / "configs.csv").set_index("config_id")
    inc = configs.loc[INC_CPU]
    assert _row(md, cells[INC_CPU])[5] == fmt_number(inc["energy_j_per_image"] * 1000)
    assert _row(md, "mobilenet_v2 · gpu · infer · tf fp32 · bs8")[5].endswith("(low confidence)")
    # No psutil sampler on the boards: the timed-phase RSS column is dropped as empty and
    # the lifetime peak stands in its place.
    header = next(line for line in md.splitlines() if line.startswith("| cell |"))
    assert "peak host RSS (MiB)" not in header and "lifetime RSS (MiB)" in header
    assert _row(md, cells[INC_CPU])[6] == f"{inc['host_rss_lifetime_peak_bytes'] / 2**20:,.0f}"
    int8 = _row(md, "mobilenet_v2 · gpu · infer · tftrt int8 · bs8")
    assert int8[-1].startswith("**parity FAIL** (max rel err 0.21")
    assert _row(md, "inception_v3 · gpu · train unfrozen · tf fp32 · bs8")[1:3] == ["oom", "—"]


def test_findings_state_ratios_with_their_ci(nano_md: tuple[str, Path]) -> None:
    md, _ = nano_md
    med = _measure(NANO).groupby("config_id")["duration_s"].median()
    # inception_v3 / mobilenet_v2, cpu, train frozen
    ratio = med[INC_TRAIN_CPU] / med[MNV2_TRAIN_CPU]
    found = re.search(r"inception_v3 training steps take (\d+\.\d\d)× \((\d+\.\d\d)–(\d+\.\d\d)\) "
                      r"as long as mobilenet_v2 on this CPU", md)
    assert found, md
    value, low, high = (float(g) for g in found.groups())
    assert value == pytest.approx(ratio, abs=0.005)
    assert low < value < high
    gpu = med[MNV2_CPU] / med[MNV2_GPU]
    assert f"GPU is {gpu:.2f}× (" in md
    assert "tftrt int8 is" in md and "not a like-for-like speed-up" in md
    assert "3 of 16 cells did not run to the end (1 oom, 1 skipped, 1 failed)" in md


def test_first_call_finding_names_the_longest_first_call(nano_md: tuple[str, Path]) -> None:
    md, _ = nano_md
    configs = pd.read_csv(NANO / "configs.csv")
    ok = configs[configs["status"] == "ok"]
    longest = ok["first_step_s"].max()
    assert f"The first call (tracing, compilation, engine build) took up to {longest:.2f} s (" in md


def test_not_run_cells_are_listed_with_their_reasons(nano_md: tuple[str, Path]) -> None:
    md, _ = nano_md
    section = md.split("## Cells that did not run", 1)[1]
    assert "| mobilenet_v2 · gpu · infer · litert fp32 · bs8 | skipped | engine litert: " \
           "ai-edge-litert is not installed" in section
    assert "| failed | RuntimeError: tf2onnx conversion failed" in section
    assert "| oom | ResourceExhaustedError" in section


def test_charts_are_embedded_by_relative_path(nano_md: tuple[str, Path]) -> None:
    md, out = nano_md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == len(plots.CHART_NAMES)
    for rel in images:
        assert not Path(rel).is_absolute()
        assert (out.parent / rel).is_file()


def test_two_runs_are_compared_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    assert main(["report", str(NANO), str(NX), "--out", str(out)]) == 0
    md = out.read_text()
    assert "|  | orin-nano | orin-nano-super |" in md
    assert "| power mode (nvpmodel) | 15W | MAXN_SUPER |" in md
    assert "| run | cell | status |" in md
    assert re.search(r"Across 13 cells run on both, orin-nano-super is 1\.\d\d× as fast as "
                     r"orin-nano", md)
    assert "| orin-nano-super | mobilenet_v2 · gpu · infer · tf fp32 · bs8 | ok |" in md


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.srcs.append(values.get("src") or "")
        if tag in ("link", "script"):
            self.links.append(tag)


def test_html_is_one_self_contained_page(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(NANO), "--html", "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    page = out.read_text()
    tags = _Tags()
    tags.feed(page)
    assert len(tags.srcs) == len(plots.CHART_NAMES) and not tags.links
    for src in tags.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<td><strong>parity FAIL</strong> (max rel err 0.21" in page
    assert "<th>images/s (95% CI)</th>" in page


def test_a_run_where_every_cell_was_skipped_gets_a_report_saying_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "run"
    root.mkdir()
    files = RunFiles(root)
    write_environment(files.environment, {"run_id": "r1", "host": "ci"})
    files.appender("configs.csv").append([
        {"run_id": "r1", "config_id": "c0", "model": "mobilenet_v2", "weights": "random",
         "input_size": 224, "device": "gpu", "mode": "infer", "base": "", "engine": "tf",
         "precision": "fp32", "batch_size": 8, "data": "synthetic", "status": "skipped",
         "reason": "device gpu: no GPU visible"}])
    assert main(["report", str(root)]) == 0
    md = (root / "report.md").read_text()
    assert "No cell finished with status ok (1 skipped)" in md
    assert "| mobilenet_v2 | skipped | device gpu: no GPU visible |" in md
    assert "no cell finished" in capsys.readouterr().err


def test_missing_environment_fields_are_left_out(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(NANO, run)
    (run / "environment.json").write_text(json.dumps({"schema_version": 1, "run_id": "x"}))
    doc, _, _ = report.build_report(plots.load_runs([run]))
    env_table = next(v for k, v in doc.blocks if k == "table")
    assert [r[0] for r in env_table[1]] == ["run id"]


def test_report_bad_input_exits_2_without_traceback(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a tfbench results directory" in err and "Traceback" not in err
    assert main(["report", str(NANO), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


@pytest.mark.skipif(not REAL.is_dir(), reason="real_tiny results not committed")
def test_report_of_a_real_tiny_run_says_what_was_not_recorded(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    assert main(["report", str(REAL), "--out", str(out)]) == 0
    md = out.read_text()
    assert "| TensorFlow | 2.21.0 |" in md and "| GPUs | none (CUDA build, no GPU visible) |" in md
    assert "Not recorded in these runs: energy per image" in md
    assert "- power: samples.csv has no power_total" in md
    assert "Training with a frozen base is" in md


def test_sampler_problems_are_sentences_not_raw_dicts(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(NANO, run)
    env = json.loads((run / "environment.json").read_text())
    env["sampling"]["problems"] = [{"sampler": "tegrastats",
                                    "message": "stopped at t=12.000 s: tegrastats exited"}]
    (run / "environment.json").write_text(json.dumps(env))
    doc, _, _ = report.build_report(plots.load_runs([run]))
    bullets = [item for kind, v in doc.blocks if kind == "ul" for item in v]
    assert "orin-nano: sampler tegrastats: stopped at t=12.000 s: tegrastats exited" in bullets
    assert not any("{" in b for b in bullets)


def test_a_slower_frozen_base_reads_as_a_sentence() -> None:
    ratio = Ratio("frozen over unfrozen", "frozen", "unfrozen", "tiny_cnn · train · bs8", "",
                  0.5, 0.4, 0.6, "chunk medians", "r/a", "r/b")
    rows = {"r/a": {"device": "cpu", "mode": "train"}}
    assert report.finding_for(ratio, rows, several=False) == (
        "Training with a frozen base takes 2.00× (1.67–2.50) as long per step as full "
        "fine-tuning (unfrozen) (tiny_cnn · train · bs8).")


def _tables(md: str) -> list[list[str]]:
    """The header cells of every Markdown table in ``md``."""
    lines = md.splitlines()
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line, below in itertools.pairwise(lines)
            if line.startswith("|") and below.startswith("|") and set(below) <= set("|-: ")]


def test_no_table_repeats_a_column_header(nano_md: tuple[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "two.md"
    assert main(["report", str(NANO), str(NX), "--out", str(out)]) == 0
    for md in (nano_md[0], out.read_text()):
        tables = _tables(md)
        assert any(h[:2] == ["A over B", "other factors"] for h in tables)  # the speed-ups
        for header in tables:
            assert len(header) == len(set(header)), header
