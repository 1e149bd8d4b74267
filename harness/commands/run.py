"""``tfbench run``: the matrix of a profile, without pytest, with a progress bar."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from harness.config import (
    BASES,
    MATRIX_KEYS,
    TRAINING_MODES,
    Cell,
    Profile,
    expand_matrix,
    load_profile,
)
from harness.envmodel import RunRequest
from harness.errors import UserError
from harness.orchestrator import CellOutcome, check_writable, run_cells
from harness.samplers import parse_sampler_names
from harness.trace import trace_steps_setting

T = TypeVar("T")

LIST_OPTIONS = {
    "models": "models", "devices": "devices", "modes": "modes", "bases": "bases",
    "engines": "engines", "precisions": "precisions", "batch_sizes": "batch-sizes",
    "data": "data", "weights": "weights", "input_sizes": "input-sizes",
    "learning_rates": "learning-rates",
    "strategies": "strategies",
}


def allowed_values(dest: str) -> str:
    """The values a matrix option accepts, for ``run --help``."""
    from harness.config import MODELS, MODES, PRECISIONS, STRATEGIES, WEIGHTS_KEYWORDS
    from harness.engines import ENGINES

    return {
        "models": ", ".join(MODELS) + ", hub:<handle or local path>, or a .keras/.h5 file or "
                  "SavedModel dir",
        "devices": "cpu, gpu, gpu:N",
        "modes": ", ".join(MODES),
        "bases": ", ".join(BASES) + " (training modes only)",
        "engines": ", ".join(ENGINES),
        "precisions": ", ".join(PRECISIONS) + " (each engine takes a subset: docs/engines.md)",
        "batch_sizes": "integers > 0",
        "data": "synthetic, or an image folder (one sub-folder per class)",
        "weights": ", ".join(WEIGHTS_KEYWORDS) + ", or a path to a .keras/.h5 file",
        "input_sizes": "integers > 0 (pixels; default: the model's own)",
        "learning_rates": "numbers > 0 (training modes)",
        "strategies": ", ".join(STRATEGIES) + " (multiworker: training only, --workers N)",
    }[dest]


def _number_list(cast: Callable[[str], T], field: str, allowed: str
                 ) -> Callable[[str], list[T]]:
    """An argparse type: a comma-separated list of numbers, each parsed by ``cast``."""
    def parse(text: str) -> list[T]:
        values = []
        for part in text.split(","):
            try:
                values.append(cast(part))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{field}: {part!r} is not valid; allowed: {allowed}") from None
        return values
    return parse


def _int_list(field: str) -> Callable[[str], list[int]]:
    return _number_list(int, field, "integers > 0")


def _float_list(field: str) -> Callable[[str], list[float]]:
    return _number_list(float, field, "numbers > 0")


def _str_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def add_matrix_options(p: argparse.ArgumentParser) -> None:
    """The matrix overrides (``--models``, ``--batch-sizes``, ...), shared by ``run`` and ``ab``."""
    group = p.add_argument_group("matrix overrides (comma-separated lists)")
    for dest, flag in LIST_OPTIONS.items():
        kind = (_int_list(MATRIX_KEYS[dest]) if dest in ("batch_sizes", "input_sizes")
                else _float_list("learning_rate") if dest == "learning_rates" else _str_list)
        group.add_argument(f"--{flag}", dest=dest, type=kind, metavar="LIST",
                           help=f"allowed: {allowed_values(dest)}")


def add_measure_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """How each cell is measured, shared by ``run`` and ``ab``; returns the group."""
    s = p.add_argument_group("settings overrides")
    s.add_argument("--warmup-steps", type=int)
    s.add_argument("--measured-steps", type=int)
    s.add_argument("--min-duration", dest="min_duration_s", type=float, metavar="S",
                   help="keep measuring until the measured phase spans S seconds")
    s.add_argument("--timeout", dest="timeout_s", type=float, metavar="S",
                   help="per-cell timeout; a cell past it is killed and recorded as timeout")
    s.add_argument("--samplers", type=_str_list, metavar="LIST",
                   help="psutil,jtop,tegrastats,nvml | all | none")
    s.add_argument("--sample-interval", dest="sample_interval_s", type=float, metavar="S",
                   help="seconds between samples (default: each sampler's own)")
    s.add_argument("--seed", type=int)
    s.add_argument("--workers", type=int, metavar="N",
                   help="processes of a strategy=multiworker cell (default 2)")
    s.add_argument("--no-plots", dest="plots", action="store_false", default=None,
                   help="do not draw the charts at the end")
    s.add_argument("--allow-download", action="store_true", default=None,
                   help="allow downloading ImageNet weights / TF Hub modules")
    return s


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None,
                   help="quick, full, or a TOML file (default quick; with --resume: the "
                        "resumed run's own)")
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="parent directory; the run goes in OUT/<run_id>/ (default results/)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted run in RUN_DIR, skipping finished cells")
    add_matrix_options(p)
    s = add_measure_options(p)
    s.add_argument("--repeat", type=int, help="K separate runs (baseline repeats)")
    s.add_argument("--interleave", type=int, metavar="K",
                   help="run each cell in K blocks alternating with the other cells "
                        "(default 1: one block)")
    # --- profiling hook (harness.trace) ---
    s.add_argument("--trace", action="store_true", default=False,
                   help="profile each tf/xla cell after its measured steps: traces/, ops.csv, "
                   "FLOPs and the peak probe (docs/profiling.md)")
    s.add_argument("--trace-steps", type=int, metavar="N",
                   help="steps traced per cell with --trace (default 5; >= 1)")
    f = p.add_argument_group("fit mode and training (docs/accuracy.md)")
    f.add_argument("--epochs", type=int, metavar="N", help="fit: passes over the training part")
    f.add_argument("--max-steps", type=int, metavar="N", help="fit: stop after N steps")
    f.add_argument("--target-accuracy", type=float, metavar="X",
                   help="fit: validation accuracy in (0, 1] whose first reach is timed")
    f.add_argument("--validation-fraction", type=float, metavar="X",
                   help="fit: share of each class held out for validation (default 0.2)")
    f.add_argument("--eval-every-steps", type=int, metavar="N",
                   help="fit: evaluate every N steps (default once per epoch)")
    f.add_argument("--optimizer", help="train/fit: sgd (momentum 0.9, default) or adam")
    f = p.add_argument_group("fleet (Ray; extra 'ray'; see docs/scale.md)")
    f.add_argument("--ray-address", metavar="ADDRESS",
                   help="run each cell as a Ray task on a node offering the 'tfbench' "
                        "resource (auto, host:port, ray://host:port)")
    f.add_argument("--nodes", type=_str_list, metavar="LIST",
                   help="only nodes with these labels (key=value) or hostnames")
    p.add_argument("--list", action="store_true", help="print the cells and exit")


# Settings overrides that only some commands offer (``ab`` has no --trace, fit or repeat).
_OPTIONAL_SETTINGS = ("repeat", "interleave", "epochs", "max_steps", "target_accuracy",
                      "validation_fraction", "eval_every_steps", "optimizer", "workers")


def _overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The matrix and settings flags given on the command line (None: not given)."""
    matrix = {k: getattr(args, k) for k in LIST_OPTIONS}
    samplers = None if args.samplers is None else parse_sampler_names(args.samplers)
    settings: dict[str, Any] = {
        "warmup_steps": args.warmup_steps, "measured_steps": args.measured_steps,
        "min_duration_s": args.min_duration_s, "timeout_s": args.timeout_s,
        "samplers": samplers, "sample_interval_s": args.sample_interval_s,
        "seed": args.seed, "plots": args.plots, "allow_download": args.allow_download,
        **{name: getattr(args, name, None) for name in _OPTIONAL_SETTINGS},
    }
    if hasattr(args, "trace"):
        settings["trace_steps"] = trace_steps_setting(args.trace, args.trace_steps)
    return matrix, settings


def build_profile(args: argparse.Namespace) -> Profile:
    if args.resume is not None:
        return resumed_profile(args)
    matrix, settings = _overrides(args)
    profile = load_profile(args.profile or "quick").with_overrides(matrix, settings)
    modes = profile.matrix.get("modes", ("infer",))
    if args.bases and not set(modes) & set(TRAINING_MODES):
        raise UserError(f"bases: --bases {','.join(args.bases)} makes no sense with modes "
                        f"{', '.join(modes)}: a base is set only in modes "
                        f"{', '.join(TRAINING_MODES)}; add --modes train or leave --bases out")
    return profile


def run_request(args: argparse.Namespace, profile: Profile) -> RunRequest:
    """What this run asked for, stored in environment.json for ``--resume``."""
    from harness.worker import settings_to_dict

    matrix, settings = _overrides(args)
    given = {k: list(v) if isinstance(v, (list, tuple)) else v
             for k, v in {**matrix, **settings}.items() if v is not None}
    return RunRequest(args.profile or "quick", {k: tuple(v) for k, v in profile.matrix.items()},
                      json.loads(json.dumps(settings_to_dict(profile.settings))), given)


def resumed_profile(args: argparse.Namespace) -> Profile:
    """The profile, matrix and settings the resumed run started with; a flag that asks for
    something else is refused (a resume continues a run, it does not change it)."""
    from harness.records import load_environment
    from harness.worker import settings_from_dict

    request = load_environment(args.resume).run_request
    if request is None:
        raise UserError(f"resume: {str(args.resume)!r} does not record the profile and "
                        "settings it was started with (written by an older tfbench); "
                        "start a new run instead")
    if args.profile is not None and args.profile != request.profile:
        raise UserError(f"resume: --profile {args.profile!r} conflicts with the run being "
                        f"resumed (profile {request.profile!r}); leave it out to resume "
                        "the run as it was")
    stored = json.loads(json.dumps(request.settings))
    matrix, settings = _overrides(args)
    for key, value in {**matrix, **settings}.items():
        if value is None:
            continue
        if key in LIST_OPTIONS:
            old: Any = list(request.matrix.get(key, ()))
            new: Any = list(value)
        else:
            old, new = stored.get(key), json.loads(json.dumps(value))
        if old != new:
            flag = "--" + LIST_OPTIONS.get(key, key.removesuffix("_s").replace("_", "-"))
            raise UserError(f"resume: {flag} {new!r} conflicts with the run being resumed "
                            f"({key} {old!r}); leave it out to resume the run as it was")
    return Profile(name=Path(request.profile).stem, matrix=dict(request.matrix),
                   settings=settings_from_dict(stored))


def preflight(profile: Profile) -> list[Cell]:
    """Everything that can be checked before a results directory exists."""
    from harness.data import list_image_folder
    from harness.worker import FAULT_ENV, check_fault
    from harness.workloads import check_offline

    check_fault(os.environ.get(FAULT_ENV, ""))
    cells = expand_matrix(profile)
    if not cells:
        raise UserError("profile: the matrix has no cells")
    for cell in cells:
        check_offline(cell, profile.settings.allow_download)
    for folder in sorted({c.data for c in cells} - {"synthetic", "mnist"}):
        list_image_folder(Path(folder))  # every file's header, before anything runs
    from harness.fit_cell import check_fit_cells

    check_fit_cells(cells, profile.settings)  # fit data splits, mnist cached (harness.fit)
    return cells


def run_command(args: argparse.Namespace) -> int:
    profile = build_profile(args)
    cells = preflight(profile)
    if args.list:
        for cell in cells:
            print(cell.config_id)
        return 0
    command_line = ["tfbench", *sys.argv[1:]]
    fleet = None
    if args.nodes and not args.ray_address:
        raise UserError("nodes: selects fleet nodes; give --ray-address too")
    if args.ray_address:
        from harness.fleet import Fleet, discover

        fleet = Fleet(discover(args.ray_address, args.nodes or []),
                      command_line=command_line, profile=profile.name)
        fleet.check(cells, profile.settings)
    if args.resume is None:
        check_writable(args.out)
    from harness.environment import collect

    settings = profile.settings
    request = run_request(args, profile)
    failures = 0

    def count(outcome: CellOutcome) -> None:
        nonlocal failures
        failures += outcome.status in ("failed", "oom", "timeout")

    for k in range(settings.repeat):
        if settings.repeat > 1:
            print(f"repeat {k + 1}/{settings.repeat}", file=sys.stderr)
        run_dir = run_cells(
            cells, settings, args.out,
            environment=lambda run_id, t0: dataclasses.replace(
                collect(run_id, t0, command_line, profile.name), run_request=request).to_json(),
            resume=args.resume if k == 0 else None,
            on_cell=count, fleet=fleet,
        )
        if settings.plots:
            from harness.plots import write_run_charts

            try:
                charts = write_run_charts(run_dir)
            except OSError as exc:  # a full disk: the results are written, charts are extra
                print(f"tfbench: warning: charts not written to {run_dir / 'charts'} "
                      f"({exc.strerror or exc}); draw them later with tfbench plot "
                      f"{run_dir}", file=sys.stderr)
            else:
                print(f"charts: {len(charts)} files in {run_dir / 'charts'}", file=sys.stderr)
        print(run_dir)
    return 1 if failures else 0
