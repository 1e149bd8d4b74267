"""Fit mode's training loop: train, evaluate at intervals, time-to-target. No TensorFlow.

A fit cell trains on the training part of a stratified split for ``epochs``
(capped by ``max_steps``) and evaluates on the held-out part every
``eval_every_steps`` steps (default once per epoch) and after the last step.
Every training step is a row (``phase`` warmup for the first call and the
warm-up steps, then ``measure``) with its loss and its batch's accuracy; every
evaluation is a ``phase=eval`` row with ``val_loss``, ``val_accuracy`` and its
own duration. Evaluation time never counts as training time, so
``time_to_target_s`` is the training time (steps and their input waits) spent
until the first evaluation at or above ``target_accuracy``. The step function,
its synchronisation and the evaluation are callables handed in by
`harness.fit_cell`; the clock is injected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NS = 1_000_000_000


@dataclass(frozen=True)
class FitPlan:
    """How many steps a fit runs and after which of them it evaluates."""

    steps_per_epoch: int
    total_steps: int
    eval_after: tuple[int, ...]  # step counts (1-based) after which to evaluate


def plan_fit(train_images: int, batch_size: int, epochs: int, max_steps: int | None,
             eval_every_steps: int | None) -> FitPlan:
    """Steps per epoch drop the partial last batch (fixed shapes, no retrace)."""
    per_epoch = train_images // batch_size
    if per_epoch < 1:
        raise ValueError("fewer training images than one batch")
    total = per_epoch * epochs
    if max_steps is not None:
        total = min(total, max_steps)
    every = eval_every_steps or per_epoch
    after = list(range(every, total + 1, every))
    if not after or after[-1] != total:
        after.append(total)
    return FitPlan(per_epoch, total, tuple(after))


def batch_order(train_count: int, plan: FitPlan, batch_size: int, seed: int) -> np.ndarray:
    """(total_steps, batch_size) positions into the training part: a fresh seeded
    permutation per epoch, the partial last batch of each epoch left out."""
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    while len(rows) < plan.total_steps:
        perm = rng.permutation(train_count)
        for s in range(plan.steps_per_epoch):
            rows.append(perm[s * batch_size:(s + 1) * batch_size])
    return np.stack(rows[:plan.total_steps])


@dataclass
class FitOutcome:
    """What a fit loop measured; rows are steps.csv rows (without the factor columns)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    first_step_s: float = 0.0
    diverged_at: int | None = None  # step index whose loss was NaN or infinite

    @property
    def evals(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["phase"] == "eval"]


def run_fit(
    step: Callable[[Any], Any],
    finish: Callable[[Any], tuple[float, float]],
    next_input: Callable[[], Any],
    evaluate: Callable[[], tuple[float, float, int]],
    plan: FitPlan,
    *,
    images_per_step: int,
    warmup_steps: int,
    t0_ns: int = 0,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> FitOutcome:
    """Train ``plan.total_steps`` steps, evaluating after the planned step counts.

    ``step(batch)`` launches a training step; ``finish(result)`` waits for it and returns
    (loss, batch accuracy). ``evaluate()`` returns (val_loss, val_accuracy, images) with
    the results on the host. A loss that is NaN or infinite stops the fit: the rows so
    far are kept and ``diverged_at`` names the step.
    """
    out = FitOutcome()
    evals = set(plan.eval_after)
    for index in range(plan.total_steps):
        t_wait = clock()
        batch = next_input()
        t_begin = clock()
        loss, accuracy = finish(step(batch))
        t_end = clock()
        duration = (t_end - t_begin) / NS
        if index == 0:
            out.first_step_s = duration
        out.rows.append({
            "step": index, "phase": "warmup" if index <= warmup_steps else "measure",
            "start_s": (t_begin - t0_ns) / NS, "duration_s": duration,
            "input_wait_s": (t_begin - t_wait) / NS, "images": images_per_step,
            "loss": loss, "accuracy": accuracy,
        })
        if not math.isfinite(loss):
            out.diverged_at = index
            return out
        if index + 1 in evals:
            e_begin = clock()
            val_loss, val_accuracy, images = evaluate()
            e_end = clock()
            out.rows.append({
                "step": index, "phase": "eval", "start_s": (e_begin - t0_ns) / NS,
                "duration_s": (e_end - e_begin) / NS, "input_wait_s": 0.0, "images": images,
                "loss": None, "accuracy": None, "val_loss": val_loss,
                "val_accuracy": val_accuracy,
            })
    return out


def summarize_fit(rows: Sequence[dict[str, Any]], target: float) -> dict[str, Any]:
    """The configs.csv columns of a fit from its rows.

    ``train_time_s`` sums training steps and their input waits; ``eval_time_s`` the
    evaluations. ``steps_to_target`` is the number of training steps done at the first
    evaluation with ``val_accuracy >= target`` (so it has the evaluation interval's
    resolution) and ``time_to_target_s`` the training time up to then; both are empty
    with ``target_reached`` false when no evaluation reached the target.
    """
    train_time = 0.0
    eval_time = 0.0
    reached: tuple[int, float] | None = None
    val_acc: list[float] = []
    val_loss: list[float] = []
    for r in rows:
        if r["phase"] == "eval":
            eval_time += r["duration_s"]
            val_acc.append(r["val_accuracy"])
            val_loss.append(r["val_loss"])
            if reached is None and r["val_accuracy"] >= target:
                reached = (r["step"] + 1, train_time)
        else:
            train_time += r["duration_s"] + r["input_wait_s"]
    return {
        "target_accuracy": target,
        "val_accuracy_final": val_acc[-1] if val_acc else None,
        "val_loss_final": val_loss[-1] if val_loss else None,
        "val_accuracy_best": max(val_acc) if val_acc else None,
        "target_reached": reached is not None,
        "steps_to_target": reached[0] if reached else None,
        "time_to_target_s": reached[1] if reached else None,
        "train_time_s": train_time,
        "eval_time_s": eval_time,
    }
