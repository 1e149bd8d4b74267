"""A Markdown (or self-contained HTML) writeup of results directories: ``tfbench report``.

The report holds the environment of each run, a summary table with one row per
cell, short findings stated with numbers and 95% CIs, the charts of
`harness.plots`, and every cell that did not run with its reason. All numbers
are recomputed from the CSV files (measure-phase steps only); TensorFlow is
never imported.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import plots
from harness import report_checks as checks
from harness.accuracy_charts import CHART_HELP as ACCURACY_CHART_HELP
from harness.accuracy_report import findings as accuracy_findings
from harness.chartkit import MIB, Chart, fmt_number, modes_of
from harness.envmodel import Environment
from harness.records import flag, number, text
from harness.report_doc import Doc, render_html, render_markdown
from harness.runset import RunSet, cell_table, load_runs
from harness.speedups import Ratio, speedups

# How to read each chart, one sentence (docs/charts.md has the long form).
CHART_HELP = {
    "step_times": "Each box spans the middle half of a cell's measured steps (compute: the "
                  "timed step); whiskers reach 1.5× the box; dots are outliers; the label is "
                  "the median. A cross marks the median input wait of image-folder cells.",
    "throughput": "Images per second at the median step time; whiskers are the 95% CI from "
                  "the median's distribution-free interval.",
    "speedups": "Median step time of B divided by that of A for two cells that differ in one "
                "factor only; right of the dashed line A is faster. Whiskers: 95% CI.",
    "step_timeline": "Every step in the order it ran; the grey band is warm-up, left out of "
                     "all statistics. A slope after it is drift (thermal, memory).",
    "power": "Total board power from the sampler; shaded bands are the measured windows, "
             "numbered as in the key.",
    "energy": "Power integrated over each measured window, divided by the images processed. "
              "Hollow points rest on few power samples and are rough.",
    "memory": "Peak resident memory of the worker process and peak device memory "
              "the cell's engine reported.",
    "batch_size": "Throughput of the same configuration at several batch sizes; colour and "
                  "marker name the engine, each line's end is labelled.",
    "energy_batch_size": "Energy per image of the same configuration at several batch sizes "
                         "(lower is better); hollow points rest on few power samples.",
}
CHART_HELP.update(ACCURACY_CHART_HELP)  # fit-mode charts (harness.accuracy_charts)


# --------------------------------------------------------------------------- content

def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def environment_fields(env: Environment) -> list[tuple[str, str | None]]:
    """The report's environment rows for one run, read from the typed model (None: unknown)."""
    build, board = env.tensorflow_build, env.jetson
    gpus = None if env.gpus is None else (", ".join(g.describe() for g in env.gpus) or "none")
    if env.gpus == () and build is not None and build.is_cuda_build:
        gpus = "none (CUDA build, no GPU visible)"
    samplers = ", ".join(f"{n} ({s})" if s != "active" else n
                         for n, s in env.samplers.items()) or None
    return [
        ("host", env.host), ("run id", env.run_id), ("started (UTC)", env.started_at_utc),
        ("OS", env.os), ("Python", env.python), ("TensorFlow", env.tensorflow_version),
        ("CUDA", build.cuda_version if build else None),
        ("cuDNN", build.cudnn_version if build else None),
        ("TensorRT", env.tensorrt.describe() if env.tensorrt else None),
        ("CUDA build", _yes_no(build.is_cuda_build) if build else None),
        ("Keras", env.keras_version), ("CPU", env.cpu_model),
        ("CPU count", None if env.cpu_count is None else str(env.cpu_count)),
        ("GPUs", gpus),
        ("Jetson board", board.model if board else None),
        ("JetPack", board.jetpack if board else None),
        ("L4T", board.l4t if board else None),
        ("power mode (nvpmodel)", board.nvpmodel if board else None),
        ("jetson_clocks", board.jetson_clocks if board else None),
        ("samplers", samplers),
        ("tfbench", env.tfbench_version), ("git commit", env.git_commit),
        ("command line", " ".join(env.command_line) or None),
    ]


def environment_rows(rs: RunSet) -> list[list[str]]:
    """Field-by-run rows; fields no run records are left out."""
    per_run = [environment_fields(r.environment) for r in rs.results]
    rows = []
    for i, (label, _) in enumerate(per_run[0]):
        values = [fields[i][1] or "" for fields in per_run]
        if any(values):
            rows.append([label, *[v or "—" for v in values]])
    return rows


def _mib(value: Any) -> str:
    v = number(value)
    return "—" if v is None else f"{v / MIB:,.0f}"


def _num(value: Any, scale: float = 1.0) -> str:
    v = number(value)
    return "—" if v is None else fmt_number(v * scale)


def _parity_note(row: Mapping[str, Any]) -> str:
    ok = flag(row.get("parity_ok"))
    if ok is None:
        return ""
    cosine = number(row.get("parity_cosine"))
    detail = f"max rel err {_num(row.get('parity_max_rel_err'))}, " \
             f"cosine {'—' if cosine is None else f'{cosine:.5f}'}"
    return f"**parity FAIL** ({detail})" if not ok else f"parity ok ({detail})"


def _ci_note(row: Mapping[str, Any]) -> str:
    if flag(row.get("ci_target_met")) is not False:
        return ""
    target = number(row.get("target_ci_rel"))
    return "**CI target missed**" + (f" (±{target:.0%}; see findings)" if target else "")


def _input_wait(row: Mapping[str, Any]) -> str:
    wait = number(row.get("input_wait_s_median"))
    if row["status"] != "ok" or wait is None or text(row.get("data")) == "synthetic":
        return "—"
    step = number(row.get("step_s_median")) or 0.0
    share = wait / (wait + step) if wait + step > 0 else 0.0
    return f"{fmt_number(wait * 1e3)} ({share:.0%})"


_OPTIONAL_COLUMNS = {
    "input wait (ms, share)": "",  # shown for image-folder input only (synthetic: in memory)
    "notes": "",
    "energy (mJ/image)": "energy per image (no power sampler: jtop, tegrastats or NVML)",
    "peak device mem (MiB)": "peak device memory (no GPU cell)",
    "peak host RSS (MiB)": "peak host RSS in the timed phase (no psutil rss sample inside "
                           "the measured windows)",
    "lifetime RSS (MiB)": "the worker's lifetime RSS peak",
}


def summary_rows(rs: RunSet, table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The summary table: one row per cell, numbers recomputed from steps.csv."""
    header = (["run"] if rs.several else []) + [
        "cell", "status", "median step (ms)", "p90 (ms)", "images/s (95% CI)",
        "input wait (ms, share)", "energy (mJ/image)", "peak host RSS (MiB)",
        "lifetime RSS (MiB)",
        "peak device mem (MiB)", "notes"]
    rows = []
    for r in _sorted(table).to_dict("records"):
        ok = r["status"] == "ok"
        notes = [n for n in (_parity_note(r), _ci_note(r)) if n]
        energy = _num(r.get("energy_j_per_image"), 1000.0) if ok else "—"
        if ok and energy != "—" and text(r.get("energy_confidence")) == "low":
            energy += " (low confidence)"
        ips = "—"
        if ok and np.isfinite(r.get("images_per_s", np.nan)):
            ips = (f"{fmt_number(r['images_per_s'])} ({fmt_number(r['images_per_s_ci_low'])}–"
                   f"{fmt_number(r['images_per_s_ci_high'])})")
        rows.append(([str(r["run"])] if rs.several else []) + [
            str(r["cell"]), str(r["status"]),
            _num(r.get("step_s_median"), 1000.0) if ok else "—",
            _num(r.get("step_s_p90"), 1000.0) if ok else "—",
            ips, _input_wait(r), energy,
            _mib(r.get("host_rss_peak_bytes")) if ok else "—",
            _mib(r.get("host_rss_lifetime_peak_bytes")) if ok else "—",
            _mib(r.get("device_mem_peak_bytes")) if ok else "—",
            "; ".join(notes),
        ])
    return header, rows


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    order = {label: i for i, label in enumerate(table["run"].drop_duplicates())}
    return table.assign(_run=table["run"].map(order)).sort_values(
        ["_run", "model", "device", "mode", "base", "engine", "precision", "batch_size"],
        kind="stable").drop(columns="_run")


def _ci(v: float, lo: float, hi: float) -> str:
    return f"{v:.2f}× ({lo:.2f}–{hi:.2f})"


def _mode_word(mode: str) -> str:
    return {"infer": "inference", "train": "training"}.get(mode, mode)


def finding_for(ratio: Ratio, rows: Mapping[str, Mapping[str, Any]], several: bool) -> str:
    """One sentence with the number and its CI for one speed-up."""
    a = rows[ratio.a_key]
    where = "; ".join(p for p in (ratio.context, ratio.run if several else "") if p)
    where_text = f" ({where})" if where else ""
    if ratio.kind == "model over model":
        device = "CPU" if str(a["device"]) == "cpu" else "GPU"
        text = (f"{ratio.b} {_mode_word(str(a['mode']))} steps take "
                f"{_ci(ratio.value, ratio.low, ratio.high)} as long as {ratio.a} on this "
                f"{device}{where_text}.")
    elif ratio.value >= 1:
        text = (f"{ratio.a} is {_ci(ratio.value, ratio.low, ratio.high)} faster per step than "
                f"{ratio.b}{where_text}.")
    else:
        text = (f"{ratio.a} takes {_ci(1 / ratio.value, 1 / ratio.high, 1 / ratio.low)} as "
                f"long per step as {ratio.b}{where_text}.")
    if ratio.kind == "frozen over unfrozen":
        text = (text.replace("frozen is", "Training with a frozen base is", 1)
                .replace("frozen takes", "Training with a frozen base takes", 1)
                .replace("than unfrozen", "than full fine-tuning (unfrozen)", 1)
                .replace("as unfrozen", "as full fine-tuning (unfrozen)", 1))
    if ratio.parity_fail:
        text += (" Its outputs failed the parity check against TF fp32, so this is not a "
                 "like-for-like speed-up.")
    return text


def findings(rs: RunSet, table: pd.DataFrame, ratios: Sequence[Ratio],
             per_kind: int = 6) -> list[str]:
    """Short statements with numbers: speed-ups, best cells, warm-up, parity, failures."""
    out: list[str] = []
    rows = {str(r["key"]): r for r in table.to_dict("records")}
    ok = table[(table["status"] == "ok") & table["images_per_s"].notna()]
    kinds = dict.fromkeys(r.kind for r in ratios)
    for kind in kinds:
        rr = [r for r in ratios if r.kind == kind]
        if kind == "run over run" and len(rr) > per_kind:
            values = np.array([r.value for r in rr])
            out.append(f"Across {len(rr)} cells run on both, {rr[0].a} is "
                       f"{np.median(values):.2f}× as fast as {rr[0].b} per step (median; "
                       f"range {values.min():.2f}–{values.max():.2f}×).")
        if kind == "run over run" and len(rr) > per_kind:
            continue
        out.extend(finding_for(r, rows, rs.several) for r in rr[:per_kind])
        if len(rr) > per_kind and kind != "run over run":
            out.append(f"… and {len(rr) - per_kind} more {kind} comparisons in the speed-up "
                       "table below.")
    for mode in modes_of(ok):
        best = ok[ok["mode"] == mode].sort_values("images_per_s").iloc[-1]
        failed = " (its parity check failed)" if best["parity_flag"] else ""
        run = f" on {best['run']}" if rs.several else ""
        out.append(f"Highest {_mode_word(mode)} throughput: {fmt_number(best['images_per_s'])} "
                   f"images/s (95% CI {fmt_number(best['images_per_s_ci_low'])}–"
                   f"{fmt_number(best['images_per_s_ci_high'])}) for {best['cell']}{run}{failed}.")
    energy = ok[ok["energy_j_per_image"].notna()]
    solid = energy[energy["energy_confidence"].map(text) != "low"]
    if len(solid):
        best = solid.sort_values("energy_j_per_image").iloc[0]
        run = f" on {best['run']}" if rs.several else ""
        out.append(f"Lowest energy per image (of cells with enough power samples): "
                   f"{fmt_number(best['energy_j_per_image'] * 1000)} mJ for {best['cell']}{run}.")
    if len(energy) > len(solid):
        out.append(f"{len(energy) - len(solid)} cells have low-confidence energy figures "
                   "(their measured window spans few power samples).")
    first = ok[ok["first_step_s"].notna() & ok["step_s_median"].notna()]
    if len(first):
        ratio = first["first_step_s"] / first["step_s_median"]
        worst = first.loc[ratio.idxmax()]
        run = f" on {worst['run']}" if rs.several else ""
        longest = first.loc[first["first_step_s"].idxmax()]
        run_long = f" on {longest['run']}" if rs.several else ""
        out.append(f"The first call (tracing, compilation, engine build) took up to "
                   f"{longest['first_step_s']:.2f} s ({longest['cell']}{run_long}) and up to "
                   f"{ratio.max():.0f}× the median step ({worst['cell']}{run}); it and the "
                   "warm-up steps are left out of the statistics.")
    for r in table[table["parity_flag"]].to_dict("records"):
        out.append(f"{r['cell']}" + (f" on {r['run']}" if rs.several else "")
                   + " failed the output parity check "
                   + _parity_note(r)[len("**parity FAIL** "):]
                   + ": its speed is not comparable with TF fp32.")
    not_ok = table[table["status"] != "ok"]
    if len(not_ok):
        counts = ", ".join(f"{n} {s}" for s, n in not_ok["status"].value_counts().items())
        out.append(f"{len(not_ok)} of {len(table)} cells did not run to the end ({counts}); "
                   "see the last section for reasons.")
    return out


def build_report(rs: RunSet) -> tuple[Doc, list[Chart], str]:
    """The whole writeup as a document, the charts it embeds and its title."""
    from harness import ab_charts  # [ab hook] an ab run gets its own report

    if ab_charts.is_ab(rs):
        doc_ab, charts_ab, title_ab = ab_charts.report(rs)
        return doc_ab, charts_ab, title_ab
    table = cell_table(rs)
    usable = bool((rs.configs["status"] == "ok").any())
    ratios = speedups(rs, table) if usable else []
    title = f"tfbench report: {rs.machine()}"
    doc = Doc()
    doc.heading(1, title)
    missing = checks.unavailable_lines(rs)
    if missing:
        doc.para("**Requested but not available on this machine** (their cells were skipped, "
                 "their samplers did not run):")
        doc.bullets(missing)
    dirs = ", ".join(f"`{r.root}`" for r in rs.results)
    doc.para(f"Made from {dirs}. Statistics use measure-phase steps only; medians come with "
             "distribution-free 95% confidence intervals, and speed-ups with 95% CIs on the "
             "log scale: paired over blocks for interleaved cells, otherwise from chunk "
             "medians (robust to autocorrelated steps); the table names the method per row.")
    doc.heading(2, "Environment")
    doc.table(["", *rs.labels], environment_rows(rs))
    warnings = [f"{label}: {w}" for label, r in zip(rs.labels, rs.results, strict=True)
                for w in r.environment.warnings()]
    doc.bullets(warnings)
    charts: list[Chart] = []
    if not usable:
        counts = ", ".join(f"{n} {s}" for s, n in rs.configs["status"].value_counts().items())
        doc.heading(2, "No results to analyse")
        doc.para(f"No cell finished with status ok ({counts or 'no cells'}), so there are no "
                 "step statistics, findings or charts. The reasons are listed below.")
    else:
        doc.heading(2, "Findings")
        doc.bullets(checks.best_batch_sizes(rs, table) + findings(rs, table, ratios)
                    + accuracy_findings(rs.configs) + checks.input_wait_findings(rs, table))
        misses = checks.ci_target_misses(rs, table)
        if misses:
            doc.heading(3, "Confidence target missed")
            doc.para("These cells stopped at max_measured_steps with a wider CI than "
                     "target_ci_rel asked for; the likely cause is read from their steps.")
            doc.bullets(misses)
        doc.heading(2, "Plausibility checks")
        implausible = checks.plausibility(rs, table, ratios)
        doc.para("Checked: a training step faster than the same model's inference step; "
                 "throughput falling as the batch grows; an engine speed-up far (beyond "
                 f"{checks.BASELINE_FACTOR:g}×) from the stored baseline. A finding is stated "
                 "only where the 95% CI excludes the plausible side."
                 + ("" if implausible else " Nothing implausible was found."))
        doc.bullets(implausible)
        doc.heading(2, "Summary")
        header, rows = summary_rows(rs, table)
        empty = [i for i, h in enumerate(header)
                 if h in _OPTIONAL_COLUMNS and all(r[i] in ("—", "") for r in rows)]
        doc.table([h for i, h in enumerate(header) if i not in empty],
                  [[c for i, c in enumerate(r) if i not in empty] for r in rows])
        said = [_OPTIONAL_COLUMNS[header[i]] for i in empty if _OPTIONAL_COLUMNS[header[i]]]
        if said:
            doc.para("Not recorded in these runs: " + "; ".join(said) + ".")
        if ratios:
            doc.heading(2, "Speed-ups")
            doc.para("A over B = median step time of B ÷ median step time of A (> 1: A is "
                     "faster), for cells that differ in that factor only.")
            doc.table(["A over B", "other factors"]
                      + (["run"] if rs.several else []) + ["speed-up (95% CI)", "CI method"],
                      [[f"{r.a} over {r.b}" + (" (parity FAIL)" if r.parity_fail else ""),
                        r.context or "—"] + ([r.run or "both"] if rs.several else [])
                       + [_ci(r.value, r.low, r.high), r.method] for r in ratios])
        from harness.profile_report import add_section  # profiling hook

        add_section(doc, rs)
        charts = plots.build_charts(rs)
        doc.heading(2, "Charts")
        for chart in charts:
            if chart.made:
                doc.heading(3, chart.title)
                doc.para(CHART_HELP.get(chart.name, ""))
                doc.image(chart)
        missing = [f"{c.name}: {c.reason}" for c in charts if not c.made]
        if missing:
            doc.heading(3, "Charts not made")
            doc.bullets(missing)
    not_ok = _sorted(table[table["status"] != "ok"])
    doc.heading(2, "Cells that did not run")
    if len(not_ok):
        doc.table((["run"] if rs.several else []) + ["cell", "status", "reason"],
                  [([str(r["run"])] if rs.several else [])
                   + [str(r["cell"]), str(r["status"]), str(r["reason"]) or "(none recorded)"]
                   for r in not_ok.to_dict("records")])
    else:
        doc.para("Every cell ran.")
    return doc, charts, title


def write_report(rs: RunSet, out: Path, as_html: bool = False) -> list[Path]:
    """Write the report (and, for Markdown, its charts beside it); return the files."""
    doc, charts, title = build_report(rs)
    out.parent.mkdir(parents=True, exist_ok=True)
    if as_html:
        out.write_text(render_html(doc, title))
        return [out]
    chart_dir = out.parent / f"{out.stem}-charts"
    written = plots.save_charts(charts, chart_dir, ("png",)) if charts else []
    paths = {c.name: f"{chart_dir.name}/{c.name}.png" for c in charts if c.made}
    out.write_text(render_markdown(doc, paths))
    return [out, *written]


# --------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", type=Path,
                        help="one or more results directories; several are compared side by side")
    parser.add_argument("--out", type=Path, default=None,
                        help="report file (default: <first RESULTS_DIR>/report.md, or "
                             "report.html with --html); Markdown charts go in <stem>-charts/")
    parser.add_argument("--html", action="store_true",
                        help="write one self-contained HTML page with the images embedded")


def run_command(args: argparse.Namespace) -> int:
    out = args.out
    if out is None:
        out = Path(args.results_dirs[0]) / ("report.html" if args.html else "report.md")
    from harness.outpaths import check_out_file

    check_out_file(out)
    rs = load_runs(args.results_dirs)
    paths = write_report(rs, out, as_html=args.html)
    print(f"wrote {out}" + (f" and {len(paths) - 1} chart files" if len(paths) > 1 else ""))
    if not (rs.configs["status"] == "ok").any():
        print("tfbench: note: no cell finished with status ok; the report lists what is "
              "missing", file=sys.stderr)
    return 0
