"""``tfbench ab``: interleaved A/B of a baseline and a candidate environment on one machine.

The same cells run alternately under the two sides, block by block, each block
in its own worker process, in the order A B B A A B B A … (pair k runs A then B
for even k, B then A for odd k, so a linear drift cancels within every two
pairs). A side is an interpreter (``--baseline-python``), extra environment
variables (``--baseline-env NAME=VALUE``, repeatable) and/or a git revision of
this project (``--baseline-rev REV``: installed into a temporary venv that
reuses the current one's packages). Both sides' rows land in one results
directory with a ``side`` column; `harness.ab_verdict` gives the verdicts.
Exit 1 on a REGRESSION or when the candidate did not finish a cell.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.commands.run import add_matrix_options, add_measure_options, build_profile, preflight
from harness.config import Cell
from harness.errors import UserError
from harness.gates import describe, parse_thresholds

SIDES = ("baseline", "candidate")
DEFAULT_INTERLEAVE = 8
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What a side's interpreter prints about itself (no TensorFlow import: package metadata only).
PROBE = r"""
import importlib.metadata as md, json, os, platform, sys
import harness, harness.worker
def v(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
print(json.dumps({
    "python": platform.python_version(), "executable": sys.executable,
    "harness_version": harness.__version__, "harness_path": os.path.dirname(harness.__file__),
    "packages": {n: v(n) for n in ("tensorflow", "tensorflow-cpu", "keras", "tf_keras",
                                   "numpy", "tfbench")},
    "flags": {k: val for k, val in sorted(os.environ.items())
              if k.startswith(("TF_", "OMP_", "KMP_", "MKL_", "XLA_", "CUDA_", "TFBENCH_"))},
}))
"""


@dataclass
class Side:
    """One side of the A/B: how its workers are started and what they see."""

    name: str
    python: str
    env: dict[str, str]
    rev: str | None = None
    isolated: bool = False  # python -I (revisions): ignore PYTHONPATH and the working directory
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> list[str]:
        return [self.python, "-I"] if self.isolated else [self.python]

    @property
    def worker_env(self) -> dict[str, str]:
        return dict(self.env)


# --- input -----------------------------------------------------------------------------------


def parse_env(assignments: Sequence[str], option: str) -> dict[str, str]:
    """``["A=1", "B=x"]`` → {"A": "1", "B": "x"}; a missing ``=`` or a bad name is a UserError."""
    env: dict[str, str] = {}
    for text in assignments:
        name, sep, value = text.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise UserError.invalid(option, text, "NAME=VALUE with NAME a variable name "
                                    "(letters, digits, _)")
        env[name] = value
    return env


def check_python(path: str, option: str) -> str:
    found = shutil.which(path) if os.sep not in path else path
    if not found or not Path(found).is_file() or not os.access(found, os.X_OK):
        raise UserError(f"{option}: {path!r} does not exist or is not an executable file")
    return str(Path(found).absolute())


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def resolve_rev(rev: str, option: str) -> str:
    """The full commit of ``rev`` in this project's git repository (UserError if none)."""
    root = project_root()
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet",
                               f"{rev}^{{commit}}"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"{option}: git is not usable here ({exc})") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise UserError.invalid(option, rev, f"a git revision of {root} (a commit, tag or "
                                "branch that exists)")
    return done.stdout.strip()


def sides_from_args(args: argparse.Namespace) -> list[Side]:
    """Validated sides (no process started, nothing written)."""
    sides = []
    for name in SIDES:
        python = getattr(args, f"{name}_python")
        rev = getattr(args, f"{name}_rev")
        env = parse_env(getattr(args, f"{name}_env"), f"--{name}-env")
        if python is not None and rev is not None:
            raise UserError(f"--{name}-python and --{name}-rev: give one; a revision is "
                            "installed into a venv built on the current interpreter")
        side = Side(name, check_python(python, f"--{name}-python") if python else sys.executable,
                    env)
        if rev is not None:
            side.rev = resolve_rev(rev, f"--{name}-rev")
            side.record["rev_given"] = rev
        side.isolated = rev is not None
        if python is not None:
            # Python >= 3.11: do not put the working directory first on sys.path, so a
            # checkout in the current directory cannot shadow that interpreter's project.
            side.env.setdefault("PYTHONSAFEPATH", "1")
        sides.append(side)
    return sides


# --- revisions --------------------------------------------------------------------------------


def install_rev(side: Side, workdir: Path) -> None:
    """Install ``side.rev`` of the project into a venv under ``workdir`` reusing our packages.

    The venv's site-packages gets a .pth naming the current interpreter's
    site-packages (TensorFlow and the rest are reused, not copied), then the
    revision's source (``git archive``) is installed with pip --no-deps
    --no-build-isolation. Its interpreter runs with -I, so neither PYTHONPATH
    nor the working directory can shadow the installed revision.
    """
    assert side.rev is not None
    src, venv = workdir / f"{side.name}-src", workdir / f"{side.name}-venv"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(project_root()), "archive", "--format=tar",
                              side.rev], capture_output=True, timeout=300)
    if archive.returncode != 0:
        raise UserError(f"--{side.name}-rev {side.rev[:12]}: git archive failed: "
                        f"{archive.stderr.decode(errors='replace').strip()[-300:]}")
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True, timeout=300)
    _checked([sys.executable, "-m", "venv", "--without-pip", str(venv)], side, "venv")
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site.stdout.strip(), "_tfbench_ab_base.pth").write_text("\n".join(sorted(ours)) + "\n")
    _checked([str(python), "-I", "-m", "pip", "install", "--quiet", "--no-deps",
              "--no-build-isolation", "--no-index", str(src)], side, "pip install")
    side.python = str(python)
    side.record.update(rev=side.rev, venv=str(venv), reuses_site_packages=sorted(ours))


def _checked(cmd: list[str], side: Side, what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise UserError(f"--{side.name}-rev {str(side.rev)[:12]}: {what} failed: "
                        + " | ".join(tail))


def probe(side: Side) -> None:
    """Ask the side's interpreter what it runs (versions, flags); UserError if it cannot
    import the project."""
    option = f"--{side.name}-rev" if side.rev else f"--{side.name}-python"
    env = {**os.environ, **side.env}
    try:
        done = subprocess.run([*side.command, "-c", PROBE], capture_output=True, text=True,
                              env=env, timeout=300, cwd=tempfile.gettempdir()
                              if side.isolated else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"{option}: {side.python!r} could not be run ({exc})") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"{option}: {side.python!r} cannot import the project (harness): "
                        f"{last}")
    side.record.update(json.loads(done.stdout.strip().splitlines()[-1]))
    side.record.update(python_command=side.command, env=side.env)


# --- running ---------------------------------------------------------------------------------


def pair_order(k: int) -> tuple[int, int]:
    """Side indices of pair k: (A, B) for even k, (B, A) for odd k → A B B A A B B A …"""
    return (0, 1) if k % 2 == 0 else (1, 0)


def schedule(cells: Sequence[Cell], pairs: int) -> list[tuple[int, Cell, int]]:
    """(pair, cell, side index) in run order: each cell's two blocks of a pair side by side."""
    return [(k, cell, s) for k in range(pairs) for cell in cells for s in pair_order(k)]


def configure_parser(p: argparse.ArgumentParser) -> None:
    for name in SIDES:
        g = p.add_argument_group(f"{name} side")
        g.add_argument(f"--{name}-python", metavar="PATH",
                       help=f"interpreter of the {name} (default: this one)")
        g.add_argument(f"--{name}-env", action="append", default=[], metavar="NAME=VALUE",
                       help="environment variable for its workers (repeatable)")
        g.add_argument(f"--{name}-rev", metavar="REV",
                       help="a git revision of this project, installed into a temporary venv "
                            "that reuses the current one's packages")
    p.add_argument("--interleave", type=int, default=DEFAULT_INTERLEAVE, metavar="K",
                   help=f"block pairs per cell (default {DEFAULT_INTERLEAVE}; at least 2)")
    p.add_argument("--threshold", default="5%,host_rss_peak_bytes=10%,device_mem_peak_bytes=10%",
                   help="δ per metric: 5%% or step_s=5%%,energy_j_per_image=8%%,... "
                        "(default 5%%; memory 10%%)")
    p.add_argument("--format", dest="fmt", default="table", choices=("table", "json"))
    p.add_argument("--profile", default="quick", help="quick, full, or a TOML file")
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="parent directory; the run goes in OUT/<run_id>/")
    add_matrix_options(p)
    add_measure_options(p)


def run_command(args: argparse.Namespace) -> int:
    from harness.ab_verdict import analyse, render_json, render_table
    from harness.orchestrator import check_writable

    if isinstance(args.interleave, bool) or args.interleave < 2:
        raise UserError.invalid("--interleave", args.interleave, "integers >= 2 (block pairs)")
    thresholds = parse_thresholds(args.threshold)
    args.repeat, args.resume, args.list = None, None, False
    interleave, args.interleave = args.interleave, None
    profile = build_profile(args)
    cells = preflight(profile)
    sides = sides_from_args(args)
    check_writable(args.out)
    with tempfile.TemporaryDirectory(prefix="tfbench-ab-") as tmp:
        for side in sides:
            if side.rev is not None:
                print(f"installing {side.name} revision {side.rev[:12]}", file=sys.stderr)
                install_rev(side, Path(tmp))
            probe(side)
        run_dir = run_ab(cells, profile, sides, interleave, thresholds, args.out)
    result = analyse(run_dir, thresholds)
    sys.stdout.write(render_json(result) if args.fmt == "json" else render_table(result))
    (run_dir / "verdicts.json").write_text(render_json(result))
    if profile.settings.plots:
        from harness.plots import write_run_charts

        charts = write_run_charts(run_dir)
        print(f"charts: {len(charts)} files in {run_dir / 'charts'}", file=sys.stderr)
    print(run_dir)
    return result.exit_code


def run_ab(cells: Sequence[Cell], profile: Any, sides: Sequence[Side], interleave: int,
           thresholds: dict[str, float], out: Path) -> Path:
    """Run every cell's K block pairs under both sides into a new results directory."""
    from harness.environment import collect
    from harness.load import LoadMeter, load_averages, record_run_load
    from harness.orchestrator import (
        BlockOutcome,
        RunSession,
        make_run_id,
        new_run_dir,
        record_samplers,
    )
    from harness.progress import Progress
    from harness.records import write_environment

    settings = profile.settings
    run_id = make_run_id()
    t0_ns = time.perf_counter_ns()
    run_dir = new_run_dir(out, run_id)
    run_id = run_dir.name
    env = collect(run_id, t0_ns, ["tfbench", *sys.argv[1:]], profile.name).to_json()
    env["ab"] = {"interleave": interleave, "order": "A B B A (pair k: A first when k is even)",
                 "thresholds": thresholds, "thresholds_text": describe(thresholds),
                 "sides": {s.name: s.record for s in sides}}
    write_environment(run_dir / "environment.json", env)
    session = RunSession(run_dir, settings, run_id=run_id, t0_ns=t0_ns)
    meter, at_start = LoadMeter(), load_averages()
    work = schedule(cells, interleave)
    progress = Progress(len(work))
    outcomes: dict[tuple[str, int], list[tuple[int, BlockOutcome, int]]] = {}
    try:
        record_samplers(run_dir, session.start_samplers(), None)
        for order, (k, cell, s) in enumerate(work):
            side = sides[s]
            session.worker_command = side.command
            session.worker_env = side.worker_env
            session.name_prefix = f"{side.name}-"
            label = f"{side.name} {cell.config_id} [pair {k + 1}/{interleave}]"
            progress.started(label)
            outcome = session.run_block(cell, k)
            progress.finished(label, outcome.status, outcome.reason[:80])
            outcomes.setdefault((cell.config_id, s), []).append((k, outcome, order))
        block_rows = []
        for cell in cells:
            for s, side in enumerate(sides):
                done = outcomes[(cell.config_id, s)]
                session.record(cell, [o for _, o, _ in done], "interleaved",
                               extra={"side": side.name})
                block_rows += _block_rows(session, cell, side.name, done)
        session.files.appender("blocks.csv").append(block_rows)
    finally:
        summary = session.close()
        record_samplers(run_dir, session.sampler_status, summary)
        record_run_load(run_dir, meter.stop(), at_start)
        progress.close()
    return run_dir


def _block_rows(session: Any, cell: Cell, side: str,
                done: Sequence[tuple[int, Any, int]]) -> list[dict[str, Any]]:
    """blocks.csv rows: per block its window, medians and per-block energy and memory."""
    import numpy as np

    from harness.records import SAMPLES_FILE, read_table

    samples = read_table(session.run_dir, SAMPLES_FILE) if session.sampler_status else None
    rows = []
    for index, (k, outcome, order) in enumerate(done):
        measured = [s for s in outcome.steps if s["phase"] == "measure"]
        row: dict[str, Any] = {
            "run_id": session.run_id, "config_id": cell.config_id, "side": side, "pair": k,
            "block": index, "order": order, "status": outcome.status, "reason": outcome.reason,
            "host_rss_peak_bytes": outcome.result.get("host_rss_peak_bytes"),
            "device_mem_peak_bytes": outcome.result.get("device_mem_peak_bytes"),
        }
        if outcome.load is not None:
            row.update(other_cpu_cores=round(outcome.load.other_cpu_cores, 4),
                       load_avg_1m=round(outcome.load.load_avg_1m, 3))
        if outcome.status == "ok" and measured:
            median = float(np.median([s["duration_s"] for s in measured]))
            start = measured[0]["start_s"] - measured[0]["input_wait_s"]
            end = measured[-1]["start_s"] + measured[-1]["duration_s"]
            row.update(start_s=start, end_s=end, measured_steps=len(measured),
                       step_s_median=median, images_per_s=cell.batch_size / median)
            if samples is not None and len(samples):
                row.update(_block_energy(samples, cell, start, end,
                                         sum(s["images"] for s in measured)))
        rows.append(row)
    return rows


def _block_energy(samples: Any, cell: Cell, start: float, end: float, images: int
                  ) -> dict[str, Any]:
    from harness.attribution import attribute

    power = samples[samples["metric"] == "power_total"]
    if not len(power):
        return {}
    gaps = power.groupby("sampler")["t_s"].diff().dropna()
    interval = float(gaps.median()) if len(gaps) else 0.5
    found = attribute(samples, cell.config_id, start, end, images, interval)
    value = found.get("energy_j_per_image")
    return {"energy_j_per_image": value} if value is not None else {}
