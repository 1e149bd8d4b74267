"""The MNIST models and the ``mnist`` data set, on scikit-learn's real handwritten digits
written in the mnist.npz layout."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserError
from harness.mnist import read_mnist_npz, write_digits_as_mnist


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("keras_home")
    write_digits_as_mnist(home / "datasets" / "mnist.npz")
    return home


def test_digits_are_written_in_the_mnist_layout(keras_home: Path) -> None:
    path = keras_home / "datasets" / "mnist.npz"
    with np.load(path) as npz:
        assert sorted(npz.files) == ["x_test", "x_train", "y_test", "y_train"]
        assert npz["x_train"].shape[1:] == (28, 28) and npz["x_train"].dtype == np.uint8
    x, y, classes = read_mnist_npz(path)
    assert x.shape == (1797, 28, 28, 1) and len(y) == 1797
    assert classes == [str(d) for d in range(10)]
    assert np.bincount(y).min() > 170  # the real digits: ~180 of each
    assert x[:, :4].max() == 0 and x.max() > 200  # a 20x20 digit centred in a 28x28 frame


def test_a_file_without_the_mnist_keys_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "mnist.npz"
    np.savez(bad, images=np.zeros((2, 28, 28)))
    with pytest.raises(UserError, match="lacks x_train"):
        read_mnist_npz(bad)


@pytest.mark.parametrize("name,params,layers", [
    ("mnist_dense", 101_770, ["Flatten", "Dense"]),
    ("mnist_mlp2", 235_146, ["Flatten", "Dense", "Dropout", "Dense"]),
    ("mnist_cnn", 34_826, ["Conv2D", "MaxPooling2D", "Dropout", "Conv2D", "MaxPooling2D",
                           "Dropout", "Flatten"]),
])
def test_mnist_models_are_the_homework_models(name: str, params: int, layers: list[str]
                                              ) -> None:
    from harness.config import Cell, RunSettings
    from harness.workloads import build_workload

    cell = Cell(name, mode="fit", base="unfrozen", data="mnist", batch_size=4)
    w = build_workload(cell, RunSettings(), num_classes=10)
    model = w.model
    assert tuple(model.inputs[0].shape[1:]) == (28, 28, 1)
    assert model.count_params() == params
    base = model.get_layer(f"{name}_base")
    assert [type(layer).__name__ for layer in base.layers] == layers
    assert model.get_layer("dropout").rate == 0.2 and model.get_layer("head").units == 10
    if name == "mnist_mlp2":
        model(np.zeros((1, 28, 28, 1), np.float32))
        assert len(model.losses) == 2  # the two L2-regularised hidden layers


def test_a_grey_image_folder_feeds_a_mnist_model(tmp_path: Path, keras_home: Path) -> None:
    from PIL import Image

    from harness.data import load_labelled, ordered_dataset

    x, y, _ = read_mnist_npz(keras_home / "datasets" / "mnist.npz")
    for i in range(12):
        folder = tmp_path / "digits" / str(y[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i, :, :, 0]).save(folder / f"{i}.png")
    data = load_labelled(str(tmp_path / "digits"))
    images, labels = next(iter(ordered_dataset(data, np.arange(4), 4, 28, 1,
                                               drop_remainder=True)))
    assert images.shape == (4, 28, 28, 1)
    assert data.files is not None
    idx = int(Path(data.files[0]).stem)  # the folder's first file, read back unchanged
    np.testing.assert_array_equal(images.numpy()[0, :, :, 0], x[idx, :, :, 0])
    assert int(labels.numpy()[0]) == y[idx]


@pytest.mark.slow
def test_fit_on_mnist_data(tmp_path: Path, keras_home: Path) -> None:
    env = {**os.environ, "KERAS_HOME": str(keras_home)}
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--profile", "mnist_digits", "--models",
         "mnist_dense", "--epochs", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next(out.iterdir())
    (row,) = list(csv.DictReader((run / "configs.csv").open()))
    assert row["status"] == "ok" and row["data"] == "mnist" and row["optimizer"] == "adam"
    # 20% of each digit class held out (rounded per class): 359 of the 1,797 digits
    assert int(row["val_images"]) == 359 and int(row["train_images"]) == 1438
    assert float(row["val_accuracy_final"]) > 0.5  # one epoch of real digits: well above 10%
    labels = (run / "models" / f"{row['config_id']}.labels.txt").read_text().split()
    assert labels == [str(d) for d in range(10)]
