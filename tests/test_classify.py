"""`tfbench classify`: top-k, labels, safe-mode loading, and clear errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.classify import labels_path_for, looks_like_probabilities, softmax, top_k
from harness.cli import main


def test_top_k_orders_by_probability() -> None:
    probs = np.array([0.1, 0.6, 0.3])
    assert top_k(probs, ["a", "b", "c"], 2) == [("b", 0.6), ("c", 0.3)]


def test_logits_are_turned_into_probabilities() -> None:
    logits = np.array([[2.0, 0.0, -1.0]])
    assert not looks_like_probabilities(logits)
    p = softmax(logits)
    assert looks_like_probabilities(p)
    assert p[0].argmax() == 0 and p.sum() == pytest.approx(1.0)


def test_labels_sit_beside_a_fit_runs_model() -> None:
    assert labels_path_for(Path("r/models/fit-x.keras")) == Path("r/models/fit-x.labels.txt")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real Keras classifier: brighter images score higher on 'light'."""
    import keras

    root = tmp_path_factory.mktemp("model")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255.0, name="preprocess")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(2, name="head")
    model = keras.Model(inputs, head(x))
    head.set_weights([np.array([[-4.0, 4.0]] * 3, np.float32), np.array([2.0, -2.0],
                                                                          np.float32)])
    path = root / "m.keras"
    model.save(path)
    (root / "m.labels.txt").write_text("dark\nlight\n")
    return path


def _png(path: Path, value: int) -> Path:
    from PIL import Image

    Image.fromarray(np.full((20, 20, 3), value, np.uint8)).save(path)
    return path


def test_classify_prints_input_preprocessing_top_k_and_times(
        saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dark, light = _png(tmp_path / "dark.png", 10), _png(tmp_path / "light.png", 250)
    assert main(["classify", str(saved), str(dark), str(light), "--repeats", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "input 8x8x3" in out[0] and "rescaling x*0.00392157+0" in out[0]
    assert out[1] == str(dark) and out[2].split()[1] == "dark"
    assert out[4] == str(light) and out[5].split()[1] == "light"
    assert out[-1].startswith("time: model load ") and "steady call" in out[-1]


def _error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["classify", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfbench: error: ") and "Traceback" not in err
    return err


def test_unreadable_image_is_a_clear_error(saved: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert "cannot be read as an image" in _error([str(saved), str(bad)], capsys)
    assert "does not exist" in _error([str(saved), str(tmp_path / "none.png")], capsys)


def test_unreadable_model_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    image = _png(tmp_path / "i.png", 0)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip")
    (tmp_path / "junk.labels.txt").write_text("a\nb\n")
    assert "cannot be loaded as a Keras model" in _error([str(junk), str(image)], capsys)
    assert "does not exist" in _error([str(tmp_path / "no.keras"), str(image)], capsys)


def test_safe_mode_refuses_a_model_that_carries_code(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import keras

    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    (tmp_path / "lambda.labels.txt").write_text("a\n")
    err = _error([str(path), str(_png(tmp_path / "i.png", 0))], capsys)
    assert "cannot be loaded" in err


def test_missing_labels_and_label_count_mismatch(saved: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    image = _png(tmp_path / "i.png", 0)
    alone = tmp_path / "alone.keras"
    alone.write_bytes(saved.read_bytes())
    assert "pass --labels" in _error([str(alone), str(image)], capsys)
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    assert "2 outputs but there are 3 labels" in _error(
        [str(saved), str(image), "--labels", str(three)], capsys)
    assert "--top-k: 0" in _error([str(saved), str(image), "--top-k", "0"], capsys)
