"""The homework's MNIST classifiers and the ``mnist`` data set.

``mnist_dense`` (Flatten, Dense 128 relu, Dropout 0.2, Dense 10), ``mnist_mlp2``
(two L2-regularised hidden layers with dropout) and ``mnist_cnn`` (two
conv/pool blocks with dropout). Each is built as a *base* (everything before
the final dropout and dense layer) so that the harness's frozen / unfrozen /
cached logic applies to it as to any transfer-learning model; the head that
`harness.workloads` adds (Dropout 0.2, Dense 10 logits) completes it.

Data ``mnist`` is ``mnist.npz`` (``x_train, y_train, x_test, y_test``, uint8
28x28 images) from the Keras datasets cache: ``$KERAS_HOME/datasets/`` or
``~/.keras/datasets/``. It is downloaded only with ``--allow-download``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError

MNIST_FILE = "mnist.npz"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
L2 = 1e-4


def mnist_base(keras: Any, name: str) -> Any:
    """The base of one of the MNIST models (input: 28x28x1 images scaled to [0, 1])."""
    layers = keras.layers
    reg = keras.regularizers.l2(L2)
    body: list[Any]
    if name == "mnist_dense":
        body = [layers.Flatten(), layers.Dense(128, activation="relu")]
    elif name == "mnist_mlp2":
        body = [layers.Flatten(),
                layers.Dense(256, activation="relu", kernel_regularizer=reg),
                layers.Dropout(0.2),
                layers.Dense(128, activation="relu", kernel_regularizer=reg)]
    elif name == "mnist_cnn":
        body = [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
                layers.Dropout(0.25),
                layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
                layers.Dropout(0.25), layers.Flatten()]
    else:
        raise UserError.invalid("model", name, "mnist_dense, mnist_mlp2, mnist_cnn")
    return keras.Sequential([keras.Input((28, 28, 1)), *body], name=f"{name}_base")


def mnist_cache_path() -> Path:
    """Where Keras keeps ``mnist.npz``: ``$KERAS_HOME/datasets/`` or ``~/.keras/datasets/``."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "datasets" / MNIST_FILE


def check_mnist_available(allow_download: bool) -> None:
    """Refuse, before anything runs, an ``mnist`` cell without a cached file (unless the
    user allowed a download)."""
    path = mnist_cache_path()
    if path.is_file() or allow_download:
        return
    raise UserError(
        f"data: 'mnist' is not in the Keras datasets cache ({path}); place mnist.npz there "
        "(set KERAS_HOME to use another cache) or pass --allow-download"
    )


def load_mnist(allow_download: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All MNIST images (train and test pooled; the fit's validation split is drawn from
    them) as uint8 (N, 28, 28, 1), integer labels, and the class names ``0``..``9``."""
    path = mnist_cache_path()
    if not path.is_file():
        check_mnist_available(allow_download)
        _download(path)
    return read_mnist_npz(path)


def read_mnist_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a file in the ``mnist.npz`` layout, checking its keys and shapes."""
    try:
        with np.load(path) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise UserError(f"data: {str(path)!r} lacks {', '.join(missing)}; "
                                f"an mnist.npz holds {', '.join(NPZ_KEYS)}")
            x = np.concatenate([npz["x_train"], npz["x_test"]])
            y = np.concatenate([npz["y_train"], npz["y_test"]]).astype(np.int64)
    except (OSError, ValueError) as exc:
        raise UserError(f"data: {str(path)!r} is not a readable mnist.npz ({exc})") from None
    if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y):
        raise UserError(f"data: {str(path)!r} holds images of shape {x.shape[1:]}; "
                        "mnist.npz holds 28x28 grey images")
    classes = [str(c) for c in range(int(y.max()) + 1)]
    return x.astype(np.uint8)[..., None], y, classes


def _download(path: Path) -> None:
    import urllib.request

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    urllib.request.urlretrieve(MNIST_URL, tmp)  # a fixed https URL, only when allowed
    tmp.replace(path)


def write_digits_as_mnist(path: Path, seed: int = 0, test_fraction: float = 1 / 7) -> Path:
    """scikit-learn's 1,797 real 8x8 handwritten digits, resized to 28x28 uint8 like MNIST
    (20x20 digit centred in a 28x28 frame) and written in the ``mnist.npz`` layout. Tests
    and the accuracy benchmark train on it instead of inventing numbers."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for img in digits.images:  # values 0..16
        small = Image.fromarray((img * (255 / 16)).astype(np.uint8))
        frame = np.zeros((28, 28), np.uint8)
        frame[4:24, 4:24] = np.asarray(small.resize((20, 20), Image.Resampling.BILINEAR))
        images.append(frame)
    x = np.stack(images)
    y = digits.target.astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x_train=x[train], y_train=y[train], x_test=x[test],
                        y_test=y[test])
    return path
