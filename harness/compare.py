"""``tfbench compare``: regression verdicts between results directories.

Two modes, both working from the files alone (no TensorFlow):

* ``tfbench compare BASELINE [BASELINE ...] CANDIDATE`` matches cells by their
  factors and gives each a ratio candidate/baseline with a 95% CI and a verdict
  (REGRESSION / IMPROVEMENT / NO CHANGE / INCONCLUSIVE). Several baseline
  directories (``tfbench run --repeat K``) let it estimate the run-to-run
  spread; with one, an assumed ``--run-spread`` is used and the output says so.
* ``tfbench compare --within RUN --pair CELL_A CELL_B`` gives paired ratios
  B/A between two cells of one interleaved run (``tfbench run --interleave K``).

The method is described in docs/regression.md. Exit code 1 when any cell is a
REGRESSION, 0 otherwise, 2 for bad input.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness import stats
from harness.errors import UserError
from harness.records import FACTOR_COLUMNS, Results, load_results

FORMATS = ("table", "markdown", "csv", "json")


@dataclass(frozen=True)
class Metric:
    """A compared quantity: where it comes from and which direction is better."""

    name: str
    unit: str
    higher_is_better: bool
    per_step: bool  # True: from steps.csv; False: one value per run from configs.csv


METRICS: dict[str, Metric] = {
    m.name: m for m in (
        Metric("step_s", "s", higher_is_better=False, per_step=True),
        Metric("images_per_s", "img/s", higher_is_better=True, per_step=True),
        Metric("energy_j_per_image", "J/img", higher_is_better=False, per_step=False),
    )
}

# Machine-class fields: matched against dotted paths of environment.json (lower case).
_CLASS_FIELDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cpu model", re.compile(r"cpu[^.]*\.?[^.]*(model|brand)|^processor$")),
    ("gpus", re.compile(r"^gpus?(\.\d+)?$|^gpus?(\.\d+)?\.\w*(name|model)$")),
    ("tensorflow version", re.compile(r"^(tensorflow|tf)[_.](\w+[_.])?version$|^tensorflow$|"
                                      r"(cuda|cudnn)_version$")),
    ("jetpack / l4t", re.compile(r"jetpack|l4t")),
    ("jetson board", re.compile(r"^(jetson|board)\b.*(model|module)$")),
)
# Settings that change speed but are not the machine itself: warn, do not refuse.
_SETTING_FIELDS = re.compile(r"nvpmodel|jetson_clocks")
# Never part of the class, whatever the key says: measured, time-varying readings.
_VOLATILE = re.compile(r"freq|clock|mhz|ghz|temp|load|util|free|avail|used|power|uptime|"
                       r"started|time|date|pid|count|memory|mem_|bytes")


def parse_fraction(text: str, name: str, allow_zero: bool = False) -> float:
    """'5%' → 0.05, '0.05' → 0.05; a bare number >= 1 is refused as ambiguous."""
    raw = str(text).strip()
    allowed = "a percentage like 5% or a fraction like 0.05" + (" (>= 0)" if allow_zero
                                                                   else " (> 0)")
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError.invalid(name, text, allowed) from None
    if not raw.endswith("%") and value >= 1:
        raise UserError.invalid(name, text, allowed)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero) or value >= 10:
        raise UserError.invalid(name, text, allowed)
    return value


def _norm(value: Any) -> str:
    """Factor value as text: '' for missing, integral floats without '.0'."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    text = str(value)
    return "" if text in ("nan", "<NA>", "None") else text


CellKey = tuple[str, ...]


def cell_key(row: Mapping[str, Any]) -> CellKey:
    """The factor values of a configs.csv row: how cells are matched across runs."""
    return tuple(_norm(row.get(c)) for c in FACTOR_COLUMNS)


def cell_label(key: CellKey) -> str:
    """Readable cell name: ``mobilenet_v2/cpu/train/frozen/bs16`` (defaults left out)."""
    f = dict(zip(FACTOR_COLUMNS, key, strict=True))
    parts = [f["model"], f["device"], f["mode"]]
    if f["base"]:
        parts.append(f["base"])
    if f["engine"] not in ("tf", ""):
        parts.append(f["engine"])
    if f["precision"] not in ("fp32", ""):
        parts.append(f["precision"])
    parts.append(f"bs{f['batch_size']}")
    if f["weights"] not in ("random", ""):
        parts.append(f"w={f['weights']}")
    if f["data"] not in ("synthetic", ""):
        parts.append(f"data={f['data']}")
    return "/".join(parts)


@dataclass(frozen=True)
class CellRun:
    """One cell of one run: its status and, when ok, its measured values in time order."""

    key: CellKey
    config_id: str
    status: str
    reason: str
    values: tuple[float, ...]
    blocks: tuple[tuple[float, ...], ...]
    energy_confidence: str = ""


def _cells(results: Results, metric: Metric) -> dict[CellKey, CellRun]:
    """All cells of a run with the metric's values (time-ordered measured steps)."""
    configs = results.configs
    steps = results.steps
    measure = steps[steps["phase"] == "measure"]
    grouped = {str(cid): g for cid, g in measure.groupby("config_id", sort=False)}
    out: dict[CellKey, CellRun] = {}
    for row in configs.to_dict("records"):
        key = cell_key(row)
        cid = _norm(row.get("config_id"))
        status = _norm(row.get("status")) or "ok"
        values: tuple[float, ...] = ()
        blocks: tuple[tuple[float, ...], ...] = ()
        if status == "ok" and metric.per_step and cid in grouped:
            g = grouped[cid]
            order = [c for c in ("start_s", "step") if g[c].notna().all()]
            g = g.sort_values(order or ["step"], kind="stable")
            dur = g["duration_s"].to_numpy(dtype=float)
            if metric.name == "images_per_s":
                images = g["images"].where(g["images"].notna(), g["batch_size"])
                vals = images.to_numpy(dtype=float) / dur
            else:
                vals = dur
            values = tuple(float(v) for v in vals)
            if g["block"].notna().all():
                block_ids = g["block"].to_numpy(dtype=float)
                blocks = tuple(tuple(float(v) for v in vals[block_ids == b])
                               for b in sorted(set(block_ids)))
        elif status == "ok" and not metric.per_step:
            value = row.get(metric.name)
            if value is not None and isinstance(value, (int, float)) and math.isfinite(value):
                values = (float(value),)
        if key in out:
            raise UserError(f"{results.root}/configs.csv: cell {cell_label(key)} appears twice")
        out[key] = CellRun(key=key, config_id=cid, status=status,
                           reason=_norm(row.get("reason")), values=values, blocks=blocks,
                           energy_confidence=_norm(row.get("energy_confidence")))
    return out


# --- machine class --------------------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}.{i}"))
        return out
    return {prefix.lower(): "" if value is None else str(value)}


def machine_class(environment: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """What makes results comparable, from environment.json.

    Returns ``{"class": {...}, "settings": {...}}``: CPU model, GPU names,
    TensorFlow version and Jetson board/JetPack (a difference refuses the
    comparison), and power-mode settings (a difference warns). Measured,
    volatile readings such as clock speeds or temperatures never count.
    """
    flat = _flatten(environment)
    klass: dict[str, str] = {}
    settings: dict[str, str] = {}
    for path, value in sorted(flat.items()):
        if _SETTING_FIELDS.search(path):
            settings[path] = value
            continue
        if _VOLATILE.search(path.rsplit(".", 1)[-1]) and not path.endswith(("model", "name")):
            continue
        for _label, pattern in _CLASS_FIELDS:
            if pattern.search(path):
                klass[path] = value
                break
    return {"class": klass, "settings": settings}


def class_differences(named_envs: Sequence[tuple[str, Mapping[str, Any]]]
                      ) -> tuple[list[str], list[str]]:
    """Machine-class and setting differences between runs, as readable lines."""
    classes = [(name, machine_class(env)) for name, env in named_envs]
    found: dict[str, list[str]] = {"class": [], "settings": []}
    for part in ("class", "settings"):
        paths = sorted({p for _, c in classes for p in c[part]})
        for path in paths:
            seen = {name: c[part].get(path, "(absent)") for name, c in classes}
            if len(set(seen.values())) > 1:
                found[part].append(
                    f"{path}: " + ", ".join(f"{v!r} in {n}" for n, v in seen.items()))
    return found["class"], found["settings"]


# --- comparison -----------------------------------------------------------------------------


@dataclass
class CellResult:
    """The outcome for one cell (compared or listed)."""

    label: str
    factors: dict[str, str]
    status: str  # compared | baseline only | candidate only | not compared
    verdict: str = ""
    baseline_median: float | None = None
    candidate_median: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    baseline_runs: int = 0
    run_spread: float | None = None
    run_spread_source: str = ""
    note: str = ""


@dataclass
class Comparison:
    """All cells of one comparison plus what the reader must know about it."""

    mode: str  # runs | within
    metric: str
    unit: str
    threshold: float
    confidence: float
    baselines: list[str]
    candidate: str
    cells: list[CellResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> int:
        return sum(c.verdict == "REGRESSION" for c in self.cells)


def compare_runs(baselines: Sequence[Results], candidate: Results, metric: Metric,
                 threshold: float, run_spread: float,
                 confidence: float = 0.95) -> Comparison:
    """Per-cell ratio CIs and verdicts, candidate vs K baseline runs, BH across cells."""
    base_cells = [_cells(b, metric) for b in baselines]
    cand_cells = _cells(candidate, metric)
    comp = Comparison(mode="runs", metric=metric.name, unit=metric.unit, threshold=threshold,
                      confidence=confidence, baselines=[b.run_id for b in baselines],
                      candidate=candidate.run_id)
    keys = list(dict.fromkeys([k for bc in base_cells for k in bc] + list(cand_cells)))
    compared: list[tuple[CellResult, stats.RatioCI]] = []
    assumed_used = False
    for key in keys:
        res = CellResult(label=cell_label(key), factors=dict(zip(FACTOR_COLUMNS, key,
                                                                 strict=True)), status="")
        comp.cells.append(res)
        in_base = [bc[key] for bc in base_cells if key in bc]
        cand = cand_cells.get(key)
        if not in_base:
            res.status = "candidate only"
            continue
        if cand is None:
            res.status = "baseline only"
            continue
        res.status = "not compared"
        ok_base = [c for c in in_base if c.status == "ok"]
        if cand.status != "ok":
            res.note = f"candidate status {cand.status}" + (f": {cand.reason}" if cand.reason
                                                           else "")
            continue
        if not ok_base:
            c0 = in_base[0]
            res.note = f"baseline status {c0.status}" + (f": {c0.reason}" if c0.reason else "")
            continue
        try:
            ci, spread, base_med, cand_med = _cell_ci(ok_base, cand, metric, run_spread,
                                                      confidence)
        except _NotComparable as exc:
            res.note = str(exc)
            continue
        res.status = "compared"
        res.baseline_runs = len(ok_base)
        res.baseline_median, res.candidate_median = base_med, cand_med
        res.ratio, res.ci_low, res.ci_high = ci.ratio, ci.low, ci.high
        res.run_spread = spread.sigma
        res.run_spread_source = (f"estimated from {spread.runs} baseline runs" if spread.estimated
                                 else "assumed (--run-spread)")
        assumed_used = assumed_used or not spread.estimated
        if metric.name == "energy_j_per_image" and "low" in (
                cand.energy_confidence, *[b.energy_confidence for b in ok_base]):
            res.note = "energy_confidence low (few power samples per cell)"
        compared.append((res, ci))
    _set_verdicts(compared, threshold, metric, confidence)
    if assumed_used:
        comp.notes.append(
            f"between-run spread: assumed {_pct(run_spread)} (--run-spread) where fewer than "
            "two baseline runs had the cell; give several baseline directories "
            "(tfbench run --repeat K) to estimate it")
    elif compared:
        comp.notes.append("between-run spread: estimated per cell from the baseline runs")
    return comp


def _set_verdicts(compared: Sequence[tuple[CellResult, stats.RatioCI]], threshold: float,
                  metric: Metric, confidence: float) -> None:
    """Verdict, p and BH q for each compared cell (false discoveries controlled across them)."""
    results = stats.fdr_verdicts([ci for _, ci in compared], threshold,
                                 metric.higher_is_better, confidence)
    for (res, ci), (verdict, p, q) in zip(compared, results, strict=True):
        res.verdict, res.p_value, res.q_value = verdict, p, q
        if verdict == "INCONCLUSIVE" and stats.verdict(ci, threshold, metric.higher_is_better) \
                in ("REGRESSION", "IMPROVEMENT"):
            res.note = _join(res.note, "CI clears δ but not significant after "
                                       f"Benjamini-Hochberg across {len(compared)} cells")


class _NotComparable(Exception):
    """A cell that exists on both sides but cannot be compared (said in its note)."""


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


def _cell_ci(ok_base: Sequence[CellRun], cand: CellRun, metric: Metric, run_spread: float,
             confidence: float) -> tuple[stats.RatioCI, stats.RunSpread, float, float]:
    if metric.per_step:
        runs: list[stats.RunSummary] = []
        for c in (*ok_base, cand):
            try:
                runs.append(stats.summarize_run(c.values))
            except ValueError:
                raise _NotComparable(
                    f"{len(c.values)} measured steps in {c.config_id}; need at least "
                    f"{2 * stats.MIN_CHUNK_LEN} for a within-run error") from None
    else:
        # One value per run: within-run error unknown, the run-to-run spread carries it all.
        if any(not c.values or c.values[0] <= 0 for c in (*ok_base, cand)):
            raise _NotComparable(f"no {metric.name} recorded (no power sensor in one of the runs)")
        runs = [stats.RunSummary(median=c.values[0], log_se=0.0, n_chunks=1)
                for c in (*ok_base, cand)]
    base_runs, cand_run = runs[:-1], runs[-1]
    spread = (stats.between_run_spread(base_runs) if len(base_runs) >= 2
              else stats.assumed_spread(math.log1p(run_spread)))
    ci = stats.ratio_ci(cand_run, base_runs, spread, confidence)
    base_med = float(math.exp(np.mean([r.log_median for r in base_runs])))
    return ci, spread, base_med, cand_run.median


# --- within-run paired comparison ----------------------------------------------------------


def select_cell(cells: Mapping[CellKey, CellRun], selector: str, run: str) -> CellRun:
    """A cell by config_id, by label (``tiny_cnn/cpu/infer/bs8``), or by ``factor=value,...``."""
    for c in cells.values():
        if selector in (c.config_id, cell_label(c.key)):
            return c
    if "=" in selector:
        wanted: dict[str, str] = {}
        for part in selector.split(","):
            name, _, value = part.partition("=")
            name = name.strip()
            if name not in FACTOR_COLUMNS:
                raise UserError.invalid("--pair selector factor", name, FACTOR_COLUMNS)
            wanted[name] = value.strip()
        hits = [c for c in cells.values()
                if all(dict(zip(FACTOR_COLUMNS, c.key, strict=True))[n] == v
                       for n, v in wanted.items())]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise UserError(f"--pair: {selector!r} matches {len(hits)} cells in {run} "
                            f"({', '.join(cell_label(h.key) for h in hits)}); add factors")
    choices = ", ".join(c.config_id for c in cells.values())
    raise UserError.invalid(f"--pair cell in {run}", selector,
                            f"a config_id, a label or factor=value,... matching one of {choices}")


def compare_within(results: Results, pairs: Sequence[tuple[str, str]], metric: Metric,
                   threshold: float, confidence: float = 0.95) -> Comparison:
    """Paired block ratios B/A between cells of one interleaved run."""
    if not metric.per_step:
        raise UserError.invalid("--metric (with --within)", metric.name,
                                [m for m, s in METRICS.items() if s.per_step])
    cells = _cells(results, metric)
    comp = Comparison(mode="within", metric=metric.name, unit=metric.unit, threshold=threshold,
                      confidence=confidence, baselines=[results.run_id],
                      candidate=results.run_id)
    if not pairs:
        ok = [c for c in cells.values() if c.status == "ok"]
        if len(ok) != 2:
            raise UserError(f"--pair: {results.root} has {len(ok)} ok cells; name the two to "
                            "compare with --pair CELL_A CELL_B")
        pairs = [(ok[0].config_id, ok[1].config_id)]
    compared: list[tuple[CellResult, stats.RatioCI]] = []
    for sel_a, sel_b in pairs:
        a = select_cell(cells, sel_a, str(results.root))
        b = select_cell(cells, sel_b, str(results.root))
        label = f"{cell_label(b.key)} vs {cell_label(a.key)}"
        res = CellResult(label=label, factors={"a": a.config_id, "b": b.config_id},
                         status="not compared")
        comp.cells.append(res)
        bad = [c for c in (a, b) if c.status != "ok"]
        if bad:
            res.note = f"{bad[0].config_id} status {bad[0].status}: {bad[0].reason}"
            continue
        ids_a, ids_b = len(a.blocks), len(b.blocks)
        if min(ids_a, ids_b) < 2 or ids_a != ids_b:
            raise UserError(
                f"--within {results.root}: {a.config_id} has {ids_a} block(s) and "
                f"{b.config_id} {ids_b}; paired ratios need a run made with "
                "tfbench run --interleave K (K >= 2) and the same blocks on both sides")
        ci = stats.paired_block_ratio_ci(a.blocks, b.blocks, confidence)
        res.status = "compared"
        res.baseline_runs = ids_a
        res.baseline_median = float(np.median(a.values))
        res.candidate_median = float(np.median(b.values))
        res.ratio, res.ci_low, res.ci_high = ci.ratio, ci.low, ci.high
        res.run_spread_source = f"paired over {ids_a} interleaved blocks"
        res.note = f"CI width {ci.relative_width:.1%} of the ratio"
        compared.append((res, ci))
    _set_verdicts(compared, threshold, metric, confidence)
    comp.notes.append("ratio = B/A: geometric mean of per-block median ratios; machine drift "
                      "cancels within each block pair")
    return comp


# --- output ---------------------------------------------------------------------------------


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "" if value is None else format(value, fmt)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _line(comp: Comparison, c: CellResult) -> str:
    pct = _pct(comp.threshold)
    return (f"{comp.metric} [{c.label}] ratio {c.ratio:.3f}× "
            f"({comp.confidence:.0%} CI {c.ci_low:.3f}–{c.ci_high:.3f}) {c.verdict} (δ={pct})")


def render_table(comp: Comparison) -> str:
    """Plain text: one line per compared cell, then the cells that were only listed."""
    out: list[str] = []
    if comp.mode == "runs":
        out.append(f"baseline: {', '.join(comp.baselines)} ({len(comp.baselines)} run(s))")
        out.append(f"candidate: {comp.candidate}")
    else:
        out.append(f"within run: {comp.candidate} (paired, interleaved blocks)")
    out += [f"warning: {w}" for w in comp.warnings]
    out += [f"note: {n}" for n in comp.notes]
    out.append("")
    for c in comp.cells:
        if c.status != "compared":
            continue
        out.append(_line(comp, c))
        extra = (f"    {'A' if comp.mode == 'within' else 'baseline'} "
                 f"{_num(c.baseline_median)} {comp.unit} → "
                 f"{'B' if comp.mode == 'within' else 'candidate'} "
                 f"{_num(c.candidate_median)} {comp.unit}; BH q={_num(c.q_value, '.3g')}; "
                 f"{c.run_spread_source}")
        if c.run_spread is not None:
            extra += f" ({c.run_spread:.1%})"
        if c.note:
            extra += f"; {c.note}"
        out.append(extra)
    listed = [c for c in comp.cells if c.status != "compared"]
    if listed:
        out.append("")
        out.append("listed, not compared:")
        out += [f"  {c.label}: {c.status}" + (f" ({c.note})" if c.note else "") for c in listed]
    out.append("")
    out.append(_summary(comp))
    return "\n".join(out) + "\n"


def _summary(comp: Comparison) -> str:
    counts = {v: sum(c.verdict == v for c in comp.cells) for v in stats.VERDICTS}
    listed = sum(c.status != "compared" for c in comp.cells)
    return ("summary: " + ", ".join(f"{n} {v}" for v, n in counts.items())
            + f", {listed} listed only")


def render_markdown(comp: Comparison) -> str:
    """A Markdown table with the same content as the plain table."""
    out = [f"**{comp.metric}**: candidate `{comp.candidate}` vs baseline "
           f"{', '.join(f'`{b}`' for b in comp.baselines)}; δ={_pct(comp.threshold)}, "
           f"{comp.confidence:.0%} CI", ""]
    out += [f"> warning: {w}" for w in comp.warnings]
    out += [f"- {n}" for n in comp.notes]
    out += ["", "| cell | baseline | candidate | ratio | CI | verdict | BH q | note |",
            "|---|---:|---:|---:|---|---|---:|---|"]
    for c in comp.cells:
        if c.status == "compared":
            out.append(f"| {c.label} | {_num(c.baseline_median)} | {_num(c.candidate_median)} | "
                       f"{c.ratio:.3f}× | {c.ci_low:.3f}–{c.ci_high:.3f} | **{c.verdict}** | "
                       f"{_num(c.q_value, '.3g')} | {c.note} |")
        else:
            out.append(f"| {c.label} | | | | | {c.status} | | {c.note} |")
    out += ["", _summary(comp)]
    return "\n".join(out) + "\n"


CSV_COLUMNS = ("metric", "cell", *FACTOR_COLUMNS, "status", "verdict", "baseline_median",
               "candidate_median", "ratio", "ci_low", "ci_high", "p_value", "q_value",
               "baseline_runs", "run_spread", "run_spread_source", "threshold", "note")


def render_csv(comp: Comparison) -> str:
    """One row per cell; empty fields where a cell was not compared."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = CSV_COLUMNS if comp.mode == "runs" else tuple(
        c for c in CSV_COLUMNS if c not in FACTOR_COLUMNS)
    writer.writerow(columns)
    for c in comp.cells:
        row: dict[str, Any] = {**asdict(c), **(c.factors if comp.mode == "runs" else {}),
                               "metric": comp.metric, "cell": c.label,
                               "threshold": comp.threshold}
        writer.writerow(["" if row.get(k) is None else row.get(k) for k in columns])
    return buf.getvalue()


def render_json(comp: Comparison) -> str:
    data = asdict(comp)
    data["regressions"] = comp.regressions
    return json.dumps(data, indent=2) + "\n"


RENDERERS = {"table": render_table, "markdown": render_markdown, "csv": render_csv,
             "json": render_json}


# --- command --------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR",
                        help="BASELINE_DIR [BASELINE_DIR ...] CANDIDATE_DIR (the last is the "
                             "candidate); several baselines let the run-to-run spread be "
                             "estimated")
    parser.add_argument("--threshold", default="5%",
                        help="practical threshold δ: changes within ±δ count as no change "
                             "(default 5%%)")
    parser.add_argument("--metric", default="step_s", choices=tuple(METRICS),
                        help="what to compare (default step_s; images_per_s: higher is better)")
    parser.add_argument("--format", default="table", choices=FORMATS, dest="fmt",
                        help="output format (default table)")
    parser.add_argument("--run-spread", default="2%",
                        help="assumed run-to-run spread when only one baseline run has a cell "
                             "(default 2%%)")
    parser.add_argument("--force", action="store_true",
                        help="compare even when the machine class differs (CPU/GPU model, "
                             "TensorFlow version, JetPack)")
    parser.add_argument("--within", metavar="RUN_DIR",
                        help="paired comparison between cells of one interleaved run")
    parser.add_argument("--pair", nargs=2, action="append", metavar=("CELL_A", "CELL_B"),
                        default=[],
                        help="with --within: cells to compare (ratio B/A); a config_id, a "
                             "label like tiny_cnn/cpu/infer/bs8, or factor=value,...; "
                             "repeatable")


def run_command(args: argparse.Namespace) -> int:
    metric = METRICS[args.metric]
    threshold = parse_fraction(args.threshold, "--threshold")
    if args.within:
        if args.runs:
            raise UserError("--within: give the run directory to --within only, not also "
                            f"positional directories ({', '.join(args.runs)})")
        comp = compare_within(load_results(args.within), [tuple(p) for p in args.pair],
                              metric, threshold)
    else:
        if args.pair:
            raise UserError("--pair: only with --within RUN_DIR")
        if len(args.runs) < 2:
            raise UserError(f"runs: got {len(args.runs)} directory(ies); allowed: "
                            "BASELINE_DIR [BASELINE_DIR ...] CANDIDATE_DIR (at least two), "
                            "or --within RUN_DIR")
        run_spread = parse_fraction(args.run_spread, "--run-spread", allow_zero=True)
        loaded = [load_results(d) for d in args.runs]
        diffs, setting_diffs = class_differences(
            [(str(d), r.environment) for d, r in zip(args.runs, loaded, strict=True)])
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
        comp = compare_runs(loaded[:-1], loaded[-1], metric, threshold, run_spread)
        comp.warnings = warnings
    sys.stdout.write(RENDERERS[args.fmt](comp))
    return 1 if comp.regressions else 0
