"""Per-cell comparisons between results directories: the numbers behind ``tfbench compare``.

`compare_runs` matches cells of K baseline runs and a candidate by their
factors and gives each a ratio candidate/baseline with a CI and a verdict;
`compare_within` gives paired ratios B/A between two cells of one interleaved
run. Both use `stats.step_ratio_ci`, the project's one ratio rule, and
Benjamini-Hochberg across cells. Reads results only through `records`; no
TensorFlow, no output formatting (that is `compare_render`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness import guard, stats
from harness.errors import UserError
from harness.records import FACTOR_COLUMNS, Results, number, text
from harness.runset import cell_label as _label


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
        # memory gates (harness.gates)
        Metric("host_rss_peak_bytes", "B", higher_is_better=False, per_step=False),
        Metric("device_mem_peak_bytes", "B", higher_is_better=False, per_step=False),
    )
}

# Machine-class fields: matched against dotted paths of environment.json (lower case).


CellKey = tuple[str, ...]


def cell_key(row: Mapping[str, object]) -> CellKey:
    """The factor values of a configs.csv row: how cells are matched across runs."""
    return tuple(text(row.get(c)) for c in FACTOR_COLUMNS)


def cell_label(key: CellKey) -> str:
    """Readable cell name: ``mobilenet_v2/cpu/train/frozen/bs16`` (defaults left out)."""
    return _label(dict(zip(FACTOR_COLUMNS, key, strict=True)))


@dataclass(frozen=True)
class CellRun:
    """One cell of one run: its status and, when ok, its measured values in time order.

    ``block_ids`` gives each value's block; ``block_order`` is configs.csv's
    ``interleaved`` / ``sequential``, or ``""`` where the file does not record it.
    """

    key: CellKey
    config_id: str
    status: str
    reason: str
    values: tuple[float, ...]
    block_ids: tuple[int, ...]
    block_order: str = ""
    energy_confidence: str = ""

    @property
    def n_blocks(self) -> int:
        return len(set(self.block_ids))


def _cells(results: Results, metric: Metric) -> dict[CellKey, CellRun]:
    """All cells of a run with the metric's values (time-ordered measured steps)."""
    steps = results.steps
    measure = steps[steps["phase"] == "measure"]
    grouped = {text(cid): g for cid, g in measure.groupby("config_id", sort=False)}
    out: dict[CellKey, CellRun] = {}
    for row in results.configs.to_dict("records"):
        key = cell_key(row)
        cid = text(row.get("config_id"))
        status = text(row.get("status"))
        if not status:
            raise UserError.invalid(f"{results.root}/configs.csv: status of {cid}", "",
                                    "ok, skipped, failed, oom, timeout")
        values: tuple[float, ...] = ()
        block_ids: tuple[int, ...] = ()
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
                block_ids = tuple(int(b) for b in g["block"].to_numpy(dtype=float))
        elif status == "ok" and not metric.per_step:
            value = number(row.get(metric.name))
            if value is not None:
                values = (value,)
        if key in out:
            raise UserError(f"{results.root}/configs.csv: cell {cell_label(key)} appears twice")
        out[key] = CellRun(key=key, config_id=cid, status=status, reason=text(row.get("reason")),
                           values=values, block_ids=block_ids,
                           block_order=text(row.get("block_order")),
                           energy_confidence=text(row.get("energy_confidence")))
    return out


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
    guarded: dict[int, guard.Guarded] = {}
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
        # Load and drift widen the CI or withhold a firm verdict (harness.guard).
        guarded[id(res)] = guard.for_compare(baselines, [bc.get(key) for bc in base_cells],
                                             candidate, cand, ci, spread.estimated)
        ci = guarded[id(res)].ci
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
    guard.settle_all([(res, guarded[id(res)]) for res, _ in compared])
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
    sides = (*ok_base, cand)
    if metric.per_step:
        for c in sides:
            if any(not (math.isfinite(v) and v > 0) for v in c.values):
                raise _NotComparable(f"{c.config_id}: a measured {metric.name} value is not a "
                                     "finite number > 0")
        try:
            r = stats.step_ratio_ci(cand.values, [c.values for c in ok_base],
                                    run_spread=run_spread, confidence=confidence)
        except stats.TooFewSteps as exc:
            short = next(c for c in sides if len(c.values) == exc.n_steps)
            raise _NotComparable(f"{exc.n_steps} measured steps in {short.config_id}; need at "
                                 f"least {exc.needed} for a within-run error") from None
        assert r.spread is not None  # unpaired: the between-run term is always there
        base_med = float(math.exp(np.mean([math.log(float(np.median(c.values)))
                                           for c in ok_base])))
        return r.ci, r.spread, base_med, float(np.median(cand.values))
    # One value per run: within-run error unknown, the run-to-run spread carries it all.
    if any(not c.values or c.values[0] <= 0 for c in sides):
        raise _NotComparable(f"no {metric.name} recorded" + (
            " (no power sensor in one of the runs)" if metric.name.startswith("energy")
            else " in one of the runs"))
    runs = [stats.RunSummary(median=c.values[0], log_se=0.0, n_chunks=1) for c in sides]
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


def check_interleaved(cell: CellRun, run: str, force: bool) -> str:
    """Refuse a paired comparison on blocks that did not alternate with other cells.

    ``sequential`` with more than one block (the pytest entry runs a cell's
    blocks back to back): refused, always, since pairing back-to-back blocks
    with another cell's blocks does not cancel the machine factor. Not recorded
    (a file from before ``block_order`` existed): refused unless ``force``, and
    then the result says so. Returns a note for the result ("" when interleaved).
    """
    if cell.block_order == "interleaved":
        return ""
    if cell.block_order == "sequential":
        raise UserError(f"--within {run}: {cell.config_id} has block_order 'sequential' "
                        f"({cell.n_blocks} blocks run back to back, not alternating with "
                        "the other cell); a paired comparison needs tfbench run "
                        "--interleave K")
    if cell.block_order:
        raise UserError.invalid(f"{run}/configs.csv: block_order of {cell.config_id}",
                                cell.block_order, "interleaved, sequential")
    if not force:
        raise UserError(f"--within {run}: {cell.config_id} does not record block_order "
                        "(written before tfbench recorded it), so its blocks may have run back "
                        "to back; pass --force to pair them as if interleaved")
    return f"block_order not recorded for {cell.config_id}; paired as interleaved (--force)"


def compare_within(results: Results, pairs: Sequence[tuple[str, str]], metric: Metric,
                   threshold: float, confidence: float = 0.95,
                   force: bool = False) -> Comparison:
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
        ids_a, ids_b = a.n_blocks, b.n_blocks
        if min(ids_a, ids_b) < 2 or set(a.block_ids) != set(b.block_ids):
            raise UserError(
                f"--within {results.root}: {a.config_id} has {ids_a} block(s) and "
                f"{b.config_id} {ids_b}; paired ratios need a run made with "
                "tfbench run --interleave K (K >= 2) and the same blocks on both sides")
        notes = [n for n in (check_interleaved(c, str(results.root), force) for c in (a, b)) if n]
        r = stats.step_ratio_ci(b.values, [a.values], blocks=(b.block_ids, a.block_ids),
                                confidence=confidence)
        ci = r.ci
        res.status = "compared"
        res.baseline_runs = ids_a
        res.baseline_median = float(np.median(a.values))
        res.candidate_median = float(np.median(b.values))
        res.ratio, res.ci_low, res.ci_high = ci.ratio, ci.low, ci.high
        res.run_spread_source = f"paired over {ids_a} interleaved blocks"
        res.note = "; ".join([f"CI width {ci.relative_width:.1%} of the ratio", *notes])
        compared.append((res, ci))
    _set_verdicts(compared, threshold, metric, confidence)
    comp.notes.append("ratio = B/A: geometric mean of per-block median ratios; machine drift "
                      "cancels within each block pair")
    return comp


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"
