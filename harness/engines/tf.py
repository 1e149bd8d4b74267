"""Plain TensorFlow (``tf``) and XLA (``xla``): a tf.function step, jit_compile off or on.

Training uses an explicit compiled train step (forward, loss, gradients,
optimizer update, with loss scaling under mixed precision) rather than
``fit`` and its callbacks, so the timed region is exactly one step.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import numpy as np

from harness.engines.base import Engine, PrepareInfo
from harness.engines.tfruntime import TensorFlowRuntime


class TensorFlowEngine(TensorFlowRuntime):
    """Keras model run through tf.function; ``xla`` sets jit_compile=True."""

    name = "tf"
    jit_compile = False

    def prepare(self, workload: Any, example: tuple[Any, Any], calibration: Any) -> PrepareInfo:
        import tensorflow as tf

        self.model = workload.model
        model = self.model
        if self.cell.mode == "infer":
            def infer(x: Any) -> Any:
                return model(x, training=False)

            self._fn = tf.function(infer, jit_compile=self.jit_compile)
        else:
            optimizer = model.optimizer
            loss_fn = workload.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            variables = model.trainable_variables
            build_slots(optimizer, variables)

            def train(x: Any, y: Any) -> Any:
                loss, _ = update(tf, model, loss_fn, optimizer, variables, x, y)
                return loss

            self._fn = tf.function(train, jit_compile=self.jit_compile)
        x, y = example
        start = time.perf_counter()
        # Trace now (the first call reuses this trace for inputs of the same shape and
        # dtype); XLA still compiles on the first call, which the timing loop times as
        # first_step_s.
        if self.cell.mode == "infer":
            self._fn.get_concrete_function(x)
        else:
            self._fn.get_concrete_function(x, y)
        graph_build_s = time.perf_counter() - start
        info = PrepareInfo(convert_s=None, build_s=None, xla=self.jit_compile or auto_jit())
        if os.environ.get("TF_XLA_FLAGS"):
            info.detail["tf_xla_flags"] = os.environ["TF_XLA_FLAGS"]
        info.detail["trainable_params"] = int(sum(np.prod(v.shape)
                                                  for v in model.trainable_weights))
        info.detail["params"] = int(model.count_params())
        info.detail["graph_build_s"] = graph_build_s
        info.detail["graph_build"] = "tf.function trace (get_concrete_function)"
        return info

    def step(self, batch: Any) -> Any:
        x, y = batch
        return self._fn(x) if self.cell.mode == "infer" else self._fn(x, y)

    def finish(self, result: Any) -> float | None:
        # .numpy() copies the result to the host, which waits for the device.
        value = result.numpy()
        return float(value) if self.cell.mode == "train" else None

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(images, training=False), dtype=np.float32)


class XlaEngine(TensorFlowEngine):
    name = "xla"
    jit_compile = True


def auto_jit() -> bool:
    """Whether TF_XLA_FLAGS turns on XLA auto-clustering (which compiles graphs even with
    jit_compile off). Keras's own ``jit_compile="auto"`` does not apply: the step here is a
    tf.function of its own, not ``model.fit``/``predict``."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    match = re.search(r"--tf_xla_auto_jit=(-?\d+|single-gpu\(\d+\))", flags)
    if not match:
        return False
    value = match.group(1)
    return value.startswith("single-gpu") or int(value) > 0


def build_slots(optimizer: Any, variables: Any) -> None:
    """Create the optimizer's slot variables now, outside any tf.function."""
    if hasattr(optimizer, "build") and not getattr(optimizer, "built", True):
        optimizer.build(variables)


def update(tf: Any, model: Any, loss_fn: Any, optimizer: Any, variables: Any, x: Any,
           y: Any) -> tuple[Any, Any]:
    """One training update, to be called inside a tf.function: forward, loss (plus the
    model's regularisation losses), gradients (loss-scaled under mixed precision) and the
    optimizer step. Returns (loss, model output). The benchmark's train step and fit
    mode's step (`harness.fit_cell`) are both this."""
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = loss_fn(y, out)
        if model.losses:
            loss = loss + tf.add_n(model.losses)
        scaled = _scale_loss(optimizer, loss)
    grads = _unscale(optimizer, tape.gradient(scaled, variables))
    optimizer.apply_gradients(zip(grads, variables, strict=True))
    return loss, out


def _scale_loss(optimizer: Any, loss: Any) -> Any:
    if hasattr(optimizer, "scale_loss"):  # Keras 3 LossScaleOptimizer
        return optimizer.scale_loss(loss)
    if hasattr(optimizer, "get_scaled_loss"):  # tf_keras LossScaleOptimizer
        return optimizer.get_scaled_loss(loss)
    return loss


def _unscale(optimizer: Any, grads: Any) -> Any:
    # Keras 3's LossScaleOptimizer unscales inside apply_gradients; tf_keras needs it here.
    if hasattr(optimizer, "get_unscaled_gradients"):
        return optimizer.get_unscaled_gradients(grads)
    return grads


def engine_class(name: str) -> type[Engine]:
    return XlaEngine if name == "xla" else TensorFlowEngine
