"""``tfbench run``: the matrix of a profile, without pytest, with a progress bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import Cell, Profile, expand_matrix, load_profile
from harness.errors import UserError
from harness.orchestrator import CellOutcome, check_writable, run_cells
from harness.progress import Progress
from harness.samplers import parse_sampler_names

LIST_OPTIONS = {
    "models": "models", "devices": "devices", "modes": "modes", "bases": "bases",
    "engines": "engines", "precisions": "precisions", "batch_sizes": "batch-sizes",
    "data": "data", "weights": "weights",
}


def _int_list(field: str) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        values = []
        for part in text.split(","):
            try:
                values.append(int(part))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{field}: {part!r} is not valid; allowed: integers > 0") from None
        return values
    return parse


def _str_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="quick", help="quick, full, or a TOML file (default quick)")
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="parent directory; the run goes in OUT/<run_id>/ (default results/)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted run in RUN_DIR, skipping finished cells")
    group = p.add_argument_group("matrix overrides (comma-separated lists)")
    for dest, flag in LIST_OPTIONS.items():
        kind = _int_list("batch_size") if dest == "batch_sizes" else _str_list
        group.add_argument(f"--{flag}", dest=dest, type=kind, metavar="LIST")
    s = p.add_argument_group("settings overrides")
    s.add_argument("--warmup-steps", type=int)
    s.add_argument("--measured-steps", type=int)
    s.add_argument("--min-duration", dest="min_duration_s", type=float, metavar="S",
                   help="keep measuring until the measured phase spans S seconds")
    s.add_argument("--timeout", dest="timeout_s", type=float, metavar="S",
                   help="per-cell timeout; a cell past it is killed and recorded as timeout")
    s.add_argument("--samplers", type=_str_list, metavar="LIST",
                   help="psutil,jtop,tegrastats,nvml | all | none")
    s.add_argument("--sample-interval", dest="sample_interval_s", type=float, metavar="S")
    s.add_argument("--repeat", type=int, help="K separate runs (baseline repeats)")
    s.add_argument("--interleave", type=int, metavar="K",
                   help="run each cell in K blocks alternating with the other cells")
    s.add_argument("--seed", type=int)
    s.add_argument("--no-plots", dest="plots", action="store_false", default=None,
                   help="do not draw the charts at the end")
    s.add_argument("--allow-download", action="store_true", default=None,
                   help="allow downloading ImageNet weights / TF Hub modules")
    p.add_argument("--list", action="store_true", help="print the cells and exit")


def build_profile(args: argparse.Namespace) -> Profile:
    profile = load_profile(args.profile)
    matrix = {k: getattr(args, k) for k in LIST_OPTIONS}
    samplers = None if args.samplers is None else parse_sampler_names(args.samplers)
    settings: dict[str, Any] = {
        "warmup_steps": args.warmup_steps, "measured_steps": args.measured_steps,
        "min_duration_s": args.min_duration_s, "timeout_s": args.timeout_s,
        "samplers": samplers,
        "sample_interval_s": args.sample_interval_s, "repeat": args.repeat,
        "interleave": args.interleave, "seed": args.seed, "plots": args.plots,
        "allow_download": args.allow_download,
    }
    return profile.with_overrides(matrix, settings)


def preflight(profile: Profile) -> list[Cell]:
    """Everything that can be checked before a results directory exists."""
    from harness.data import list_image_folder
    from harness.workloads import check_offline

    cells = expand_matrix(profile)
    if not cells:
        raise UserError("profile: the matrix has no cells")
    for cell in cells:
        check_offline(cell, profile.settings.allow_download)
    for folder in sorted({c.data for c in cells} - {"synthetic"}):
        list_image_folder(Path(folder))  # every file's header, before anything runs
    return cells


def run_command(args: argparse.Namespace) -> int:
    profile = build_profile(args)
    cells = preflight(profile)
    if args.list:
        for cell in cells:
            print(cell.config_id)
        return 0
    if args.resume is None:
        check_writable(args.out)
    from harness.environment import collect

    settings = profile.settings
    command_line = ["tfbench", *sys.argv[1:]]
    failures = 0

    def count(outcome: CellOutcome) -> None:
        nonlocal failures
        failures += outcome.status in ("failed", "oom", "timeout")

    for k in range(settings.repeat):
        if settings.repeat > 1:
            print(f"repeat {k + 1}/{settings.repeat}", file=sys.stderr)
        run_dir = run_cells(
            cells, settings, args.out,
            environment=lambda run_id, t0: collect(run_id, t0, command_line, profile.name),
            progress=Progress(len(cells) * max(settings.interleave, 1)),
            resume=args.resume if k == 0 else None,
            on_cell=count,
        )
        if settings.plots:
            from harness.plots import write_run_charts

            charts = write_run_charts(run_dir)
            print(f"charts: {len(charts)} files in {run_dir / 'charts'}", file=sys.stderr)
        print(run_dir)
    return 1 if failures else 0
