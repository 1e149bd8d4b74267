"""Two ``flowers/`` folders in different parents are two cells, end to end.

`config_id` keys steps.csv, samples.csv, attribution and resume; a real run on a tiny
model checks each of them (before, the second folder's cell was silently dropped).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from images import image_folder as flowers

from harness.records import load_results

pytestmark = pytest.mark.slow


def tfbench_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--models", "tiny_cnn", "--modes", "infer",
         "--warmup-steps", "1", "--measured-steps", "20", "--min-duration", "0.4",
         "--samplers", "psutil", "--sample-interval", "0.02", "--no-plots", *args],
        capture_output=True, text=True, timeout=600, check=False, cwd=cwd,
    )


def test_two_flowers_folders_run_record_attribute_and_resume_apart(tmp_path: Path) -> None:
    flowers(tmp_path / "a" / "flowers", 1)
    flowers(tmp_path / "b" / "flowers", 2)
    first = tfbench_run(tmp_path, "--data", "a/flowers,b/flowers", "--out", "results")
    assert first.returncode == 0, first.stderr
    run = Path(first.stdout.strip())
    if not run.is_absolute():
        run = tmp_path / run
    a_id = str(load_results(run).configs["config_id"].iloc[0])
    # cut the run after a's cell (what an interrupted run leaves: whole rows)
    for name in ("configs.csv", "steps.csv", "samples.csv"):
        lines = (run / name).read_text().splitlines(keepends=True)
        keep = [ln for ln in lines[1:] if f",{a_id}," in ln]
        (run / name).write_text(lines[0] + "".join(keep))
    resumed = tfbench_run(tmp_path, "--data", "a/flowers,b/flowers", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    results = load_results(run)
    configs = results.configs.set_index("config_id")
    # resume recognised a's cell as done and ran b's: two rows, a's first and unchanged
    assert len(configs) == 2 and configs.index[0] == a_id
    (b_id,) = [i for i in configs.index if i != a_id]
    assert configs.loc[b_id, "data"] == "b/flowers"
    assert set(configs["status"]) == {"ok"}
    assert resumed.stderr.count(": ok") == 1 and f"{b_id}: ok" in resumed.stderr
    for config_id in (a_id, b_id):
        row = configs.loc[config_id]
        steps = results.steps[(results.steps["config_id"] == config_id)
                              & (results.steps["phase"] == "measure")]
        assert len(steps) == row["measured_steps"] >= 20
        rss = results.samples[(results.samples["config_id"] == config_id)
                              & (results.samples["metric"] == "rss")]
        assert len(rss) > 0
        # attribution: the timed phase's peak from this cell's own samples in its window
        inside = rss[rss["t_s"].between(row["measure_start_s"], row["measure_end_s"])]
        assert row["host_rss_peak_bytes"] == inside["value"].max()
        # the lifetime peak covers the model build before the window too
        assert row["host_rss_lifetime_peak_bytes"] >= rss["value"].max()
        assert row["host_rss_lifetime_peak_bytes"] >= row["host_rss_peak_bytes"]
