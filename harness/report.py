"""A Markdown (or self-contained HTML) writeup of results directories: ``tfbench report``.

The report holds the environment of each run, a summary table with one row per
cell, short findings stated with numbers and 95% CIs, the charts of
`harness.plots`, and every cell that did not run with its reason. All numbers
are recomputed from the CSV files (measure-phase steps only); TensorFlow is
never imported.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import plots
from harness.errors import UserError
from harness.plots import Chart, Ratio, RunSet, env_get, fmt_number

_MIB = 1024.0 * 1024.0

# How to read each chart, one sentence (docs/charts.md has the long form).
CHART_HELP = {
    "step_times": "Each box spans the middle half of a cell's measured steps; whiskers reach "
                  "1.5× the box; dots are outliers. A wide box means noisy steps.",
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
              "TensorFlow reported.",
    "batch_size": "Throughput of the same configuration at several batch sizes.",
}


# --------------------------------------------------------------------------- document


@dataclass
class Doc:
    """A small document model rendered both to Markdown and to HTML."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", (list(header), [list(r) for r in rows])))

    def image(self, chart: Chart) -> None:
        self.blocks.append(("img", chart))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: Doc, image_paths: Mapping[str, str]) -> str:
    """Markdown with images referenced by relative path."""
    out: list[str] = []
    for kind, value in doc.blocks:
        if kind == "h":
            level, text = value
            out.append(f"{'#' * level} {text}\n")
        elif kind == "p":
            out.append(f"{value}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in value) + "\n")
        elif kind == "table":
            header, rows = value
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
            out.append("")
        elif kind == "img":
            chart: Chart = value
            out.append(f"![{chart.title}]({image_paths[chart.name]})\n")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}code{background:#f5f5f5}"""


def render_html(doc: Doc, title: str) -> str:
    """One self-contained page: images embedded as base64 PNG."""
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for kind, value in doc.blocks:
        if kind == "h":
            level, text = value
            out.append(f"<h{level}>{_inline_html(text)}</h{level}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(value)}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in value) + "</ul>")
        elif kind == "table":
            header, rows = value
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline_html(h)}</th>"
                                                      for h in header) + "</tr></thead><tbody>")
            out.extend("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                       for row in rows)
            out.append("</tbody></table>")
        elif kind == "img":
            chart: Chart = value
            assert chart.figure is not None
            buf = io.BytesIO()
            chart.figure.savefig(buf, format="png", dpi=plots.DPI)
            data = base64.b64encode(buf.getvalue()).decode("ascii")
            out.append(f"<figure><img alt=\"{html.escape(chart.title)}\" "
                       f"src=\"data:image/png;base64,{data}\"></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- content

_ENV_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("host", ("host", "hostname", "machine.host")),
    ("run id", ("run_id",)),
    ("started (UTC)", ("started_at_utc", "started_at")),
    ("OS", ("os", "platform", "os.name", "system")),
    ("Python", ("python", "python_version", "python.version")),
    ("TensorFlow", ("tensorflow.version", "tensorflow_version", "tf_version", "tensorflow")),
    ("CUDA", ("tensorflow.cuda", "tensorflow.cuda_version", "tensorflow_build.cuda_version",
              "build_info.cuda_version", "cuda_version", "cuda")),
    ("cuDNN", ("tensorflow.cudnn", "tensorflow.cudnn_version", "tensorflow_build.cudnn_version",
               "build_info.cudnn_version", "cudnn_version", "cudnn")),
    ("TensorRT", ("tensorflow.tensorrt", "tensorflow.tensorrt_version", "tensorrt_version",
                  "tensorrt")),
    ("CUDA build", ("tensorflow_build.is_cuda_build",)),
    ("Keras", ("keras_version", "keras.version", "keras")),
    ("CPU", ("cpu.model", "cpu_model", "cpu.brand", "processor")),
    ("CPU count", ("cpu.count", "cpu_count", "cpu.logical")),
    ("GPUs", ("gpus",)),
    ("Jetson board", ("jetson.model", "jetson.board.model", "jetson.hardware.Model",
                      "jetson_board.model", "board.model")),
    ("JetPack", ("jetson.jetpack", "jetson.hardware.Jetpack", "jetpack")),
    ("L4T", ("jetson.l4t", "jetson.hardware.L4T", "l4t")),
    ("power mode (nvpmodel)", ("jetson.nvpmodel", "nvpmodel")),
    ("jetson_clocks", ("jetson.jetson_clocks", "jetson_clocks")),
    ("tfbench", ("tfbench_version", "project_version", "version")),
    ("git commit", ("git_commit", "git.commit", "commit")),
    ("command line", ("command_line", "argv", "command")),
)


def _env_text(value: Any, label: str = "") -> str:
    if value is None:
        return ""
    if label == "command line" and isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, Mapping) and "enabled" in value:  # e.g. TensorRT availability
        if not value.get("enabled"):
            return "not available"
        return str(value.get("loaded") or value.get("linked") or "available")
    if isinstance(value, bool):
        if label == "jetson_clocks":
            return "on" if value else "off"
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v.get("name", v)) if isinstance(v, Mapping) else str(v)
                         for v in value)
    if isinstance(value, Mapping):
        return str(value.get("version", value.get("name", ""))) or ", ".join(
            f"{k}={v}" for k, v in value.items())
    return str(value)


def environment_rows(rs: RunSet) -> list[list[str]]:
    """Field-by-run rows; fields no run records are left out."""
    rows = []
    for label, paths in _ENV_FIELDS:
        values = [_env_text(env_get(r.environment, *paths), label) for r in rs.results]
        if label == "GPUs":
            values = [v or ("none" if r.environment.get("gpus") == [] else "")
                      for v, r in zip(values, rs.results, strict=True)]
        if any(values):
            rows.append([label, *[v or "—" for v in values]])
    return rows


def _mib(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    return "—" if not np.isfinite(v) else f"{v / _MIB:,.0f}"


def _num(value: Any, scale: float = 1.0) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    return fmt_number(v * scale) if np.isfinite(v) else "—"


def _parity_note(row: Mapping[str, Any]) -> str:
    ok = plots.truthy(row.get("parity_ok"))
    if ok is None:
        return ""
    cosine = pd.to_numeric(pd.Series([row.get("parity_cosine")]), errors="coerce").iloc[0]
    detail = f"max rel err {_num(row.get('parity_max_rel_err'))}, " \
             f"cosine {'—' if pd.isna(cosine) else f'{cosine:.5f}'}"
    return f"**parity FAIL** ({detail})" if not ok else f"parity ok ({detail})"


_OPTIONAL_COLUMNS = {
    "energy (mJ/image)": "energy per image (no power sampler: jtop, tegrastats or NVML)",
    "peak device mem (MiB)": "peak device memory (no GPU cell)",
    "peak host RSS (MiB)": "peak host RSS",
}


def summary_rows(rs: RunSet, table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The summary table: one row per cell, numbers recomputed from steps.csv."""
    header = (["run"] if rs.several else []) + [
        "cell", "status", "median step (ms)", "p90 (ms)", "images/s (95% CI)",
        "energy (mJ/image)", "peak host RSS (MiB)", "peak device mem (MiB)", "notes"]
    rows = []
    for r in _sorted(table).to_dict("records"):
        ok = r["status"] == "ok"
        notes = [n for n in (_parity_note(r),) if n]
        energy = _num(r.get("energy_j_per_image"), 1000.0) if ok else "—"
        if ok and energy != "—" and str(r.get("energy_confidence", "")).lower() == "low":
            energy += " (low confidence)"
        ips = "—"
        if ok and np.isfinite(r.get("images_per_s", np.nan)):
            ips = (f"{fmt_number(r['images_per_s'])} ({fmt_number(r['images_per_s_ci_low'])}–"
                   f"{fmt_number(r['images_per_s_ci_high'])})")
        rows.append(([str(r["run"])] if rs.several else []) + [
            str(r["cell"]), str(r["status"]),
            _num(r.get("step_s_median"), 1000.0) if ok else "—",
            _num(r.get("step_s_p90"), 1000.0) if ok else "—",
            ips, energy,
            _mib(r.get("host_rss_peak_bytes")) if ok else "—",
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
        text = text.replace("frozen is", "Training with a frozen base is", 1).replace(
            "than unfrozen", "than full fine-tuning (unfrozen)", 1)
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
    for mode in plots._modes(ok):
        best = ok[ok["mode"] == mode].sort_values("images_per_s").iloc[-1]
        flag = " (its parity check failed)" if best["parity_flag"] else ""
        run = f" on {best['run']}" if rs.several else ""
        out.append(f"Highest {_mode_word(mode)} throughput: {fmt_number(best['images_per_s'])} "
                   f"images/s (95% CI {fmt_number(best['images_per_s_ci_low'])}–"
                   f"{fmt_number(best['images_per_s_ci_high'])}) for {best['cell']}{run}{flag}.")
    energy = ok[ok["energy_j_per_image"].notna()]
    solid = energy[energy["energy_confidence"].astype(str).str.lower() != "low"]
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
    table = plots.cell_table(rs)
    usable = bool((rs.configs["status"] == "ok").any())
    ratios = plots.speedups(rs, table) if usable else []
    title = f"tfbench report: {rs.machine()}"
    doc = Doc()
    doc.heading(1, title)
    dirs = ", ".join(f"`{r.root}`" for r in rs.results)
    doc.para(f"Made from {dirs}. Statistics use measure-phase steps only; medians come with "
             "distribution-free 95% confidence intervals, and speed-ups with 95% CIs on the "
             "log scale from chunk medians (robust to autocorrelated steps).")
    doc.heading(2, "Environment")
    doc.table(["", *rs.labels], environment_rows(rs))
    warnings = [f"{label}: {w}" for label, r in zip(rs.labels, rs.results, strict=True)
                for key in ("warnings", "jetson.warning", "jetson.warnings", "sampling.problems")
                for w in _as_list(env_get(r.environment, key))]
    doc.bullets(warnings)
    charts: list[Chart] = []
    if not usable:
        counts = ", ".join(f"{n} {s}" for s, n in rs.configs["status"].value_counts().items())
        doc.heading(2, "No results to analyse")
        doc.para(f"No cell finished with status ok ({counts or 'no cells'}), so there are no "
                 "step statistics, findings or charts. The reasons are listed below.")
    else:
        doc.heading(2, "Findings")
        doc.bullets(findings(rs, table, ratios))
        doc.heading(2, "Summary")
        header, rows = summary_rows(rs, table)
        empty = [i for i, h in enumerate(header)
                 if h in _OPTIONAL_COLUMNS and all(r[i] == "—" for r in rows)]
        doc.table([h for i, h in enumerate(header) if i not in empty],
                  [[c for i, c in enumerate(r) if i not in empty] for r in rows])
        if empty:
            doc.para("Not recorded in these runs: "
                     + "; ".join(_OPTIONAL_COLUMNS[header[i]] for i in empty) + ".")
        if ratios:
            doc.heading(2, "Speed-ups")
            doc.para("A over B = median step time of B ÷ median step time of A (> 1: A is "
                     "faster), for cells that differ in that factor only.")
            doc.table(["comparison", "A over B", "other factors"]
                      + (["run"] if rs.several else []) + ["speed-up (95% CI)", "CI method"],
                      [[r.kind, f"{r.a} over {r.b}" + (" (parity FAIL)" if r.parity_fail else ""),
                        r.context or "—"] + ([r.run or "both"] if rs.several else [])
                       + [_ci(r.value, r.low, r.high), r.method] for r in ratios])
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


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v]
    return [str(value)] if value else []


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
    if out.exists() and out.is_dir():
        raise UserError(f"--out: {str(out)!r} is a directory; allowed: a file path")
    rs = plots.load_runs(args.results_dirs)
    paths = write_report(rs, out, as_html=args.html)
    print(f"wrote {out}" + (f" and {len(paths) - 1} chart files" if len(paths) > 1 else ""))
    if not (rs.configs["status"] == "ok").any():
        print("tfbench: note: no cell finished with status ok; the report lists what is "
              "missing", file=sys.stderr)
    return 0
