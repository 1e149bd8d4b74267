"""``keras-jax``: the cell's Keras 3 model on the JAX backend.

Inference is ``jax.jit`` of the model's ``stateless_call``; training is a jitted
step of ``jax.value_and_grad`` over ``stateless_call`` (loss, updated BatchNorm
statistics and seed state as aux) followed by ``optimizer.stateless_apply`` (the
Keras SGD with momentum the ``tf`` engine uses). Both are lowered and compiled
ahead of time in `prepare`: ``graph_build_s`` (engine_detail) is the trace and
lowering to StableHLO, ``build_s`` the XLA compilation, so the timed first call
runs the compiled executable. Each step ends with ``jax.block_until_ready`` on
its outputs (and, in training, the new state).

Device selection before JAX initialises: ``JAX_PLATFORMS=cpu`` for cpu cells; for
``gpu:N`` the N-th GPU becomes JAX's default device, with
``XLA_PYTHON_CLIENT_PREALLOCATE=false`` so the memory peak is what the model used,
not JAX's 75% preallocation. Device memory: ``peak_bytes_in_use`` from the
device's ``memory_stats()`` (GPU; JAX cannot reset it, so it is the process's
peak); the CPU client reports none.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.availability import Availability
from harness.config import Cell, RunSettings
from harness.engines.base import DeviceMemory, Engine, PrepareInfo
from harness.engines.keras_backend import backend_availability, numpy_source, package_version


class KerasJaxEngine(Engine):
    """Keras 3 model on JAX, jitted and compiled before timing."""

    name = "keras-jax"

    @classmethod
    def availability(cls, cell: Cell, options: Mapping[str, Any]) -> Availability:
        return backend_availability(cell, "jax")

    @classmethod
    def select_device(cls, device: str, settings: RunSettings) -> Availability:
        if device == "cpu":
            os.environ["JAX_PLATFORMS"] = "cpu"
        else:
            os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        import jax

        if device == "cpu":
            return Availability(True)
        index = int(device.split(":")[1]) if ":" in device else 0
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            gpus = []
        if index >= len(gpus):
            return Availability(False, f"{device} requested but JAX sees {len(gpus)} GPU(s) "
                                       f"(jax {jax.__version__}, backend "
                                       f"{jax.default_backend()})")
        jax.config.update("jax_default_device", gpus[index])
        return Availability(True)

    def input_source(self, classes: int) -> Any:
        return numpy_source(self.cell, classes, self.settings.seed)

    def prepare(self, workload: Any, example: tuple[Any, Any], calibration: Any) -> PrepareInfo:
        import jax
        import keras

        model = self.model = workload.model
        self._trainable = [v.value for v in model.trainable_variables]
        self._non_trainable = [v.value for v in model.non_trainable_variables]

        def infer(trainable: Any, non_trainable: Any, x: Any) -> Any:
            y, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return y

        self._infer = jax.jit(infer)
        x, y = self.adapt_input(example)
        if self.cell.mode == "infer":
            args: tuple[Any, ...] = (self._trainable, self._non_trainable, x)
            fn = self._infer
        else:
            optimizer = model.optimizer
            optimizer.build(model.trainable_variables)
            loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

            def loss_and_updates(trainable: Any, non_trainable: Any, x: Any,
                                 y: Any) -> tuple[Any, Any]:
                pred, non_trainable, losses = model.stateless_call(
                    trainable, non_trainable, x, training=True, return_losses=True)
                loss = loss_fn(y, pred)
                for extra in losses:
                    loss = loss + extra
                return loss, non_trainable

            grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

            def train(state: Any, x: Any, y: Any) -> tuple[Any, Any]:
                trainable, non_trainable, opt_vars = state
                (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
                trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
                return loss, (trainable, non_trainable, opt_vars)

            self._state = (self._trainable, self._non_trainable,
                           [v.value for v in optimizer.variables])
            args = (self._state, x, y)
            fn = jax.jit(train, donate_argnums=0)
        start = time.perf_counter()
        lowered = fn.lower(*args)
        graph_build_s = time.perf_counter() - start
        start = time.perf_counter()
        self._step = lowered.compile()
        build_s = time.perf_counter() - start
        self._device = jax.devices()[0]
        detail = {
            "backend": "jax", "keras": keras.__version__, "jax": jax.__version__,
            "jaxlib": package_version("jaxlib"),
            "compile_mode": "jax.jit (lowered and compiled before timing)",
            "graph_build_s": graph_build_s,
            "graph_build": "jax.jit(...).lower() (trace to StableHLO)",
            "params": int(model.count_params()),
            "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_weights)),
            "jax_device": str(self._device), "jax_device_kind": self._device.device_kind,
        }
        return PrepareInfo(convert_s=None, build_s=build_s, xla=True, detail=detail)

    def adapt_input(self, batch: tuple[Any, Any]) -> Any:
        import jax

        x, y = batch
        return (jax.device_put(np.asarray(x, np.float32)),
                jax.device_put(np.asarray(y, np.int32)))

    def step(self, batch: Any) -> Any:
        x, y = batch
        if self.cell.mode == "infer":
            return self._step(self._trainable, self._non_trainable, x)
        loss, self._state = self._step(self._state, x, y)
        return loss

    def finish(self, result: Any) -> float | None:
        import jax

        if self.cell.mode == "infer":
            jax.block_until_ready(result)
            return None
        jax.block_until_ready((result, self._state))
        return float(result)

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self.cell.mode == "train":
            trainable, non_trainable, _ = self._state
        else:
            trainable, non_trainable = self._trainable, self._non_trainable
        out = self._infer(trainable, non_trainable, np.asarray(images, np.float32))
        return np.asarray(out, dtype=np.float32)

    def synchronize(self) -> None:
        import jax

        jax.effects_barrier()

    def reset_memory_peak(self) -> None:
        """JAX has no way to reset a device's peak; `memory_peak` says so."""

    def memory_peak(self) -> DeviceMemory:
        stats = self._device.memory_stats()
        if not stats or "peak_bytes_in_use" not in stats:
            return DeviceMemory(None, f"JAX reports no memory statistics for "
                                      f"{self._device.platform} devices")
        return DeviceMemory(int(stats["peak_bytes_in_use"]),
                            f"JAX {self._device} peak_bytes_in_use since the process started "
                            "(JAX cannot reset the peak)")

    def oom_reason(self, exc: BaseException) -> str | None:
        import jax

        if isinstance(exc, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(exc):
            return f"JaxRuntimeError: {exc}"
        return None

    def raise_oom(self) -> Any:
        import jax.numpy as jnp

        # A real allocation failure from XLA's allocator (2^45 floats, 128 TiB).
        return jnp.zeros((1 << 45,), jnp.float32).block_until_ready()

    def device_used(self) -> str:
        return f"{self._device.platform}:{self._device.id} ({self._device.device_kind})"


def engine_class(name: str) -> type[Engine]:
    return KerasJaxEngine
