"""The jtop sampler against the REAL jtop service (jetson-stats) on an emulated Orin-Nano tree.

jetson-stats reads ``/fake_sys/...`` instead of ``/sys/...`` when ``JTOP_TESTING``
is set, so its real service runs here on a tree this test builds: six CPUs, a
devfreq iGPU, EMC and an INA3221 with ``VDD_IN``, ``VDD_CPU_GPU_CV`` and
``VDD_SOC`` in the JetPack 5/6 hwmon layout. Everything happens in a private
mount namespace (``unshare --mount``): ``/run`` (for ``/run/jtop.sock``),
``/fake_sys`` and, where the host has none, ``/sys/devices/virtual/dmi/id`` are
tmpfs mounts that vanish with the namespace. This file is also the script run
inside it (``python tests/test_jtop_service.py SCENARIO OUT``): it starts the
service, scripts a power trace by rewriting the fake ``curr1_input`` (5 W, then
10 W), runs `SamplerHost` with the jtop sampler, and reproduces the failure
modes for real (no service, a stale socket, a version-mismatched service, a
user outside the ``jtop`` group). The pytest side checks what was recorded.
Needs root (CI runs as root); skipped with the reason otherwise.
"""

from __future__ import annotations

import grp
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FAKE = Path("/fake_sys")
DMI = Path("/sys/devices/virtual/dmi/id")
VOLT_MV = 5000
RAILS = (("VDD_IN", 1000), ("VDD_CPU_GPU_CV", 200), ("VDD_SOC", 300))  # mA at 5 V
PHASE_S = 3.0
INTERVAL_S = 0.2
CELL = "cell-5w-then-10w"


# --------------------------------------------------------------------------------------
# Inside the namespace: the emulated board and the scenario.
# --------------------------------------------------------------------------------------

def _write(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def build_tree(root: Path = FAKE, cpus: int = 6) -> Path:
    """An Orin-Nano-like sysfs tree for JTOP_TESTING; returns the INA3221 hwmon folder."""
    per_cpu = "".join(f"cpu{i} 100 0 50 9000 10 0 1 0 0 0\n" for i in range(cpus))
    _write(root / "stat", "cpu  600 0 300 54000 60 0 6 0 0 0\n" + per_cpu
           + "intr 0\nctxt 0\nbtime 0\nprocesses 1\nprocs_running 1\nprocs_blocked 0")
    for i in range(cpus):
        freq = root / f"devices/system/cpu/cpu{i}/cpufreq"
        for name, value in (("scaling_governor", "schedutil"), ("scaling_min_freq", 115200),
                            ("scaling_max_freq", 1510400), ("scaling_cur_freq", 729600),
                            ("cpuinfo_min_freq", 115200), ("cpuinfo_max_freq", 1510400),
                            ("cpuinfo_cur_freq", 729600)):
            _write(freq / name, value)
    gpu = root / "devices/platform/17000000.gpu/devfreq/17000000.gpu"
    _write(gpu / "device/of_node/name", "ga10b")
    for name, value in (("cur_freq", 306000000), ("max_freq", 624750000),
                        ("min_freq", 306000000), ("governor", "nvhost_podgov")):
        _write(gpu / name, value)
    for name, value in (("railgate_enable", 0), ("tpc_pg_mask", 0), ("enable_3d_scaling", 1),
                        ("load", 250)):  # load is in tenths of a percent: 25 %
        _write(gpu / "device" / name, value)
    (root / "class/devfreq").mkdir(parents=True, exist_ok=True)
    (root / "class/devfreq/17000000.gpu").symlink_to(gpu)
    emc = root / "kernel/debug/bpmp/debug/clk/emc"
    for name, value in (("rate", 2133000000), ("max_rate", 3199000000),
                        ("min_rate", 204000000), ("mrq_rate_locked", 3199000000)):
        _write(emc / name, value)
    _write(root / "kernel/actmon_avg_activity/mc_all", 0)
    ina = root / "bus/i2c/devices/1-0040"
    _write(ina / "name", "ina3221")
    hwmon = ina / "hwmon/hwmon3"
    for n, (label, ma) in enumerate(RAILS, start=1):
        _write(hwmon / f"in{n}_label", label)
        _write(hwmon / f"in{n}_input", VOLT_MV)
        _write(hwmon / f"curr{n}_input", ma)
        _write(hwmon / f"curr{n}_max", 32760)
        _write(hwmon / f"curr{n}_crit", 32760)
    return hwmon


def _mount_tmpfs(target: Path) -> None:
    # -n: no utab entry under the host's /run/mount.
    subprocess.run(["mount", "-n", "-t", "tmpfs", "tfbench-test", str(target)], check=True)


def _set_total_watts(hwmon: Path, watts: float) -> None:
    """Rewrite VDD_IN's current so that the service reads `watts` at 5 V."""
    tmp = hwmon / "curr1_input.tmp"
    tmp.write_text(f"{int(watts * 1000 / VOLT_MV * 1000)}\n")
    tmp.replace(hwmon / "curr1_input")


def _as_nobody_availability() -> dict[str, Any]:
    """What a user outside the 'jtop' group gets: a forked child drops to nobody and asks both
    the cheap availability check and the real jtop client (permission denied on the socket)."""
    from harness.samplers import SamplerUnavailable
    from harness.samplers.jtop import JtopSampler

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest or the scenario
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            avail = JtopSampler().availability()
            try:
                JtopSampler().open(INTERVAL_S)
                opened = "opened"
            except SamplerUnavailable as exc:
                opened = str(exc)
            os.write(write_fd, json.dumps({"ok": avail.ok, "reason": avail.reason,
                                           "open": opened}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        return {"skipped": f"the unprivileged child failed (wait status {status})"}
    result: dict[str, Any] = json.loads(data)
    return result


def _mismatched_service(version: str, workdir: Path) -> subprocess.Popen[str]:
    """A real jtop service from a copy of jetson-stats that calls itself `version`."""
    spec = importlib.util.find_spec("jtop")
    assert spec is not None and spec.origin is not None
    copy = workdir / "jtop"
    shutil.copytree(Path(spec.origin).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "__init__.py"
    text = init.read_text()
    start = text.index("__version__ = ")
    end = text.index("\n", start)
    init.write_text(text[:start] + f'__version__ = "{version}"' + text[end:])
    code = ("import sys\nfrom jtop.service import JtopServer\ns = JtopServer()\ns.start()\n"
            "print('ready', flush=True)\nsys.stdin.read()\ns.close()\n")
    env = {**os.environ, "PYTHONPATH": str(workdir), "JTOP_TESTING": "true"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=str(workdir))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def scenario(out: Path) -> dict[str, Any]:
    """Everything that needs the namespace; returns what the tests check."""
    from harness.samplers.host import SamplerHost
    from harness.samplers.jtop import JTOP_SOCKET, JtopSampler, board_info

    _mount_tmpfs(Path("/run"))
    _mount_tmpfs(FAKE)
    if not DMI.is_dir():  # jetson-stats reads the board name from DMI on x86
        _mount_tmpfs(Path("/sys/devices/virtual"))
        _write(DMI / "product_name", "tfbench emulated Orin Nano")
    hwmon = build_tree()
    result: dict[str, Any] = {}

    # 1. No service at all.
    result["no_service"] = JtopSampler().availability().reason
    host = SamplerHost(out / "no-service", "r0", time.perf_counter_ns(), ["jtop", "psutil"])
    result["no_service_host"] = host.start()
    host.stop()
    result["no_service_board_info"] = board_info()

    # 2. A stale socket: the file is there, nobody listens.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(JTOP_SOCKET)
    stale.close()
    result["stale_socket"] = JtopSampler().availability().reason
    os.unlink(JTOP_SOCKET)

    # 3. A real service of another major.minor version.
    os.environ["JTOP_TESTING"] = "true"
    (out / "old-jtop").mkdir()
    old = _mismatched_service("6.0.0", out / "old-jtop")
    try:
        host = SamplerHost(out / "mismatch", "r1", time.perf_counter_ns(), ["jtop"])
        result["mismatch_host"] = host.start()
        host.stop()
    finally:
        _stop(old)
    if os.path.exists(JTOP_SOCKET):
        os.unlink(JTOP_SOCKET)

    # 4. The real service of this jetson-stats, and the scripted trace.
    from jtop import jtop
    from jtop.service import JtopServer

    server = JtopServer()
    server.start()
    try:
        result["nobody"] = _as_nobody_availability()
        bin_dir = out / "bin"  # a tegrastats on PATH must give way to the answering service
        bin_dir.mkdir()
        (bin_dir / "tegrastats").write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / "tegrastats").chmod(0o755)
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        t0 = time.perf_counter_ns()
        run_dir = out / "run"
        host = SamplerHost(run_dir, "r2", t0, ["jtop", "tegrastats", "psutil"], INTERVAL_S)
        _set_total_watts(hwmon, 5.0)
        result["status"] = host.start()
        # Real time has to pass for a real power trace: 5 W for PHASE_S, then 10 W.
        time.sleep(0.6)
        start = time.perf_counter_ns()
        host.set_active(CELL, None)
        time.sleep(PHASE_S)
        switch = time.perf_counter_ns()
        _set_total_watts(hwmon, 10.0)
        time.sleep(PHASE_S)
        end = time.perf_counter_ns()
        host.set_active("", None)
        time.sleep(0.6)
        host.flush()
        result["summary"] = host.stop()
        result["run_dir"] = str(run_dir)
        result["window"] = [(t - t0) / 1e9 for t in (start, switch, end)]
        result["board_info"] = board_info()
    finally:
        server.close()

    # 5. A fresh service whose interval another client (1 s) set first: the sampler says so
    #    and records each service tick once, not the repeats jtop calls back with.
    server = JtopServer()
    server.start()
    other = jtop(interval=1.0)
    try:
        other.start()
        host = SamplerHost(out / "slow", "r3", time.perf_counter_ns(), ["jtop"], INTERVAL_S)
        result["slow_status"] = host.start()
        time.sleep(3.3)
        result["slow_summary"] = host.stop()
        result["slow_run_dir"] = str(out / "slow")
    finally:
        other.close()
        server.close()
    return result


# --------------------------------------------------------------------------------------
# The pytest side.
# --------------------------------------------------------------------------------------

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("needs root: builds /fake_sys, mounts tmpfs and runs the jtop service")
    if importlib.util.find_spec("jtop") is None:
        pytest.skip("jetson-stats is not installed (pip install -e '.[dev]')")
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount (util-linux) for a private mount namespace")
    out = tmp_path_factory.mktemp("jtop")
    made_group = False
    try:
        grp.getgrnam("jtop")
    except KeyError:
        subprocess.run(["groupadd", "--system", "jtop"], check=True)
        made_group = True
    made_fake = not FAKE.exists()
    if made_fake:
        FAKE.mkdir()  # the mount point; the tree itself lives in a namespaced tmpfs
    try:
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", sys.executable, __file__,
             "scenario", str(out)],
            capture_output=True, text=True, timeout=120, check=False,
            cwd=str(Path(__file__).resolve().parents[1]),
        )
        if proc.returncode != 0:
            if "unshare failed" in proc.stderr or "Operation not permitted" in proc.stderr:
                pytest.skip(f"cannot make a private mount namespace here: {proc.stderr[-300:]}")
            pytest.fail(f"scenario failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        yield json.loads((out / "result.json").read_text())
    finally:
        if made_fake:
            FAKE.rmdir()
        if made_group:
            subprocess.run(["groupdel", "jtop"], check=False)


# The jtop data shapes, without the service (these run as any user).

# Real Orin Nano (JetPack 6.2) jetson.power, from ../shared/notes/telemetry.md.
ORIN_NANO_POWER = {
    "rail": {"VDD_CPU_GPU_CV": {"volt": 4928, "curr": 216, "warn": 32760, "crit": 32760,
                                "power": 1064, "online": True, "avg": 806},
             "VDD_SOC": {"volt": 4936, "curr": 312, "warn": 32760, "crit": 32760,
                         "power": 1540, "online": True, "avg": 1524}},
    "tot": {"volt": 4936, "curr": 1040, "warn": 5232, "crit": 5232, "power": 5133,
            "online": True, "avg": 4800, "name": "VDD_IN"},
}


def test_dict_power_api_uses_instantaneous_power_not_avg() -> None:
    from harness.samplers.jtop import readings_from_power

    got = {m: v for m, _, v in readings_from_power(ORIN_NANO_POWER)}
    assert got == pytest.approx({"power_total": 5.133, "power_rail:VDD_CPU_GPU_CV": 1.064,
                                 "power_rail:VDD_SOC": 1.540})


def test_tuple_power_api_of_jetson_stats_4_1_and_older() -> None:
    from harness.samplers.jtop import readings_from_power

    # jetson.power == (total, rails), rails named without the VDD_ prefix, 'cur'/'avg' in mW.
    old = ({"cur": 4067, "avg": 4100},
           {"CPU GPU CV": {"cur": 738, "avg": 700}, "SOC": {"cur": 1353, "avg": 1350}})
    got = {m: (u, v) for m, u, v in readings_from_power(old)}
    assert got == {"power_total": ("W", pytest.approx(4.067)),
                   "power_rail:CPU GPU CV": ("W", pytest.approx(0.738)),
                   "power_rail:SOC": ("W", pytest.approx(1.353))}


def test_memory_gpu_and_temperature_shapes() -> None:
    from harness.samplers.jtop import (
        readings_from_gpu,
        readings_from_memory,
        readings_from_temperature,
    )

    memory = {"RAM": {"tot": 7800000, "used": 3000000, "shared": 250000},
              "SWAP": {"tot": 3900000, "used": 1000},
              "EMC": {"cur": 2133000, "max": 3199000, "min": 204000, "val": 43, "online": True}}
    got = {m: (u, v) for m, u, v in readings_from_memory(memory)}
    assert got == {"ram_used": ("B", 3000000 * 1024), "gpu_shared_mem": ("B", 250000 * 1024),
                   "swap_used": ("B", 1000 * 1024), "emc_load": ("%", 43.0),
                   "emc_freq": ("Hz", 2133000 * 1000)}
    gpu = {"ga10b": {"type": "integrated", "status": {"load": 63.0}, "freq": {"cur": 621000}}}
    assert readings_from_gpu(gpu) == [("gpu_load", "%", 63.0), ("gpu_freq", "Hz", 621e6)]
    temps = {"cpu": {"online": True, "temp": 53.9}, "cv0": {"online": False, "temp": -256}}
    assert readings_from_temperature(temps) == [("temp:cpu", "degC", 53.9)]


def test_clock_warning_only_when_clocks_are_not_fixed() -> None:
    from harness.samplers.jtop import clock_warning

    assert clock_warning("running", "MAXN") == ""
    assert "not fixed" in clock_warning("inactive", "15W")
    assert "15W" in clock_warning("inactive", "15W")


def test_cleanup_leaves_no_socket_or_tree_on_the_host(outcome: dict[str, Any]) -> None:
    assert not Path("/run/jtop.sock").exists() or os.environ.get("TFBENCH_REAL_JTOP")
    assert not (FAKE / "bus").exists()


def test_active_against_the_real_service(outcome: dict[str, Any]) -> None:
    assert outcome["status"]["jtop"] == "active"
    assert outcome["status"]["psutil"] == "active"
    assert outcome["status"]["tegrastats"].startswith("skipped: the jtop service answers")
    assert outcome["summary"]["died_at_s"] is None
    assert outcome["summary"]["samples"]["jtop"] > 0


def _samples(outcome: dict[str, Any]) -> Any:
    from harness.records import SAMPLES_FILE, read_table

    return read_table(Path(outcome["run_dir"]), SAMPLES_FILE)


def test_recorded_samples_follow_the_trace(outcome: dict[str, Any]) -> None:
    s = _samples(outcome)
    jt = s[s["sampler"] == "jtop"]
    start, switch, end = outcome["window"]
    total = jt[jt["metric"] == "power_total"]
    assert set(total["unit"]) == {"W"}
    assert set(total["value"]) <= {5.0, 10.0}
    first_phase = total[(total["t_s"] > start) & (total["t_s"] < switch)]
    second_phase = total[(total["t_s"] > switch + 2 * INTERVAL_S) & (total["t_s"] < end)]
    assert len(first_phase) >= PHASE_S / INTERVAL_S * 0.7
    assert (first_phase["value"] == 5.0).all()
    assert len(second_phase) >= 5 and (second_phase["value"] == 10.0).all()
    assert set(total.loc[total["t_s"].between(start + 0.1, end - 0.1), "config_id"]) == {CELL}
    last = jt.sort_values("t_s").groupby("metric")["value"].last()
    assert last["power_rail:VDD_CPU_GPU_CV"] == pytest.approx(1.0)  # 5 V x 200 mA
    assert last["power_rail:VDD_SOC"] == pytest.approx(1.5)
    assert "power_rail:VDD_IN" not in last  # the total is not repeated as a rail
    assert last["gpu_load"] == pytest.approx(25.0)
    assert last["emc_freq"] == pytest.approx(2133e6)
    assert last["ram_used"] > 0
    assert set(jt.loc[jt["metric"] == "ram_used", "unit"]) == {"B"}


def test_slower_service_interval_is_reported_and_ticks_not_repeated(
        outcome: dict[str, Any]) -> None:
    from harness.records import SAMPLES_FILE, read_table

    assert outcome["slow_status"]["jtop"] == "active"
    messages = [p["message"] for p in outcome["slow_summary"]["problems"]]
    assert any("samples every 1 s" in m for m in messages), messages
    s = read_table(Path(outcome["slow_run_dir"]), SAMPLES_FILE)
    t = s.loc[s["metric"] == "power_total", "t_s"].sort_values()
    assert 2 <= len(t) <= 5
    # After the reading taken at connection, one sample per 1 s tick: no 0.6 s repeats.
    assert (t.diff().dropna().iloc[1:] > 0.7).all()


def test_energy_of_5w_then_10w_within_5_percent(outcome: dict[str, Any]) -> None:
    from harness.attribution import attribute

    start, switch, end = outcome["window"]
    exact = 5.0 * (switch - start) + 10.0 * (end - switch)
    got = attribute(_samples(outcome), CELL, start, end, 100, INTERVAL_S)
    assert got["energy_j_per_image"] * 100 == pytest.approx(exact, rel=0.05)
    assert got["power_w_mean"] == pytest.approx(exact / (end - start), rel=0.05)
    assert got["energy_confidence"] == "ok"
    assert got["power_samples"] >= (end - start) / INTERVAL_S * 0.7


def test_board_info_from_the_service(outcome: dict[str, Any]) -> None:
    info = outcome["board_info"]
    assert info is not None
    assert info["hardware"]  # what the service reports about the board
    # The emulated board has neither nvpmodel nor jetson_clocks: clocks are not fixed.
    assert info["jetson_clocks"] is None
    assert "jetson_clocks" in info["warning"] and "not fixed" in info["warning"]
    assert outcome["no_service_board_info"] is None


def test_no_service_is_a_skipped_sampler_with_reason(outcome: dict[str, Any]) -> None:
    assert "/run/jtop.sock does not exist" in outcome["no_service"]
    status = outcome["no_service_host"]
    assert "/run/jtop.sock does not exist" in status["jtop"]
    assert status["psutil"] == "active"  # the run goes on


def test_stale_socket_is_a_service_that_does_not_answer(outcome: dict[str, Any]) -> None:
    assert "no jtop service answers" in outcome["stale_socket"]


def test_version_mismatched_service(outcome: dict[str, Any]) -> None:
    reason = outcome["mismatch_host"]["jtop"]
    assert "Mismatch version" in reason and "6.0.0" in reason


def test_permission_denied_outside_the_jtop_group(outcome: dict[str, Any]) -> None:
    nobody = outcome["nobody"]
    if "skipped" in nobody:
        pytest.skip(nobody["skipped"])
    assert nobody["ok"] is False
    assert "permission denied on /run/jtop.sock" in nobody["reason"]
    assert "permission denied on /run/jtop.sock" in nobody["open"]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "scenario":
        out_dir = Path(sys.argv[2])
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        (out_dir / "result.json").write_text(json.dumps(scenario(out_dir), default=str))
