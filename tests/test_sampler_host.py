"""The sampler process: start, cell attribution, flush, stop, and a death mid-run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from processes import holder, release, wait_until

from harness.attribution import attribute
from harness.errors import UserError
from harness.records import SAMPLES_COLUMNS, SAMPLES_FILE, read_table
from harness.samplers import available_samplers, parse_sampler_names
from harness.samplers.host import SamplerHost, _Timeline


def rss_rows(run_dir: Path, config_id: str) -> int:
    path = run_dir / SAMPLES_FILE
    if not path.exists():
        return 0
    s = pd.read_csv(path, dtype={"config_id": str})
    return int(((s["metric"] == "rss") & (s["config_id"] == config_id)).sum())


def test_cells_are_attributed_and_flush_writes_everything(tmp_path: Path) -> None:
    t0 = time.perf_counter_ns()
    host = SamplerHost(tmp_path, "run-1", t0, ["psutil"], 0.02)
    assert host.start() == {"psutil": "active"}
    assert host.alive
    peaks = {}
    for cell, size in (("cell-a", 150 * 1024 * 1024), ("cell-b", 20 * 1024 * 1024)):
        worker = holder(size)
        host.set_active(cell, worker.pid)

        def seen(cell: str = cell) -> bool:
            host.flush()
            return rss_rows(tmp_path, cell) >= 3

        assert wait_until(seen, 30)
        release(worker)
        host.set_active("", None)
        host.flush()
        peaks[cell] = size
    summary = host.stop()
    end_s = (time.perf_counter_ns() - t0) / 1e9
    assert not host.alive
    assert summary["active"] == ["psutil"]
    assert summary["died_at_s"] is None
    assert summary["samples"]["psutil"] == summary["rows"] > 0

    samples = read_table(tmp_path, SAMPLES_FILE)
    assert tuple(samples.columns[: len(SAMPLES_COLUMNS)]) == SAMPLES_COLUMNS
    assert set(samples["run_id"]) == {"run-1"}
    assert samples["t_s"].between(0, end_s).all()
    assert samples["t_s"].is_monotonic_increasing
    ids = samples["config_id"].fillna("")
    # rss is only sampled while a worker is active; system memory always.
    assert set(ids[samples["metric"] == "rss"]) == {"cell-a", "cell-b"}
    assert "" in set(ids[samples["metric"] == "ram_used"])
    assert set(samples.loc[samples["metric"] == "rss", "unit"]) == {"B"}
    for cell, size in peaks.items():
        got = attribute(samples, cell, 0.0, end_s, 1, 0.02)
        assert got["host_rss_peak_bytes"] >= size
        assert got["host_rss_peak_bytes"] < size + 200 * 1024 * 1024
        assert got["energy_j_per_image"] is None  # no power sampler here: None, not 0


def test_killed_sampler_process_does_not_stop_the_run(tmp_path: Path) -> None:
    t0 = time.perf_counter_ns()
    host = SamplerHost(tmp_path, "run-2", t0, ["psutil"], 0.02)
    host.start()
    worker = holder(1024 * 1024)
    try:
        host.set_active("cell-a", worker.pid)
        assert wait_until(lambda: (host.flush(), rss_rows(tmp_path, "cell-a") >= 2)[1], 30)
        pid = host.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not host.alive, 10)
        # The orchestrator keeps calling the handle; nothing raises, nothing blocks for long.
        host.set_active("cell-b", worker.pid)
        host.flush()
        summary = host.stop()
    finally:
        release(worker)
    assert summary["died_at_s"] is not None
    assert summary["last_sample_s"] is not None
    assert summary["last_sample_s"] <= summary["died_at_s"]
    samples = read_table(tmp_path, SAMPLES_FILE)
    assert samples["t_s"].max() <= summary["died_at_s"]
    assert "cell-b" not in set(samples["config_id"].fillna(""))


def test_unavailable_samplers_are_skipped_with_reasons(tmp_path: Path) -> None:
    names = ["psutil", "jtop", "tegrastats", "nvml"]
    host = SamplerHost(tmp_path, "run-3", time.perf_counter_ns(), names)
    status = host.start()
    summary = host.stop()
    expected = available_samplers()
    for name in names:
        if expected[name].ok:
            continue
        assert status[name] != "active" and status[name], name
    assert status["psutil"] == "active"
    assert set(summary["status"]) == set(names)
    if not os.path.exists("/run/jtop.sock"):
        assert "/run/jtop.sock" in status["jtop"]


def test_bad_names_and_intervals_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="samplers: 'powermeter'"):
        SamplerHost(tmp_path, "r", 0, ["psutil", "powermeter"])
    with pytest.raises(UserError, match="sample_interval_s"):
        SamplerHost(tmp_path, "r", 0, ["psutil"], -1.0)
    # 0 no longer stands for "each sampler's default": None does
    with pytest.raises(UserError, match=r"sample_interval_s: 0.0 is not valid; allowed: numbers"):
        SamplerHost(tmp_path, "r", 0, ["psutil"], 0.0)
    assert SamplerHost(tmp_path, "r", 0, ["psutil"]).interval_s is None
    with pytest.raises(UserError, match="allowed: psutil, jtop, tegrastats, nvml, all, none"):
        parse_sampler_names("psutil,bogus")
    assert parse_sampler_names("all") == ("psutil", "jtop", "tegrastats", "nvml")
    assert parse_sampler_names("none") == ()
    assert parse_sampler_names(" psutil , nvml,psutil") == ("psutil", "nvml")


def test_timeline_gives_the_cell_active_at_each_instant() -> None:
    tl = _Timeline()
    assert tl.at(5) == ""
    tl.set(10, "a")
    tl.set(30, "")
    tl.set(20, "b")  # commands may be stamped out of arrival order
    assert [tl.at(t) for t in (9, 10, 19, 20, 29, 30, 99)] == ["", "a", "a", "b", "b", "", ""]
