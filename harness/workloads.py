"""Model builders: keras.applications bases with a transfer-learning head.

TensorFlow and Keras are imported inside functions only. A workload is the
full model (preprocessing, base, head) built for one cell, plus the pieces an
engine needs to train or convert it. Works with Keras 3 (TF >= 2.16) and with
Keras 2 / tf_keras (Jetson wheels, TF Hub models).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import DEFAULT_LEARNING_RATE, MNIST_MODELS, Cell, RunSettings
from harness.errors import UserError

# keras.applications builder name and the ImageNet no-top weights file in the Keras cache.
APPLICATIONS: dict[str, tuple[str, str]] = {
    "mobilenet_v2": ("MobileNetV2",
                     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    "inception_v3": ("InceptionV3", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenet_v1": ("MobileNet", "mobilenet_1_0_224_tf_no_top.h5"),
}


# MD5 of the cached files where Keras publishes one (keras.applications' file_hash).
KNOWN_MD5 = {"inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5":
             "bcbd6486424b2319ff4ef7d526e38f63"}


@dataclass
class Workload:
    """A built model and what engines need to run it.

    The head outputs logits (float32 even under mixed precision), so parity
    checks compare numbers that move with the weights, not a near-constant
    softmax; training uses a from-logits loss.
    """

    model: Any  # keras.Model (Keras 3) or tf_keras.Model
    keras: Any  # the keras module the model belongs to
    num_classes: int
    input_size: int
    mixed: bool
    learning_rate: float = DEFAULT_LEARNING_RATE
    optimizer: str = "sgd"  # sgd (momentum 0.9) or adam

    def make_optimizer(self) -> Any:
        """The optimizer for training (wrapped for loss scaling under mixed precision)."""
        if self.optimizer == "adam":
            opt = self.keras.optimizers.Adam(learning_rate=self.learning_rate)
        else:
            opt = self.keras.optimizers.SGD(learning_rate=self.learning_rate, momentum=0.9)
        if self.mixed:
            opt = self.keras.mixed_precision.LossScaleOptimizer(opt)
        return opt


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def hub_cache_path(handle: str) -> Path:
    cache = Path(os.environ.get("TFHUB_CACHE_DIR", "/tmp/tfhub_modules"))
    return cache / hashlib.sha1(handle.encode("utf8")).hexdigest()


def check_offline(cell: Cell, allow_download: bool) -> None:
    """Refuse, before anything runs, a cell that would download (unless allowed)."""
    if allow_download:
        return
    if cell.weights == "imagenet":
        if cell.model not in APPLICATIONS:
            raise UserError.invalid(f"weights (model {cell.model})", "imagenet",
                                    f"random or a path; imagenet is for {', '.join(APPLICATIONS)}")
        path = keras_cache_dir() / APPLICATIONS[cell.model][1]
        if not path.is_file():
            raise UserError(
                f"weights: 'imagenet' for {cell.model} is not in the Keras cache ({path}); "
                "place the file there or pass --allow-download"
            )
        expected = KNOWN_MD5.get(path.name)
        if expected is not None:
            actual = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
            if actual != expected:
                raise UserError(
                    f"weights: the cached file {path} has MD5 {actual}, not the published "
                    f"{expected} (a corrupt or partial download); it was left as it is; "
                    "replace it, or pass --allow-download to let Keras fetch it again")
    if cell.model.startswith("hub:"):
        handle = cell.model[4:]
        if handle.startswith(("http://", "https://")) and not hub_cache_path(handle).is_dir():
            raise UserError(
                f"model: {cell.model!r} is not in the TF Hub cache ({hub_cache_path(handle)}); "
                "set TFHUB_CACHE_DIR to a filled cache or pass --allow-download"
            )
        if not handle.startswith(("http://", "https://")) and not Path(handle).exists():
            raise UserError(f"model: hub handle {handle!r} is neither a URL nor an existing path")


def build_workload(cell: Cell, settings: RunSettings, num_classes: int | None = None,
                   mixed: bool | None = None) -> Workload:
    """Build the cell's model, compiled for its mode (train: frozen or unfrozen base)."""
    classes = num_classes or settings.num_classes
    mixed = cell.precision == "mixed" if mixed is None else mixed
    if cell.model.startswith("hub:"):
        return _build_hub(cell, classes, mixed, settings)
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    size = cell.input_size
    base, scale, offset = _base(keras, cell, size, settings.allow_download)
    if cell.weights == "random":
        calibrate_batch_norm(keras, base, size, scale, offset, settings.seed)
    frozen = cell.mode == "infer" or cell.base in ("frozen", "cached")
    base.trainable = not frozen
    inputs = keras.Input((size, size, input_channels(cell.model)), name="image")
    x = keras.layers.Rescaling(scale, offset, name="preprocess")(inputs)
    x = base(x, training=False) if frozen else base(x)
    if isinstance(x, dict):  # a SavedModel's serving signature returns {name: tensor}
        if len(x) != 1:
            raise UserError(f"model: the SavedModel {cell.model!r} has outputs "
                            f"{', '.join(sorted(x))}; allowed: one output")
        x = next(iter(x.values()))
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    outputs = keras.layers.Dense(classes, dtype="float32", name="head")(x)
    model = keras.Model(inputs, outputs, name=f"{cell.test_id}")
    if cell.weights not in ("random", "imagenet"):
        model.load_weights(cell.weights)
    return _finish(cell, model, keras, classes, size, mixed, settings)


def input_channels(model: str) -> int:
    """Colour channels a model takes: 1 for the MNIST models (grey), else 3 (RGB)."""
    return 1 if model in MNIST_MODELS else 3


def calibrate_batch_norm(keras: Any, base: Any, size: int, scale: float, offset: float,
                         seed: int, batch: int = 4) -> None:
    """Give a randomly initialised base realistic BatchNorm statistics.

    Fresh BatchNorm layers hold mean 0 and variance 1, so a random MobileNetV2
    in inference mode shrinks its activations layer after layer and outputs
    logits near 1e-12: every engine's output then looks alike and an int8
    conversion cannot represent it. One forward pass in training mode with the
    moving-average momentum at 0 sets each layer's statistics to those of a
    synthetic batch (a data-dependent initialisation). Step cost is unchanged.
    """
    import numpy as np

    norms = [layer for layer in _all_layers(base)
             if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return
    images = np.random.default_rng(seed).uniform(0.0, 255.0, (batch, size, size, 3))
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    try:
        base((images * scale + offset).astype("float32"), training=True)
    finally:
        for layer, momentum in zip(norms, saved, strict=True):
            layer.momentum = momentum


def _all_layers(model: Any) -> list[Any]:
    layers = []
    for layer in getattr(model, "layers", []):
        layers.append(layer)
        layers.extend(_all_layers(layer))
    return layers


def _base(keras: Any, cell: Cell, size: int, allow_download: bool = False
          ) -> tuple[Any, float, float]:
    """The base network and the input scaling it expects (from [0, 255]).

    ImageNet weights without ``allow_download`` are loaded from the Keras cache file
    directly: Keras's own path (``get_file``) re-downloads a file whose hash does not
    match, and deletes the cached one, which offline must never do."""
    shape = (size, size, 3)
    if cell.model in APPLICATIONS and cell.weights == "imagenet" and not allow_download:
        builder = getattr(keras.applications, APPLICATIONS[cell.model][0])
        base = builder(include_top=False, weights=None, input_shape=shape, pooling="avg")
        path = keras_cache_dir() / APPLICATIONS[cell.model][1]
        try:
            base.load_weights(str(path))
        except Exception as exc:  # the user's cached file: a clear reason, nothing deleted
            raise RuntimeError(
                f"weights: the cached ImageNet file {path} cannot be loaded "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); it was left as "
                "it is and nothing was downloaded (offline); replace it or pass "
                "--allow-download") from None
        return base, 1 / 127.5, -1.0
    weights = "imagenet" if cell.weights == "imagenet" else None
    if cell.model in APPLICATIONS:
        builder = getattr(keras.applications, APPLICATIONS[cell.model][0])
        base = builder(include_top=False, weights=weights, input_shape=shape, pooling="avg")
        return base, 1 / 127.5, -1.0
    if cell.model == "tiny_mobilenet_v2":
        base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=shape,
                                              alpha=0.35, pooling="avg")
        return base, 1 / 127.5, -1.0
    if cell.model == "tiny_cnn":
        layers = keras.layers
        base = keras.Sequential(
            [
                keras.Input(shape),
                layers.Conv2D(8, 3, padding="same", activation="relu"),
                layers.BatchNormalization(),
                layers.MaxPooling2D(),
                layers.Conv2D(16, 3, padding="same", activation="relu"),
                layers.GlobalAveragePooling2D(),
            ],
            name="tiny_cnn_base",
        )
        return base, 1 / 255.0, 0.0
    if cell.model in MNIST_MODELS:
        from harness.mnist import mnist_base

        return mnist_base(keras, cell.model), 1 / 255.0, 0.0
    path = Path(cell.model)
    if path.suffix in (".keras", ".h5"):
        return keras.models.load_model(path, compile=False), 1 / 127.5, -1.0
    if (path / "saved_model.pb").exists():
        if cell.mode == "train" and cell.base == "unfrozen":
            raise UserError(
                f"model: a SavedModel directory ({path}) can only be used frozen; "
                "use a .keras file to fine-tune it"
            )
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
        return layer, 1 / 255.0, 0.0
    raise UserError.invalid("model", cell.model,
                            "a known model, hub:<handle>, .keras/.h5, SavedModel")


def _build_hub(cell: Cell, classes: int, mixed: bool, settings: RunSettings) -> Workload:
    """A TF Hub base through tf_keras (hub.KerasLayer is a Keras 2 layer)."""
    try:
        import tensorflow_hub as hub
        import tf_keras
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"hub models need the 'hub' extra (pip install 'tfbench[hub]'): {exc}"
        ) from exc
    tf_keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    frozen = cell.mode == "infer" or cell.base in ("frozen", "cached")
    size = cell.input_size
    inputs = tf_keras.Input((size, size, 3), name="image")
    x = tf_keras.layers.Rescaling(1 / 255.0)(inputs)  # hub image models expect [0, 1]
    x = hub.KerasLayer(cell.model[4:], trainable=not frozen, name="hub_base")(x)
    outputs = tf_keras.layers.Dense(classes, dtype="float32", name="head")(x)
    model = tf_keras.Model(inputs, outputs)
    return _finish(cell, model, tf_keras, classes, size, mixed, settings)


def _finish(cell: Cell, model: Any, keras: Any, classes: int, size: int,
            mixed: bool, settings: RunSettings) -> Workload:
    """Wrap the model; for training, compile it after `trainable` was set (Keras reads
    it at compile time)."""
    workload = Workload(model=model, keras=keras, num_classes=classes, input_size=size,
                        mixed=mixed, learning_rate=cell.learning_rate or DEFAULT_LEARNING_RATE,
                        optimizer=settings.optimizer)
    if cell.mode in ("train", "fit"):
        model.compile(optimizer=workload.make_optimizer(),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return workload
