"""``tfbench classify MODEL IMAGE...``: the ``label_image`` step, timed.

Loads a ``.keras`` image classifier (one saved by a fit run, with its
``.labels.txt`` beside it, or any Keras classifier with ``--labels``) in Keras
safe mode, reads each image at the model's own input size and channels, prints
the preprocessing the model applies (so the 224 vs 299 question answers itself)
and the top-k labels with probabilities, and times model load, the first call
(tracing) and a steady call (median of ``--repeats`` calls).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError


@dataclass(frozen=True)
class Prediction:
    """The top-k labels and probabilities of one image."""

    image: str
    top: list[tuple[str, float]]


def labels_path_for(model_path: Path) -> Path:
    """``models/<id>.keras`` → ``models/<id>.labels.txt`` (what fit runs write)."""
    return model_path.with_suffix(".labels.txt")


def read_labels(path: Path) -> list[str]:
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--labels: {str(path)!r} cannot be read ({exc})") from None
    labels = [ln for ln in lines if ln]
    if not labels:
        raise UserError(f"--labels: {str(path)!r} holds no labels (one per line)")
    return labels


def top_k(probabilities: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The k most probable labels, most probable first (ties: lower index first)."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(labels[i], float(probabilities[i])) for i in order]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def looks_like_probabilities(values: np.ndarray) -> bool:
    """A softmax output (non-negative rows summing to 1) rather than logits."""
    return bool((values >= 0).all() and np.allclose(values.sum(axis=-1), 1.0, atol=1e-3))


def timed(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter
          ) -> tuple[Any, float]:
    start = clock()
    value = fn()
    return value, clock() - start


def load_model(path: Path) -> tuple[Any, float]:
    """Load in Keras safe mode (no arbitrary code from the file); UserError if unreadable."""
    if not path.is_file():
        raise UserError(f"MODEL: {str(path)!r} does not exist; allowed: a .keras file")
    if path.suffix != ".keras":
        raise UserError.invalid("MODEL", str(path), "a .keras file (Keras 3 format)")
    import keras

    try:
        return timed(lambda: keras.saving.load_model(path, compile=False, safe_mode=True))
    except Exception as exc:  # any failure to read the file is the user's file, not a bug
        raise UserError(f"MODEL: {str(path)!r} cannot be loaded as a Keras model "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None


def describe_preprocessing(model: Any) -> str:
    """The input the model expects and the rescaling layer it applies itself."""
    shape = tuple(model.inputs[0].shape[1:])
    parts = [f"input {'x'.join(str(d) for d in shape)}"]
    for layer in model.layers:
        if type(layer).__name__ == "Rescaling":
            parts.append(f"rescaling x*{layer.scale:g}{layer.offset:+g} from [0, 255]")
            break
    else:
        parts.append("no rescaling layer in the model (images fed as [0, 255] floats)")
    return ", ".join(parts)


def read_image(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image decoded and resized to the model's input (float32 in [0, 255])."""
    import tensorflow as tf

    try:
        raw = tf.io.read_file(str(path))
        image = tf.io.decode_image(raw, channels=channels, expand_animations=False)
    except (tf.errors.OpError, ValueError) as exc:
        raise UserError(f"IMAGE: {str(path)!r} cannot be read as an image "
                        f"({type(exc).__name__})") from None
    image = tf.image.resize(tf.cast(image, tf.float32), size)
    return np.asarray(image, np.float32)


def classify(model: Any, labels: Sequence[str], images: Sequence[Path], k: int,
             repeats: int) -> tuple[list[Prediction], dict[str, float]]:
    """Predictions for every image, plus the first-call and steady-call times."""
    shape = model.inputs[0].shape
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise UserError(f"MODEL: input shape {tuple(shape)} is not an image batch "
                        "(batch, height, width, channels)")
    size, channels = (int(shape[1]), int(shape[2])), int(shape[3])
    batch = np.stack([read_image(p, size, channels) for p in images])
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    out, first_s = timed(lambda: fn(batch).numpy())  # .numpy() waits for the device
    steady = [timed(lambda: fn(batch).numpy())[1] for _ in range(repeats)]
    out = out.astype(np.float64)
    if out.ndim != 2 or out.shape[1] != len(labels):
        raise UserError(f"--labels: the model has {out.shape[-1]} outputs but there are "
                        f"{len(labels)} labels")
    probs = out if looks_like_probabilities(out) else softmax(out)
    preds = [Prediction(str(p), top_k(row, labels, k)) for p, row in zip(images, probs,
                                                                          strict=True)]
    return preds, {"first_call_s": first_s, "steady_call_s": statistics.median(steady)}


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, metavar="MODEL",
                   help="a .keras classifier (e.g. RUN_DIR/models/<config_id>.keras)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="JPEG/PNG images")
    p.add_argument("--labels", type=Path,
                   help="class names, one per line (default: MODEL's .labels.txt)")
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="labels shown (default 3)")
    p.add_argument("--repeats", type=int, default=5, metavar="N",
                   help="steady calls timed; the median is shown (default 5)")


def run_command(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise UserError.invalid("--top-k", args.top_k, "integers >= 1")
    if args.repeats < 1:
        raise UserError.invalid("--repeats", args.repeats, "integers >= 1")
    labels_path = args.labels or labels_path_for(args.model)
    if args.labels is None and not labels_path.is_file():
        raise UserError(f"--labels: none given and {str(labels_path)!r} does not exist; "
                        "pass --labels FILE (one class name per line)")
    labels = read_labels(labels_path)
    for image in args.images:
        if not image.is_file():
            raise UserError(f"IMAGE: {str(image)!r} does not exist")
    model, load_s = load_model(args.model)
    print(f"model: {args.model} ({describe_preprocessing(model)})")
    preds, times = classify(model, labels, args.images, min(args.top_k, len(labels)),
                            args.repeats)
    for pred in preds:
        print(pred.image)
        for label, p in pred.top:
            print(f"  {p:8.4f}  {label}")
    print(f"time: model load {load_s * 1e3:.1f} ms, first call {times['first_call_s'] * 1e3:.1f}"
          f" ms, steady call {times['steady_call_s'] * 1e3:.2f} ms (median of {args.repeats}, "
          f"batch of {len(preds)})")
    return 0
