"""The bottleneck cache (``base=cached``): the TF1 retrain lab's trick, measured.

The frozen base runs once over the whole data set; its outputs (the
"bottlenecks", the features the head sees) are stored on disk and every later
training step runs the head alone. The cache lives under
``$TFBENCH_CACHE_DIR`` (default ``~/.cache/tfbench``) in ``bottlenecks/<key>/``,
where the key hashes the model, weights, input size, precision, the seed (random
weights depend on it) and a digest of the data files' bytes, so cells and runs
with the same base and data share one build. Building is timed as
``cache_build_s``; a reuse reports the stored build time with ``cache_hit``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Cell, RunSettings
from harness.data import LabelledSet

CACHE_ENV = "TFBENCH_CACHE_DIR"
FEATURES_FILE = "features.npy"
META_FILE = "meta.json"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "tfbench")) / "bottlenecks"


def _weights_identity(cell: Cell, seed: int) -> str:
    if cell.weights == "random":
        return f"random-seed{seed}"
    if cell.weights == "imagenet":
        return "imagenet"
    path = Path(cell.weights)
    st = path.stat()
    return f"{path.resolve()}-{st.st_size}-{st.st_mtime_ns}"


def cache_key(cell: Cell, settings: RunSettings, data: LabelledSet, classes: int) -> str:
    """The cache directory name for a cell's base and data (what the features depend on)."""
    import keras

    parts = {
        "model": cell.model, "weights": _weights_identity(cell, settings.seed),
        "input_size": cell.input_size, "precision": cell.precision, "data": data.digest,
        "classes": classes, "keras": keras.__version__,
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    return f"{cell.model}-{cell.input_size}-{digest}"


@dataclass
class Bottlenecks:
    """Features of every image of a data set (in the data set's order)."""

    features: np.ndarray  # (N, D) float32
    build_s: float  # how long computing them took when they were built
    hit: bool  # True: read from the cache, False: built in this cell
    path: Path


def feature_model(keras: Any, model: Any) -> Any:
    """The part of a harness model below its head: input to the layer before dropout."""
    return keras.Model(model.inputs, model.get_layer("dropout").input, name="bottleneck")


def head_model(keras: Any, model: Any) -> Any:
    """The head alone (dropout and dense layer), sharing the full model's layers and so its
    weights: training it trains the full model's head."""
    dim = model.get_layer("dropout").input.shape[-1]
    features = keras.Input((dim,), name="features")
    x = model.get_layer("dropout")(features)
    return keras.Model(features, model.get_layer("head")(x), name="head_only")


def load_or_build(key: str, compute: Callable[[], np.ndarray],
                  clock: Callable[[], float] = time.perf_counter) -> Bottlenecks:
    """Read the features stored under ``key`` or compute, time and store them."""
    folder = cache_root() / key
    meta_path = folder / META_FILE
    if meta_path.is_file() and (folder / FEATURES_FILE).is_file():
        meta = json.loads(meta_path.read_text())
        features = np.load(folder / FEATURES_FILE)
        return Bottlenecks(features, float(meta["build_s"]), True, folder)
    start = clock()
    features = np.asarray(compute(), dtype=np.float32)
    build_s = clock() - start
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{FEATURES_FILE}.{os.getpid()}.tmp"
    with tmp.open("wb") as fh:
        np.save(fh, features)
    tmp.replace(folder / FEATURES_FILE)
    meta_tmp = folder / f".{META_FILE}.{os.getpid()}.tmp"
    meta_tmp.write_text(json.dumps({"build_s": build_s, "shape": list(features.shape),
                                    "key": key}))
    meta_tmp.replace(meta_path)
    return Bottlenecks(features, build_s, False, folder)


def compute_features(model: Any, dataset: Any) -> np.ndarray:
    """Run the feature model over a tf.data pipeline of (images, labels) batches."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    out = [np.asarray(fn(x), dtype=np.float32) for x, _ in dataset]
    return np.concatenate(out)
