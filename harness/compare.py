"""``tfbench compare``: regression verdicts between results directories (the command).

Two modes, both working from the files alone (no TensorFlow):

* ``tfbench compare BASELINE [BASELINE ...] CANDIDATE`` matches cells by their
  factors and gives each a ratio candidate/baseline with a 95% CI and a verdict
  (REGRESSION / IMPROVEMENT / NO CHANGE / INCONCLUSIVE). Several baseline
  directories (``tfbench run --repeat K``) let it estimate the run-to-run
  spread; with one, an assumed ``--run-spread`` is used and the output says so.
* ``tfbench compare --within RUN --pair CELL_A CELL_B`` gives paired ratios
  B/A between two cells of one interleaved run (``tfbench run --interleave K``);
  cells whose ``block_order`` is ``sequential`` are refused, and cells that do
  not record it are refused unless ``--force``.

The numbers come from `harness.comparison`, the machine class from
`harness.machine_class`, the output from `harness.compare_render`. The method is
described in docs/regression.md. Exit code 1 when any cell is a REGRESSION, 0
otherwise, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys

from harness.compare_render import CSV_COLUMNS, RENDERERS, render_many
from harness.comparison import METRICS, Comparison, compare_runs, compare_within
from harness.errors import UserError
from harness.gates import parse_fraction, parse_thresholds
from harness.machine_class import class_differences, machine_class
from harness.records import Results, host_results, load_results

__all__ = ["CSV_COLUMNS", "FORMATS", "METRICS", "Comparison", "class_differences",
           "compare_runs", "compare_within", "machine_class", "parse_fraction"]

FORMATS = ("table", "markdown", "csv", "json")


# --- command --------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR",
                        help="BASELINE_DIR [BASELINE_DIR ...] CANDIDATE_DIR (the last is the "
                             "candidate); several baselines let the run-to-run spread be "
                             "estimated")
    parser.add_argument("--threshold", default="5%,host_rss_peak_bytes=10%,"
                                               "device_mem_peak_bytes=10%",
                        help="practical threshold δ per metric: changes within ±δ count as no "
                             "change; one value for all, or metric=δ,... (default 5%%, memory "
                             "10%%)")
    parser.add_argument("--metric", default="all",
                        help="what to judge: all (default: " + ", ".join(METRICS) + ", each "
                             "where both sides have values) or a comma-separated list of "
                             "those; images_per_s: higher is better")
    parser.add_argument("--format", default="table", choices=FORMATS, dest="fmt",
                        help="output format (default table)")
    parser.add_argument("--run-spread", default="2%",
                        help="assumed run-to-run spread when only one baseline run has a cell "
                             "(default 2%%)")
    parser.add_argument("--force", action="store_true",
                        help="compare even when the machine class differs (CPU/GPU model, "
                             "TensorFlow version, JetPack); with --within, pair cells whose "
                             "files do not record block_order")
    parser.add_argument("--within", metavar="RUN_DIR",
                        help="paired comparison between cells of one interleaved run")
    parser.add_argument("--pair", nargs=2, action="append", metavar=("CELL_A", "CELL_B"),
                        default=[],
                        help="with --within: cells to compare (ratio B/A); a config_id, a "
                             "label like tiny_cnn/cpu/infer/bs8, or factor=value,...; "
                             "repeatable")


def sampling_warnings(runs: list[Results]) -> list[str]:
    """A sampler process that died (samples stop early: power, energy and RSS of later
    cells are missing) or reported problems, per run; printed to stderr too."""
    out = []
    for r in runs:
        sampling = r.environment.sampling
        if sampling is not None and sampling.died_at_s is not None:
            out.append(f"run {r.run_id}: sampler process died at t={sampling.died_at_s:.1f} s; "
                       f"samples stop at t={sampling.last_sample_s} s (power, energy and "
                       "memory figures after that are missing)")
    for text in out:
        print(f"tfbench compare: warning: {text}", file=sys.stderr)
    return out


def parse_metrics(text: str) -> list[str]:
    """``all`` or a comma-separated list of `METRICS` names."""
    if str(text).strip() == "all":
        return list(METRICS)
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    for name in names or [str(text)]:
        if name not in METRICS:
            raise UserError.invalid("--metric", name, ("all", *METRICS))
    return list(dict.fromkeys(names))


# Judged under --metric all only where the runs have values (power sampled, memory
# sampled, a GPU): the per-run metrics.
OPTIONAL = tuple(n for n, m in METRICS.items() if not m.per_step)
WHY_MISSING = {"energy_j_per_image": "power not sampled",
               "host_rss_peak_bytes": "host memory not sampled",
               "device_mem_peak_bytes": "no device memory figures"}


def _has_values(runs: list[Results], name: str) -> bool:
    return all(name in r.configs and r.configs[name].notna().any() for r in runs)


def run_command(args: argparse.Namespace) -> int:
    names = parse_metrics(args.metric)
    thresholds = parse_thresholds(args.threshold)  # δ, or metric=δ,... (harness.gates)
    if args.within:
        if args.runs:
            raise UserError("--within: give the run directory to --within only, not also "
                            f"positional directories ({', '.join(args.runs)})")
        within = load_results(args.within)
        if args.metric == "all":  # paired blocks have per-step metrics only
            names = [n for n in names if METRICS[n].per_step]
        comps = [compare_within(within, [tuple(p) for p in args.pair], METRICS[n],
                                thresholds[n], force=args.force) for n in names]
        for comp in comps:
            comp.warnings = [*comp.warnings, *sampling_warnings([within])]
    else:
        if args.pair:
            raise UserError("--pair: only with --within RUN_DIR")
        if len(args.runs) < 2:
            raise UserError(f"runs: got {len(args.runs)} directory(ies); allowed: "
                            "BASELINE_DIR [BASELINE_DIR ...] CANDIDATE_DIR (at least two), "
                            "or --within RUN_DIR")
        run_spread = parse_fraction(args.run_spread, "--run-spread", allow_zero=True)
        loaded = [load_results(d) for d in args.runs]
        warnings = _machine_warnings(args, loaded)
        skipped = [n for n in names if args.metric == "all" and n in OPTIONAL
                   and not _has_values(loaded, n)]
        names = [n for n in names if n not in skipped]
        comps = []
        for n in names:
            comp = compare_runs(loaded[:-1], loaded[-1], METRICS[n], thresholds[n], run_spread)
            comp.warnings = list(warnings)
            comp.notes += [f"{s}: not judged (no values on both sides: {WHY_MISSING[s]})"
                           for s in skipped if n == names[0]]
            comps.append(comp)
        sampling = sampling_warnings(loaded)
        for comp in comps:
            comp.warnings += sampling
    if len(comps) == 1:
        sys.stdout.write(RENDERERS[args.fmt](comps[0]))
    else:
        sys.stdout.write(render_many(comps, args.fmt))
    return 1 if any(c.regressions for c in comps) else 0


def _machine_warnings(args: argparse.Namespace, loaded: list[Results]) -> list[str]:
    """Refuse different machine classes (unless --force); warn on power settings."""
    # a fleet run counts with each host that ran cells (records.host_results): a mixed
    # fleet spans machine classes and is refused like two machines are
    named = [(str(d) if len(parts) == 1 else f"{d} [{p.environment.host}]", p.environment)
             for d, r in zip(args.runs, loaded, strict=True)
             for parts in [host_results(r)] for p in parts]
    diffs, setting_diffs = class_differences(named)
    warnings: list[str] = []
    if diffs:
        text = "machine class differs: " + "; ".join(diffs)
        if not args.force:
            raise UserError(f"{text}. Results from different machines, TensorFlow "
                            "versions or JetPacks are not comparable; pass --force to "
                            "compare anyway")
        print(f"tfbench compare: warning: {text} (compared because of --force)",
              file=sys.stderr)
        warnings.append(text + " (--force)")
    if setting_diffs:
        text = "power settings differ: " + "; ".join(setting_diffs)
        print(f"tfbench compare: warning: {text}", file=sys.stderr)
        warnings.append(text)
    return warnings
