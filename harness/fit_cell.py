"""A fit-mode or ``base=cached`` cell inside its worker process (TensorFlow side).

`run_fit_cell` is the worker's one entry for these cells. It loads the data set
(`harness.data.load_labelled`), splits it (stratified, seeded), builds the
cell's model (`harness.workloads`), and either trains the full model (frozen or
unfrozen base) or builds/reads the bottleneck cache and trains the head alone
(cached). Fit mode runs `harness.fit.run_fit` and saves the trained model as
``models/<config_id>.keras`` with ``models/<config_id>.labels.txt``; a
train-mode cached cell is timed by the ordinary `harness.timing.time_steps`.
"""

from __future__ import annotations

import resource
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Cell, RunSettings
from harness.data import LabelledSet, load_labelled, ordered_dataset, stratified_split
from harness.errors import UserError
from harness.fit import batch_order, plan_fit, run_fit, summarize_fit

MODELS_DIR = "models"


def needs_fit_loop(cell: Cell) -> bool:
    """Cells this module runs instead of the engine loop: mode fit, or a cached base."""
    return cell.mode == "fit" or cell.base == "cached"


def check_fit_cells(cells: list[Cell], settings: RunSettings) -> None:
    """Preflight for fit and cached cells (before any results exist): the mnist file is
    cached or may be downloaded, and each fit data set splits into training and
    validation parts (two classes or more, two images a class, a batch to train on)."""
    from harness.config import MNIST_DATA
    from harness.data import check_split, list_image_folder
    from harness.mnist import check_mnist_available

    if settings.interleave > 1 and any(c.mode == "fit" for c in cells):
        raise UserError.invalid("interleave (fit cells)", settings.interleave,
                                "0 or 1: a fit trains once; blocks would each train anew")
    for cell in cells:
        if cell.data == MNIST_DATA:
            check_mnist_available(settings.allow_download)
        if cell.mode != "fit" or cell.data == MNIST_DATA:
            continue
        _, labels, classes = list_image_folder(Path(cell.data))
        check_split(np.asarray(labels, np.int64), classes, settings.validation_fraction,
                    cell.batch_size, repr(cell.data))


def run_fit_cell(cell: Cell, settings: RunSettings, t0_ns: int, run_dir: Path,
                 dropout: float | None = None) -> dict[str, Any]:
    """Run the cell and return the worker's result record (status, steps, ``fit`` columns).

    ``dropout`` overrides the head's dropout rate (tests turn it off to compare cached and
    frozen training exactly)."""
    from harness.engines.tfruntime import select_tf_device

    avail = select_tf_device(cell.device, settings)
    if not avail.ok:
        return {"status": "skipped", "reason": avail.reason}
    import tensorflow as tf

    result: dict[str, Any] = {"status": "ok", "reason": ""}
    try:
        _run(cell, settings, t0_ns, run_dir, dropout, result)
    except tf.errors.ResourceExhaustedError as exc:
        return {"status": "oom", "reason": " ".join(f"ResourceExhaustedError: {exc.message}"
                                                     .split())[:400]}
    finally:
        result["host_rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def _run(cell: Cell, settings: RunSettings, t0_ns: int, run_dir: Path, dropout: float | None,
         result: dict[str, Any]) -> None:
    import keras
    import tensorflow as tf

    from harness.workloads import build_workload, input_channels

    keras.utils.set_random_seed(settings.seed)
    data = load_labelled(cell.data, allow_download=settings.allow_download,
                         batch_size=cell.batch_size, size=cell.input_size, seed=settings.seed,
                         num_classes=settings.num_classes)
    classes = len(data.classes) if cell.mode == "fit" else max(settings.num_classes,
                                                                len(data.classes))
    workload = build_workload(cell, settings, classes)
    model = workload.model
    if dropout is not None:
        model.get_layer("dropout").rate = dropout
    channels = input_channels(cell.model)
    fit = {"learning_rate": cell.learning_rate, "optimizer": settings.optimizer}
    result["fit"] = fit
    if cell.mode == "fit":
        train_idx, val_idx = stratified_split(data.labels, settings.validation_fraction,
                                              settings.seed)
    else:  # a cached train-mode cell: the fixed batches, no validation
        train_idx, val_idx = np.arange(len(data)), np.arange(0)
    fit.update(train_images=len(train_idx), val_images=len(val_idx))
    if cell.base == "cached":
        from harness import bottleneck

        key = bottleneck.cache_key(cell, settings, data, classes)
        everything = ordered_dataset(data, np.arange(len(data)), cell.batch_size,
                                     cell.input_size, channels, drop_remainder=False)
        bn = bottleneck.load_or_build(key, lambda: bottleneck.compute_features(
            bottleneck.feature_model(keras, model), everything))
        fit.update(cache_build_s=bn.build_s, cache_hit=bn.hit)
        trained = bottleneck.head_model(keras, model)
        optimizer = workload.make_optimizer()
        source: Any = _FeatureSource(bn.features, data.labels)
    else:
        trained = model
        optimizer = model.optimizer
        source = _ImageSource(data, cell, channels)
    step_fn = _train_step(tf, workload, trained, optimizer, tf_xla(cell))
    evaluate = _evaluator(tf, trained, source, val_idx, cell.batch_size, tf_xla(cell))
    if cell.mode != "fit":
        _time_train_cell(cell, settings, t0_ns, source, train_idx, step_fn, result)
        return
    plan = plan_fit(len(train_idx), cell.batch_size, settings.epochs, settings.max_steps,
                    settings.eval_every_steps)
    order = train_idx[batch_order(len(train_idx), plan, cell.batch_size, settings.seed)]
    batches = source.batches(order)
    fit.update(epochs=settings.epochs)
    outcome = run_fit(step_fn, _finish, lambda: next(batches), evaluate, plan,
                      images_per_step=cell.batch_size, warmup_steps=settings.warmup_steps,
                      t0_ns=t0_ns)
    fit.update(summarize_fit(outcome.rows, settings.target_accuracy))
    result["steps"] = outcome.rows
    result["first_step_s"] = outcome.first_step_s
    result["device_used"] = _device_used(tf, cell)
    result["xla"] = tf_xla(cell)
    result["input_synthetic"] = False
    if outcome.diverged_at is not None:
        result.update(status="failed", reason=f"loss diverged at step {outcome.diverged_at}")
        return
    fit["model_path"] = save_model(model, data.classes, run_dir, cell.config_id)


def tf_xla(cell: Cell) -> bool:
    return cell.engine == "xla"


def save_model(model: Any, classes: list[str], run_dir: Path, config_id: str) -> str:
    """``models/<config_id>.keras`` and its ``.labels.txt`` (one class name a line); returns
    the model's path relative to the run directory."""
    folder = run_dir / MODELS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config_id}.keras"
    model.save(path)
    (folder / f"{config_id}.labels.txt").write_text("".join(f"{c}\n" for c in classes))
    return f"{MODELS_DIR}/{path.name}"


class _ImageSource:
    """Image batches of the data set in a given order, through tf.data."""

    def __init__(self, data: LabelledSet, cell: Cell, channels: int) -> None:
        self.data, self.cell, self.channels = data, cell, channels

    def batches(self, order: np.ndarray, drop_remainder: bool = True) -> Any:
        ds = ordered_dataset(self.data, order.reshape(-1), self.cell.batch_size,
                             self.cell.input_size, self.channels, drop_remainder=drop_remainder)
        return iter(ds)

    def eval_batches(self, indices: np.ndarray) -> Any:
        ds = ordered_dataset(self.data, indices, self.cell.batch_size, self.cell.input_size,
                             self.channels, drop_remainder=False)
        return ds.cache()


class _FeatureSource:
    """Cached-feature batches in a given order (a numpy gather per batch)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray) -> None:
        self.features, self.labels = features, labels.astype(np.int32)

    def batches(self, order: np.ndarray) -> Any:
        import tensorflow as tf

        for rows in order:
            yield tf.constant(self.features[rows]), tf.constant(self.labels[rows])

    def eval_batches(self, indices: np.ndarray) -> Any:
        import tensorflow as tf

        size = 256
        return [(tf.constant(self.features[indices[i:i + size]]),
                 tf.constant(self.labels[indices[i:i + size]]))
                for i in range(0, len(indices), size)]


def _train_step(tf: Any, workload: Any, model: Any, optimizer: Any, xla: bool) -> Any:
    """One compiled step: forward, loss (+ regularisation), gradients, update; returns the
    loss and the batch's accuracy."""
    from harness.engines.tf import build_slots, update

    loss_fn = workload.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables
    build_slots(optimizer, variables)

    def train(x: Any, y: Any) -> Any:
        loss, logits = update(tf, model, loss_fn, optimizer, variables, x, y)
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                tf.cast(y, tf.int32)), tf.float32)
        return loss, tf.reduce_mean(hits)

    fn = tf.function(train, jit_compile=xla)
    return lambda batch: fn(batch[0], batch[1])


def _finish(result: Any) -> tuple[float, float]:
    loss, accuracy = result
    return float(loss.numpy()), float(accuracy.numpy())


def _evaluator(tf: Any, model: Any, source: Any, val_idx: np.ndarray, batch_size: int,
               xla: bool) -> Any:
    """Validation loss (mean cross-entropy, no regularisation) and accuracy over the
    held-out part, model in inference mode."""
    if len(val_idx) == 0:
        return lambda: (float("nan"), float("nan"), 0)
    batches = source.eval_batches(val_idx)

    def sums(x: Any, y: Any) -> Any:
        logits = tf.cast(model(x, training=False), tf.float32)
        y = tf.cast(y, tf.int32)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        hits = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y)
        return tf.reduce_sum(loss), tf.reduce_sum(tf.cast(hits, tf.float32))

    fn = tf.function(sums, reduce_retracing=True)

    def evaluate() -> tuple[float, float, int]:
        loss_sum = hit_sum = 0.0
        for x, y in batches:
            a, b = fn(x, y)
            loss_sum += float(a.numpy())
            hit_sum += float(b.numpy())
        n = len(val_idx)
        return loss_sum / n, hit_sum / n, n

    return evaluate


def _time_train_cell(cell: Cell, settings: RunSettings, t0_ns: int, source: Any,
                     train_idx: np.ndarray, step_fn: Any, result: dict[str, Any]) -> None:
    """A train-mode cached cell: the head's step timed like any train cell."""
    from harness.timing import time_steps

    rng = np.random.default_rng(settings.seed)

    def endless() -> Any:
        while True:
            perm = train_idx[rng.permutation(len(train_idx))]
            for s in range(len(perm) // cell.batch_size):
                yield from source.batches(perm[None, s * cell.batch_size:
                                               (s + 1) * cell.batch_size])

    batches = endless()
    timing = time_steps(
        step_fn, lambda r: _finish(r)[0], lambda: next(batches),
        images_per_step=cell.batch_size, warmup_steps=settings.warmup_steps,
        measured_steps=settings.measured_steps, min_duration_s=settings.min_duration_s,
        max_measured_steps=max(settings.max_measured_steps, settings.measured_steps),
        t0_ns=t0_ns,
    )
    import tensorflow as tf

    result["steps"] = [asdict(s) for s in timing.steps]
    result["first_step_s"] = timing.first_step_s
    result["device_used"] = _device_used(tf, cell)
    result["xla"] = tf_xla(cell)
    result["input_synthetic"] = cell.data == "synthetic"


def _device_used(tf: Any, cell: Cell) -> str:
    kind = "GPU" if cell.device.startswith("gpu") else "CPU"
    devices = tf.config.list_logical_devices(kind)
    return devices[0].name if devices else ""
