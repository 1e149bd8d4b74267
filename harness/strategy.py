"""Data-parallel training and inference through tf.distribute, inside one worker process.

A cell with ``strategy`` ``mirrored`` runs MirroredStrategy over the visible GPUs
(``device: gpu``) or over ``mirrored_cpu_devices`` logical CPU devices
(``device: cpu``, for tests and CPU-only machines); ``multiworker`` runs
MultiWorkerMirroredStrategy in one of ``workers`` processes whose ``TF_CONFIG``
the launcher (harness/distributed.py) or Ray Train set. The timed step is one
synchronous global step: every replica takes ``batch_size`` images, so the global
batch is ``batch_size x replicas``; the gradients are all-reduced before the
update, and the step ends when the reduced loss reaches the host.

TensorFlow is imported inside the functions: this module is loaded by the worker
only, after the device has been chosen.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.config import Cell, RunSettings
from harness.engines.base import Engine, PrepareInfo


@dataclass
class Distribution:
    """The strategy of one worker process and where this process stands in it."""

    strategy: Any
    kind: str
    replicas: int  # replicas in sync, all workers together
    local_replicas: int  # replicas in this process
    workers: int
    task_index: int

    @property
    def is_chief(self) -> bool:
        return self.task_index == 0

    def scope(self) -> Any:
        return self.strategy.scope()


def configure_devices(cell: Cell, settings: RunSettings) -> None:
    """Before TensorFlow's runtime starts: the logical CPU devices of a mirrored CPU cell,
    and every GPU visible for a mirrored ``device: gpu`` cell."""
    if cell.strategy != "mirrored":
        return
    import tensorflow as tf

    if cell.device == "cpu":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * settings.mirrored_cpu_devices)
    elif cell.device == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        tf.config.set_visible_devices(gpus, "GPU")
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)


def make_distribution(cell: Cell, settings: RunSettings) -> Distribution | None:
    """The cell's strategy (None for ``none``); must come before any other TensorFlow op."""
    if cell.strategy == "none":
        return None
    import tensorflow as tf

    if cell.strategy == "mirrored":
        kind = "GPU" if cell.device.startswith("gpu") else "CPU"
        devices = [d.name for d in tf.config.list_logical_devices(kind)]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        n = strategy.num_replicas_in_sync
        return Distribution(strategy, "mirrored", n, n, 1, 0)
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    workers = len(config.get("cluster", {}).get("worker", [])) or 1
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    n = strategy.num_replicas_in_sync
    return Distribution(strategy, "multiworker", n, n // workers, workers,
                        int(task.get("index", 0)))


def fixed_steps(dist: Distribution | None) -> bool:
    """Multi-worker processes must take the same number of steps (each one is a collective):
    the adaptive stopping rules (min_duration_s, target_ci_rel) are not applied."""
    return dist is not None and dist.kind == "multiworker"


def weights_digest(model: Any) -> str:
    """SHA-1 of the model's weights in order (float32 bytes): equal in every replica after
    synchronous training, different from the initial weights after any update."""
    h = hashlib.sha1()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return h.hexdigest()


def replica_digests(dist: Distribution, model: Any) -> list[str]:
    """The trainable weights' digest in each local replica (a mirrored variable's
    per-device copies). Non-trainable state such as BatchNorm moving statistics is
    sync-on-read: each replica keeps its own batch's statistics and a read aggregates
    them, so those copies differ by design and are left out."""
    digests = []
    for r in range(dist.local_replicas):
        h = hashlib.sha1()
        for v in model.trainable_weights:
            var = getattr(v, "value", v)
            values = getattr(var, "values", None)
            copy = values[r] if values is not None and len(values) > r else var
            h.update(np.ascontiguousarray(copy.numpy(), dtype=np.float32).tobytes())
        digests.append(h.hexdigest())
    return digests


def strategy_result(dist: Distribution, cell: Cell, model: Any,
                    detail: dict[str, Any]) -> dict[str, Any]:
    """The result fields of a strategy cell after its measured steps; ``failed`` when the
    replicas' trainable weights differ."""
    digests = replica_digests(dist, model)
    detail["replica_weights_sha1"] = digests
    out: dict[str, Any] = {"strategy_workers": dist.workers, "replicas": dist.replicas,
                           "global_batch_size": cell.batch_size * dist.replicas,
                           "task_index": dist.task_index, "replica_weights_sha1": digests}
    if len(set(digests)) != 1:
        out.update(status="failed", reason="replicas hold different weights after the "
                   f"measured steps ({len(set(digests))} distinct digests)")
    return out


def distributed_engine(base: type[Engine], dist: Distribution | None) -> type[Engine]:
    """A subclass of the tf/xla engine whose step is one synchronous global step."""
    if dist is None:
        return base
    return _distributed(base, dist)


def _distributed(base: type[Engine], dist: Distribution) -> type[Engine]:
    class Distributed(base):  # type: ignore[valid-type,misc]
        name = base.name
        distribution = dist

        def input_source(self, classes: int) -> Any:
            """This process's batches: batch_size x its replicas."""
            from harness.data import make_source

            return make_source(self.cell.data, self.cell.batch_size * dist.local_replicas,
                               self.cell.input_size, classes, self.settings.seed)

        def build(self, classes: int) -> Any:
            with dist.scope():  # variables mirrored over the replicas
                return super().build(classes)

        def prepare(self, workload: Any, example: tuple[Any, Any],
                    calibration: Any) -> PrepareInfo:
            import tensorflow as tf

            from harness.engines.tf import build_slots

            self.model = model = workload.model
            strategy = dist.strategy
            replicas = dist.replicas
            if self.cell.mode == "infer":
                def infer(x: Any) -> Any:
                    out = strategy.run(lambda xs: model(xs, training=False), args=(x,))
                    return strategy.gather(out, axis=0)

                self._fn = tf.function(infer, jit_compile=self.jit_compile)
            else:
                optimizer = model.optimizer
                loss_fn = workload.keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True, reduction="sum")
                variables = model.trainable_variables
                global_batch = self.cell.batch_size * replicas
                with dist.scope():
                    build_slots(optimizer, variables)

                def replica_step(x: Any, y: Any) -> Any:
                    with tf.GradientTape() as tape:
                        pred = model(x, training=True)
                        # Sum over the replica's images / global batch: the all-reduced
                        # (summed) gradient is that of the global batch's mean loss.
                        loss = loss_fn(y, pred) / global_batch
                        if model.losses:
                            loss = loss + tf.add_n(model.losses) / replicas
                    grads = tape.gradient(loss, variables)
                    optimizer.apply_gradients(zip(grads, variables, strict=True))
                    return loss

                def train(x: Any, y: Any) -> Any:
                    per_replica = strategy.run(replica_step, args=(x, y))
                    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

                self._fn = tf.function(train, jit_compile=self.jit_compile)
            info = PrepareInfo(convert_s=None, build_s=None, xla=self.jit_compile)
            info.detail.update(strategy=dist.kind, replicas=replicas, workers=dist.workers,
                               local_replicas=dist.local_replicas,
                               params=int(model.count_params()))
            return info

        def adapt_input(self, batch: Any) -> Any:
            """Split this process's batch (batch_size x local replicas) over its replicas."""
            x, y = batch
            b = self.cell.batch_size
            local = dist.local_replicas

            def part(t: Any) -> Any:
                def shard(ctx: Any) -> Any:
                    i = ctx.replica_id_in_sync_group % local
                    return t[i * b:(i + 1) * b]
                return dist.strategy.experimental_distribute_values_from_function(shard)

            return part(x), part(y)

        def step(self, batch: Any) -> Any:
            x, y = batch
            return self._fn(x) if self.cell.mode == "infer" else self._fn(x, y)

        def predict(self, images: np.ndarray) -> np.ndarray:
            return np.asarray(self.model(images, training=False), dtype=np.float32)

    return Distributed


@contextlib.contextmanager
def maybe_scope(dist: Distribution | None) -> Iterator[None]:
    if dist is None:
        yield
        return
    with dist.scope():
        yield
