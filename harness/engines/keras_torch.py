"""``keras-torch``: the cell's Keras 3 model on the PyTorch backend.

Inference runs the model eagerly under ``torch.no_grad()`` by default; the engine
option ``compile = "torch.compile"`` wraps the step in ``torch.compile`` (its
compilation happens on the first call, timed as ``first_step_s``). Training is
one step of ``torch.autograd``: forward in training mode, the from-logits loss,
``loss.backward()``, then the Keras SGD with momentum the ``tf`` engine uses
applied to the variables' ``.grad`` under ``torch.no_grad()`` (what Keras's own
torch trainer does). On a GPU each step ends with ``torch.cuda.synchronize()``.

Device selection before PyTorch initialises: ``CUDA_VISIBLE_DEVICES=""`` for cpu
cells (Keras would otherwise pick ``cuda``); for ``gpu:N`` ``torch.cuda.set_device``.
Device memory: ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats`` (GPU); none on the CPU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from harness.availability import Availability
from harness.config import Cell, RunSettings
from harness.engines.base import DeviceMemory, Engine, PrepareInfo, option
from harness.engines.keras_backend import backend_availability, numpy_source


class KerasTorchEngine(Engine):
    """Keras 3 model on PyTorch, eager or torch.compile."""

    name = "keras-torch"

    @classmethod
    def availability(cls, cell: Cell, options: Mapping[str, Any]) -> Availability:
        return backend_availability(cell, "torch")

    @classmethod
    def select_device(cls, device: str, settings: RunSettings) -> Availability:
        if device == "cpu":
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        import torch

        if settings.intra_op_threads:
            torch.set_num_threads(settings.intra_op_threads)
        if settings.inter_op_threads:
            torch.set_num_interop_threads(settings.inter_op_threads)
        if device == "cpu":
            return Availability(True)
        index = int(device.split(":")[1]) if ":" in device else 0
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            return Availability(False, f"{device} requested but PyTorch sees {count} GPU(s) "
                                       f"(torch {torch.__version__}, CUDA build: "
                                       f"{torch.version.cuda or 'no'})")
        torch.cuda.set_device(index)
        return Availability(True)

    def __init__(self, cell: Cell, settings: RunSettings, options: Mapping[str, Any]) -> None:
        super().__init__(cell, settings, options)
        self.compile_mode: str = option(self.options, "keras-torch", "compile", "eager")
        self._gpu = cell.device.startswith("gpu")

    def input_source(self, classes: int) -> Any:
        return numpy_source(self.cell, classes, self.settings.seed)

    def prepare(self, workload: Any, example: tuple[Any, Any], calibration: Any) -> PrepareInfo:
        import keras
        import torch

        model = self.model = workload.model
        fn: Callable[..., Any]
        if self.cell.mode == "infer":
            def infer(x: Any) -> Any:
                with torch.no_grad():
                    return model(x, training=False)

            fn = infer
        else:
            optimizer = model.optimizer
            optimizer.build(model.trainable_variables)
            loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            trainable = list(model.trainable_variables)

            def train(x: Any, y: Any) -> Any:
                model.zero_grad()
                pred = model(x, training=True)
                loss = loss_fn(y, pred)
                for extra in model.losses:
                    loss = loss + extra
                loss.backward()
                grads = [v.value.grad for v in trainable]
                with torch.no_grad():
                    optimizer.apply(grads, trainable)
                return loss

            fn = train
        start = time.perf_counter()
        compiled = self.compile_mode == "torch.compile"
        self._fn: Callable[..., Any] = torch.compile(fn) if compiled else fn
        wrap_s = time.perf_counter() - start
        detail = {
            "backend": "torch", "keras": keras.__version__, "torch": torch.__version__,
            "compile_mode": self.compile_mode,
            "graph_build_s": None,
            "graph_build": ("torch.compile compiles on the first call (first_step_s)"
                            if self.compile_mode == "torch.compile"
                            else "eager: nothing is traced"),
            "torch_compile_wrap_s": wrap_s if self.compile_mode == "torch.compile" else None,
            "params": int(model.count_params()),
            "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_weights)),
            "torch_threads": torch.get_num_threads(),
        }
        return PrepareInfo(convert_s=None, build_s=None, xla=False, detail=detail)

    def adapt_input(self, batch: tuple[Any, Any]) -> Any:
        import keras

        x, y = batch
        return (keras.ops.convert_to_tensor(np.asarray(x, np.float32)),
                keras.ops.convert_to_tensor(np.asarray(y, np.int32)))

    def step(self, batch: Any) -> Any:
        x, y = batch
        return self._fn(x) if self.cell.mode == "infer" else self._fn(x, y)

    def finish(self, result: Any) -> float | None:
        self.synchronize()
        self._last_device = str(result.device)
        return float(result.detach().cpu()) if self.cell.mode == "train" else None

    def predict(self, images: np.ndarray) -> np.ndarray:
        import keras
        import torch

        with torch.no_grad():
            out = self.model(keras.ops.convert_to_tensor(np.asarray(images, np.float32)),
                             training=False)
        return np.asarray(out.detach().cpu().numpy(), dtype=np.float32)

    def synchronize(self) -> None:
        if self._gpu:
            import torch

            torch.cuda.synchronize()

    def reset_memory_peak(self) -> None:
        if self._gpu:
            import torch

            torch.cuda.reset_peak_memory_stats()

    def memory_peak(self) -> DeviceMemory:
        if not self._gpu:
            return DeviceMemory(None, "cpu cell: the device's memory is host memory "
                                      "(host_rss_peak_bytes)")
        import torch

        return DeviceMemory(int(torch.cuda.max_memory_allocated()),
                            "torch.cuda.max_memory_allocated over the timed phase")

    def oom_reason(self, exc: BaseException) -> str | None:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return f"OutOfMemoryError: {exc}"
        if isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" \
                in str(exc):
            return f"RuntimeError: {exc}"
        return None

    def raise_oom(self) -> Any:
        import torch

        # A real allocation failure from PyTorch's allocator (2^45 floats, 128 TiB).
        return torch.empty(1 << 45, dtype=torch.float32,
                           device="cuda" if self._gpu else "cpu")

    def device_used(self) -> str:
        import keras

        return getattr(self, "_last_device", None) or str(keras.ops.zeros(()).device)


def engine_class(name: str) -> type[Engine]:
    return KerasTorchEngine
