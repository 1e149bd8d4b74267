"""``tfbench plot``: every chart of one or several results directories, saved as files.

The charts live in `harness.charts_cells` and `harness.charts_time`, their
drawing helpers in `harness.chartkit`, the run-set model they read in
`harness.runset`. This module builds them in reading order, saves them (with an
``index.md`` that lists what was not made and why) and is the command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from harness.chartkit import DPI, FORMATS, Chart, fmt_number, palette
from harness.charts_cells import (
    batch_size_chart,
    energy_batch_size_chart,
    energy_chart,
    memory_chart,
    speedup_chart,
    step_time_chart,
    throughput_chart,
)
from harness.charts_time import power_chart, step_timeline_chart
from harness.errors import UserError
from harness.runset import RunSet, cell_table, check_usable, load_runs, measured
from harness.speedups import RUN_SPREAD, Ratio, speedup_ci, speedups

__all__ = [
    "CHART_NAMES",
    "DPI",
    "FORMATS",
    "RUN_SPREAD",
    "Chart",
    "Ratio",
    "RunSet",
    "batch_size_chart",
    "build_charts",
    "cell_table",
    "check_usable",
    "energy_batch_size_chart",
    "energy_chart",
    "fmt_number",
    "load_runs",
    "measured",
    "memory_chart",
    "palette",
    "power_chart",
    "save_charts",
    "speedup_chart",
    "speedup_ci",
    "speedups",
    "step_time_chart",
    "step_timeline_chart",
    "throughput_chart",
    "write_run_charts",
]

CHART_NAMES = ("step_times", "throughput", "speedups", "step_timeline", "power",
               "energy", "memory", "batch_size", "energy_batch_size")


def build_charts(rs: RunSet) -> list[Chart]:
    """Every chart, made or not (with the reason), in reading order."""
    from harness import ab_charts  # [ab hook] an ab run gets its own charts

    if ab_charts.is_ab(rs):
        return ab_charts.build(rs)
    table = cell_table(rs)
    return [
        step_time_chart(rs),
        throughput_chart(rs, table),
        speedup_chart(rs, speedups(rs, table)),
        step_timeline_chart(rs),
        power_chart(rs),
        energy_chart(rs, table),
        memory_chart(rs, table),
        batch_size_chart(rs, table),
        energy_batch_size_chart(rs, table),
        *_profile_charts(rs),  # profiling hook (harness.profile_charts)
        *_accuracy_charts(rs),  # fit-mode hook (harness.accuracy_charts)
        _scaling_chart(rs),  # strategies (harness.charts_scale)
    ]


def _scaling_chart(rs: RunSet) -> Chart:
    from harness.charts_scale import scaling_chart

    return scaling_chart(rs)


def _profile_charts(rs: RunSet) -> list[Chart]:
    from harness.profile_charts import profile_charts

    return profile_charts(rs)


def _accuracy_charts(rs: RunSet) -> list[Chart]:
    from harness.accuracy_charts import accuracy_charts

    return accuracy_charts(rs)


def save_charts(charts: Sequence[Chart], out_dir: Path, formats: Sequence[str] = FORMATS
                ) -> list[Path]:
    """Save made charts as ``<name>.<format>`` plus an ``index.md`` listing what was not made."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    lines = ["# Charts", ""]
    for chart in charts:
        if chart.figure is None:
            lines.append(f"- {chart.name}: not made — {chart.reason}")
            continue
        for fmt in formats:
            path = out_dir / f"{chart.name}.{fmt}"
            chart.figure.savefig(path, format=fmt, dpi=DPI, bbox_inches="tight",
                                 pad_inches=0.15)
            paths.append(path)
        lines.append(f"- {chart.name}: {chart.title} ({', '.join(formats)})")
    index = out_dir / "index.md"
    index.write_text("\n".join(lines) + "\n")
    paths.append(index)
    return paths


def write_run_charts(run_dir: Path) -> list[Path]:
    """Charts for one finished run into ``run_dir/charts/``; the orchestrator calls this.

    Missing data never raises: a chart without data is listed as not made in
    ``charts/index.md``, and a run with no ok cell gets only that index.
    """
    out = Path(run_dir) / "charts"
    try:
        rs = load_runs([run_dir])
        check_usable(rs)
    except UserError as exc:
        out.mkdir(parents=True, exist_ok=True)
        index = out / "index.md"
        index.write_text(f"# Charts\n\nNo charts: {exc.message}\n")
        return [index]
    return save_charts(build_charts(rs), out)


# --------------------------------------------------------------------------- CLI


def parse_formats(text: str) -> list[str]:
    """``png,svg`` → ["png", "svg"]; anything else is a UserError."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError.invalid("--format", text, ", ".join(FORMATS) + " (comma-separated)")
    return list(dict.fromkeys(formats))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", type=Path,
                        help="one or more results directories; several are compared side by side")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the charts (default: <first RESULTS_DIR>/charts)")
    parser.add_argument("--format", default="png,svg",
                        help="comma-separated image formats: png, svg (default: png,svg)")


def run_command(args: argparse.Namespace) -> int:
    formats = parse_formats(args.format)
    rs = load_runs(args.results_dirs)
    check_usable(rs)
    out = args.out if args.out is not None else Path(args.results_dirs[0]) / "charts"
    from harness.outpaths import check_out_dir

    check_out_dir(out)
    charts = build_charts(rs)
    paths = save_charts(charts, out, formats)
    for chart in charts:
        if chart.made:
            print(f"made      {chart.name}: {chart.title}")
        else:
            print(f"not made  {chart.name}: {chart.reason}")
    print(f"wrote {len(paths)} files to {out}")
    return 0
