"""The one ratio CI between two sets of step times, used by the charts' speed-ups,
``tfbench compare`` and the benchmarks; re-exported by `harness.stats`. Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.stats import (
    DEFAULT_CHUNKS,
    Floats,
    RatioCI,
    RunSpread,
    assumed_spread,
    between_run_spread,
    paired_block_ratio_ci,
    ratio_ci,
    summarize_run,
)

MIN_PAIRED_BLOCKS = 2
# Chunking for ratio CIs: at most RATIO_CHUNKS chunks of at least RATIO_CHUNK_LEN steps. In a
# seeded simulation (tests/test_speedup_ci.py, docs/charts.md) the 16 chunks of 2+ steps
# used before covered 90% (n=30) to 93% (n=60) at phi = 0 and 80-89% at phi = 0.5: small
# chunks' medians are more efficient than the whole run's median and still correlated.
RATIO_CHUNKS = 8
RATIO_CHUNK_LEN = 4


class TooFewSteps(ValueError):
    """A run has too few measured steps for a within-run error (batch means need chunks)."""

    def __init__(self, n_steps: int, where: str = "") -> None:
        self.n_steps = n_steps
        self.needed = 2 * RATIO_CHUNK_LEN
        super().__init__(f"{n_steps} measured steps{f' in {where}' if where else ''}; need at "
                         f"least {self.needed} for a within-run error")


@dataclass(frozen=True)
class StepRatioCI:
    """median(numerator) / median(denominator) with its CI and the rule that made it."""

    ci: RatioCI
    paired: bool
    blocks: int  # paired block pairs (0 when unpaired)
    spread: RunSpread | None  # the between-run term used (None when paired)
    method: str

    @property
    def ratio(self) -> float:
        return self.ci.ratio

    @property
    def low(self) -> float:
        return self.ci.low

    @property
    def high(self) -> float:
        return self.ci.high


def _block_groups(values: np.ndarray, blocks: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
    ids = np.asarray(blocks)
    if len(ids) != len(values):
        raise ValueError("blocks must give one block id per value")
    return {int(b): values[ids == b] for b in dict.fromkeys(ids.tolist())}


def step_ratio_ci(numerator: Floats, denominators: Sequence[Floats], *,
                  blocks: tuple[Sequence[int], Sequence[int]] | None = None,
                  run_spread: float = 0.0, confidence: float = 0.95) -> StepRatioCI:
    """CI of median(numerator) / median(denominator) for step times (or any values > 0).

    The one rule for every ratio the project reports (chart speed-ups, ``tfbench
    compare``, the engine benchmark):

    * **Paired** when ``blocks`` gives block ids for the numerator and for one
      denominator run and at least `MIN_PAIRED_BLOCKS` blocks are shared: the
      blocks ran interleaved (A B A B ...), so a one-sample t interval over the
      per-block log ratios of block medians (`paired_block_ratio_ci`). Assumes
      the block log ratios are independent; the machine factor of each moment
      cancels within a pair. Only pass ``blocks`` for interleaved blocks.
    * **Unpaired** otherwise: each run's batch-means error from chunk medians
      (`summarize_run`, robust to autocorrelated steps) and `ratio_ci` over the
      K denominator runs. With one denominator run the chunks are at most
      `RATIO_CHUNKS` of at least `RATIO_CHUNK_LEN` steps (coverage 92-95% at
      lag-1 autocorrelation 0-0.3 in tests/test_speedup_ci.py); with K >= 2
      the `DEFAULT_CHUNKS` chunking of docs/regression.md, whose between-run
      estimate tests/test_stats.py validates. The between-run term is estimated from K >= 2
      denominator runs, else the assumed ``run_spread`` (a fraction: 0.02 is a
      2% run-to-run factor, used as ln(1.02)); pass 0 for two cells of one run.

    Raises `TooFewSteps` when a run has fewer than ``2 * RATIO_CHUNK_LEN`` values.
    """
    num = np.asarray(numerator, dtype=float)
    dens = [np.asarray(d, dtype=float) for d in denominators]
    if not dens:
        raise ValueError("step_ratio_ci needs at least one denominator run")
    if blocks is not None and len(dens) == 1:
        gn, gd = _block_groups(num, blocks[0]), _block_groups(dens[0], blocks[1])
        shared = [k for k in gn if k in gd]
        if len(shared) >= MIN_PAIRED_BLOCKS:
            ci = paired_block_ratio_ci([gd[k] for k in shared], [gn[k] for k in shared],
                                       confidence)
            return StepRatioCI(ci, True, len(shared), None,
                               f"paired blocks (n={len(shared)})")
    runs = []
    for values in (num, *dens):
        if len(values) < 2 * RATIO_CHUNK_LEN:
            raise TooFewSteps(len(values))
        # One denominator run: longer chunks (see RATIO_CHUNKS). Several: the chunking the
        # between-run estimate of docs/regression.md was validated with (tests/test_stats.py).
        chunks = (min(RATIO_CHUNKS, len(values) // RATIO_CHUNK_LEN) if len(dens) == 1
                  else DEFAULT_CHUNKS)
        runs.append(summarize_run(values, chunks))
    if len(dens) >= 2:
        spread = between_run_spread(runs[1:])
        note = f"run spread estimated from {len(dens)} runs"
    else:
        spread = assumed_spread(math.log1p(run_spread))
        note = f"run spread {run_spread:.0%} assumed" if run_spread else ""
    ci = ratio_ci(runs[0], runs[1:], spread, confidence)
    method = f"chunk medians (ν≈{ci.dof:.0f})" if math.isfinite(ci.dof) else "chunk medians"
    return StepRatioCI(ci, False, 0, spread, f"{method}, {note}" if note else method)
