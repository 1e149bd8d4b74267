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


DECODE_PER_CLASS = 8  # images of each class decoded in preflight (all when fewer)


def list_image_folder(root: Path, decode: bool = True
                      ) -> tuple[list[str], list[int], list[str]]:
    """Files, integer labels and class names of an image folder; checks every file's header
    and (``decode``, in preflight) decodes a sample of each class (`DECODE_PER_CLASS`, spread
    over the class; every file when there are few), so a truncated image fails there, not
    in a timed step. The worker lists without decoding: an image that gets past preflight
    and still fails is the framework decoder's error, a failed cell."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        members = []
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with f.open("rb") as fh:
                head = fh.read(8)
            if not any(head.startswith(m) for m in _MAGIC):
                raise UserError(f"data: {str(f)!r} is not a readable JPEG or PNG image")
            members.append(f)
        step = max(1, -(-len(members) // DECODE_PER_CLASS))
        for f in [*members[::step], *members[-1:]] if decode else []:
            _decode(f)
        files.extend(str(f) for f in members)
        labels.extend([label] * len(members))
    if not files:
        raise UserError(f"data: {str(root)!r} holds no images")
    return files, labels, classes


def _decode(path: Path) -> None:
    """Decode one image fully (Pillow); a truncated or corrupt file is a `UserError`."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"data: {str(path)!r} is not a readable JPEG or PNG image "
                        f"(decoding failed: {exc})") from None


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
    files, labels, classes = list_image_folder(Path(data), decode=False)

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


# --------------------------------------------------------------------------- fit mode data


@dataclass
class LabelledSet:
    """A whole data set for fit mode (and for the bottleneck cache): image files or
    in-memory images, their integer labels, the class names and a digest of the data
    (the bottleneck cache's key)."""

    labels: np.ndarray
    classes: list[str]
    digest: str
    files: list[str] | None = None
    images: np.ndarray | None = None  # (N, H, W, C), values in [0, 255]

    def __len__(self) -> int:
        return len(self.labels)


def stratified_split(labels: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train and a validation part: within every class a seeded shuffle, then
    ``round(n * fraction)`` images (at least one, at most n - 1) held out. Each part's
    indices are sorted; the same labels, fraction and seed always give the same split."""
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = min(max(round(len(idx) * fraction), 1), len(idx) - 1)
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def check_split(labels: np.ndarray, classes: list[str], fraction: float, batch_size: int,
                where: str) -> None:
    """Refuse a data set fit mode cannot split: fewer than two classes, a class with fewer
    than two images, or fewer training images than one batch."""
    counts = np.bincount(labels, minlength=len(classes))
    present = int((counts > 0).sum())
    if present < 2:
        raise UserError(f"data: {where} has {present} class(es) with images; mode 'fit' needs "
                        "at least two classes")
    thin = [classes[i] for i, n in enumerate(counts) if 0 < n < 2]
    if thin:
        raise UserError(f"data: {where} class {thin[0]!r} has one image; mode 'fit' needs at "
                        "least two per class (one to train on, one to validate)")
    train, _ = stratified_split(labels, fraction, 0)
    if len(train) < batch_size:
        raise UserError(
            f"data: {where} leaves {len(train)} training images after holding out "
            f"validation_fraction={fraction:g}; batch_size {batch_size} needs at least "
            f"{batch_size}")


def file_digest(paths: list[str], root: Path | None = None) -> str:
    """SHA-256 over every file's relative name and bytes: the data's identity."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        name = str(Path(p).relative_to(root)) if root else Path(p).name
        h.update(name.encode())
        h.update(b"\0")
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_labelled(data: str, *, allow_download: bool = False, batch_size: int = 8,
                  size: int = 32, seed: int = 0, num_classes: int = 2) -> LabelledSet:
    """The data set of a fit (or cached) cell: an image folder, ``mnist``, or, for a cached
    train-mode cell, the cell's fixed synthetic batches."""
    from harness.config import MNIST_DATA

    if data == MNIST_DATA:
        from harness.mnist import load_mnist, mnist_cache_path

        images, labels, classes = load_mnist(allow_download)
        return LabelledSet(labels, classes, file_digest([str(mnist_cache_path())]),
                           images=images)
    if data == "synthetic":
        pairs = synthetic_arrays(batch_size, size, num_classes, seed)
        return LabelledSet(np.concatenate([y for _, y in pairs]).astype(np.int64),
                           [str(c) for c in range(num_classes)],
                           f"synthetic-{seed}-{batch_size}-{size}-{num_classes}",
                           images=np.concatenate([x for x, _ in pairs]))
    root = Path(data)
    files, label_list, classes = list_image_folder(root)
    return LabelledSet(np.asarray(label_list, np.int64), classes, file_digest(files, root),
                       files=files)


def ordered_dataset(ds: LabelledSet, indices: np.ndarray, batch_size: int, size: int,
                    channels: int, *, drop_remainder: bool) -> Any:
    """A tf.data pipeline of (float32 images in [0, 255] at ``size``, labels) batches in
    exactly the order of ``indices`` (fit mode decides the order, so two cells with the
    same seed see the same batches)."""
    import tensorflow as tf

    idx = tf.constant(np.asarray(indices, np.int64))
    labels = tf.constant(ds.labels.astype(np.int32))

    def shape(image: Any) -> Any:
        image = tf.cast(image, tf.float32)
        have = image.shape[-1]
        if have == 3 and channels == 1:
            image = tf.image.rgb_to_grayscale(image)
        elif have == 1 and channels == 3:
            image = tf.image.grayscale_to_rgb(image)
        if image.shape[-3] != size or image.shape[-2] != size:
            image = tf.image.resize(image, (size, size))
        return image

    if ds.files is not None:
        files = tf.constant(ds.files)

        def load(i: Any) -> tuple[Any, Any]:
            raw = tf.io.decode_image(tf.io.read_file(tf.gather(files, i)), channels=channels,
                                     expand_animations=False)
            raw.set_shape((None, None, channels))
            return shape(raw), tf.gather(labels, i)

        out = tf.data.Dataset.from_tensor_slices(idx).map(
            load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        out = out.batch(batch_size, drop_remainder=drop_remainder)
    else:
        assert ds.images is not None
        images = tf.constant(ds.images)

        def gather(i: Any) -> tuple[Any, Any]:
            return shape(tf.gather(images, i)), tf.gather(labels, i)

        out = tf.data.Dataset.from_tensor_slices(idx).batch(
            batch_size, drop_remainder=drop_remainder).map(gather, deterministic=True)
    return out.prefetch(tf.data.AUTOTUNE)
