"""The TensorFlow side of the engine protocol, shared by every engine whose model is
built (and converted) by TensorFlow: ``tf``, ``xla``, ``tftrt``, ``litert``,
``onnxruntime``.

Device selection before TensorFlow initialises, the input pipeline (tf.data for
image folders), synchronisation, TensorFlow's allocator peak, its
``ResourceExhaustedError`` and a real allocation failure for fault injection. An
engine whose runtime is not TensorFlow's (LiteRT, ONNX Runtime) overrides what
TensorFlow cannot tell about it (its memory, its own allocation failures).
"""

from __future__ import annotations

import os
from typing import Any

from harness.availability import Availability
from harness.config import RunSettings
from harness.engines.base import DeviceMemory, Engine


def select_tf_device(device: str, settings: RunSettings) -> Availability:
    """Make only the requested device visible; must run before TensorFlow initialises."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    else:
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= len(gpus):
            build = tf.sysconfig.get_build_info()
            return Availability(
                False,
                f"{device} requested but TensorFlow sees {len(gpus)} GPU(s) "
                f"(TensorFlow {tf.__version__}, built with CUDA: "
                f"{'yes' if build.get('is_cuda_build') else 'no'}, "
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})",
            )
        tf.config.set_visible_devices([gpus[index]], "GPU")
        tf.config.experimental.set_memory_growth(gpus[index], True)
    if settings.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(settings.intra_op_threads)
    if settings.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(settings.inter_op_threads)
    return Availability(True)


def tf_oom_reason(exc: BaseException) -> str | None:
    """The reason for TensorFlow's out-of-memory error, None for anything else."""
    import tensorflow as tf

    if isinstance(exc, tf.errors.ResourceExhaustedError):
        return f"ResourceExhaustedError: {exc.message}"
    return None


class TensorFlowRuntime(Engine):
    """Protocol methods for engines that run (or convert) through TensorFlow."""

    @classmethod
    def select_device(cls, device: str, settings: RunSettings) -> Availability:
        return select_tf_device(device, settings)

    def input_source(self, classes: int) -> Any:
        from harness.data import make_source

        return make_source(self.cell.data, self.cell.batch_size, self.cell.input_size, classes,
                           self.settings.seed)

    @property
    def _gpu(self) -> bool:
        return self.cell.device.startswith("gpu")

    def synchronize(self) -> None:
        if self._gpu:
            import tensorflow as tf

            tf.test.experimental.sync_devices()

    def reset_memory_peak(self) -> None:
        if self._gpu:
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats("GPU:0")

    def memory_peak(self) -> DeviceMemory:
        if not self._gpu:
            return DeviceMemory(None, "cpu cell: the device's memory is host memory "
                                      "(host_rss_peak_bytes)")
        import tensorflow as tf

        peak = int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
        return DeviceMemory(peak, "TensorFlow allocator peak on GPU:0")

    def oom_reason(self, exc: BaseException) -> str | None:
        return tf_oom_reason(exc)

    def raise_oom(self) -> Any:
        import tensorflow as tf

        # A real allocation failure from TensorFlow's allocator (2^45 floats).
        return tf.zeros([1 << 45], tf.float32)

    def device_used(self) -> str:
        """The device TensorFlow places ops on after selection (e.g. /device:CPU:0)."""
        import tensorflow as tf

        kind = "GPU" if self._gpu else "CPU"
        devices = tf.config.list_logical_devices(kind)
        return devices[0].name if devices else ""
