"""Input for a cell: fixed synthetic batches or an image folder through tf.data.

Synthetic batches are made once, outside any timed region, from a fixed seed.
An image folder (one sub-folder of JPEG/PNG files per class, like
flower_photos) is read by a tf.data pipeline with prefetch; the harness times
``next()`` on it separately from compute, so input stalls are visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import IMAGE_SUFFIXES
from harness.errors import UserError

_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


def list_image_folder(root: Path) -> tuple[list[str], list[int], list[str]]:
    """Files, integer labels and class names of an image folder; checks every file's header."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with f.open("rb") as fh:
                head = fh.read(8)
            if not any(head.startswith(m) for m in _MAGIC):
                raise UserError(f"data: {str(f)!r} is not a readable JPEG or PNG image")
            files.append(str(f))
            labels.append(label)
    if not files:
        raise UserError(f"data: {str(root)!r} holds no images")
    return files, labels, classes


def synthetic_arrays(batch_size: int, size: int, num_classes: int, seed: int,
                     count: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` fixed batches of images in [0, 255] and integer labels."""
    rng = np.random.default_rng(seed)
    return [
        (
            rng.uniform(0.0, 255.0, size=(batch_size, size, size, 3)).astype(np.float32),
            rng.integers(0, num_classes, size=(batch_size,)).astype(np.int32),
        )
        for _ in range(count)
    ]


@dataclass
class BatchSource:
    """An endless supply of (images, labels) TensorFlow tensors of one fixed shape."""

    iterator: Iterator[Any]
    num_classes: int
    synthetic: bool

    def next(self) -> tuple[Any, Any]:
        batch: tuple[Any, Any] = next(self.iterator)
        return batch


def _cycle(items: list[Any]) -> Iterator[Any]:
    while True:
        yield from items


def make_source(data: str, batch_size: int, size: int, num_classes: int,
                seed: int) -> BatchSource:
    """Build the input for a cell (TensorFlow is imported here)."""
    import tensorflow as tf

    if data == "synthetic":
        batches = [
            (tf.constant(x), tf.constant(y))
            for x, y in synthetic_arrays(batch_size, size, num_classes, seed)
        ]
        return BatchSource(_cycle(batches), num_classes, synthetic=True)
    files, labels, classes = list_image_folder(Path(data))

    def load(path: Any, label: Any) -> tuple[Any, Any]:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (size, size))
        return image, label

    ds = (
        tf.data.Dataset.from_tensor_slices((files, labels))
        .shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return BatchSource(iter(ds), len(classes), synthetic=False)


def fixed_inputs(batch_size: int, size: int, seed: int = 1234) -> np.ndarray:
    """Fixed images for output-parity checks between engines."""
    return synthetic_arrays(batch_size, size, 2, seed, count=1)[0][0]
