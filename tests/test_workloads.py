"""Real models and real input pipelines, built in-process on tiny shapes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from harness.config import Cell, RunSettings
from harness.orchestrator import RunSession

pytestmark = pytest.mark.slow
SETTINGS = RunSettings(warmup_steps=1, measured_steps=3, samplers=(), timeout_s=300)


def make_image_folder(root: Path, classes: int = 3, per_class: int = 4) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)
            suffix = ".png" if i % 2 else ".jpg"
            Image.fromarray(pixels).save(folder / f"img{i}{suffix}")
    return root


def test_frozen_and_unfrozen_bases_differ_in_trainable_weights() -> None:
    from harness.workloads import build_workload

    frozen = build_workload(Cell(model="tiny_mobilenet_v2", mode="train", base="frozen"), SETTINGS)
    unfrozen = build_workload(Cell(model="tiny_mobilenet_v2", mode="train", base="unfrozen"),
                              SETTINGS)
    head_only = sum(int(np.prod(w.shape)) for w in frozen.model.trainable_weights)
    everything = sum(int(np.prod(w.shape)) for w in unfrozen.model.trainable_weights)
    assert head_only == 1280 * 5 + 5  # only the Dense head (1280 features, 5 classes)
    assert everything > 10 * head_only
    assert frozen.model.optimizer is not None and unfrozen.model.optimizer is not None


def test_full_size_models_have_the_documented_parameter_counts() -> None:
    from harness.workloads import build_workload

    infer = RunSettings(num_classes=5)
    mobilenet = build_workload(Cell(model="mobilenet_v2"), infer).model
    # 2,257,984 (base, per notes/tensorflow.md) + 1280*5+5 (head)
    assert mobilenet.count_params() == 2_257_984 + 1280 * 5 + 5
    assert mobilenet.input_shape == (None, 224, 224, 3)


def test_weights_and_model_files(tmp_path: Path) -> None:
    from harness.workloads import build_workload

    cell = Cell(model="tiny_cnn")
    source = build_workload(cell, SETTINGS).model
    weights = tmp_path / "tiny.weights.h5"
    source.save_weights(weights)
    loaded = build_workload(Cell(model="tiny_cnn", weights=str(weights)), SETTINGS).model
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x), source.predict_on_batch(x), rtol=1e-6)
    # a .keras file as the base of a new model
    base_file = tmp_path / "base.keras"
    source.get_layer("tiny_cnn_base").save(base_file)
    from_file = build_workload(Cell(model=str(base_file), input_size=32), SETTINGS).model
    assert from_file.output_shape == (None, 5)


def test_image_folder_cell_records_input_wait(tmp_path: Path) -> None:
    folder = make_image_folder(tmp_path / "flowers")
    (tmp_path / "run").mkdir()
    session = RunSession(tmp_path / "run", SETTINGS, run_id="t", t0_ns=time.perf_counter_ns())
    cell = Cell(model="tiny_cnn", mode="train", base="frozen", batch_size=4, data=str(folder))
    outcome = session.run_cell(cell)
    assert outcome.status == "ok", outcome.reason
    measured = [s for s in outcome.steps if s["phase"] == "measure"]
    assert all(s["input_wait_s"] >= 0 for s in measured)
    assert outcome.row["input_wait_s_median"] is not None
    assert all(np.isfinite(s["loss"]) for s in measured)


def test_corrupt_image_body_fails_the_cell_with_the_decoder_error(tmp_path: Path) -> None:
    folder = make_image_folder(tmp_path / "flowers", classes=1, per_class=1)
    (folder / "class0" / "bad.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 64)
    (tmp_path / "run").mkdir()
    session = RunSession(tmp_path / "run", SETTINGS, run_id="t", t0_ns=time.perf_counter_ns())
    outcome = session.run_cell(Cell(model="tiny_cnn", batch_size=2, data=str(folder)))
    assert outcome.status == "failed"
    assert "InvalidArgumentError" in outcome.reason


def test_hub_savedmodel_base_through_tf_keras(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow_hub", reason="the 'hub' extra is not installed")
    import tensorflow as tf

    class TinyHub(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = tf.Variable(tf.random.normal([3, 6], seed=1))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, images: tf.Tensor) -> tf.Tensor:
            return tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.kernel)

    path = tmp_path / "hub_module"
    tf.saved_model.save(TinyHub(), str(path))
    (tmp_path / "run").mkdir()
    session = RunSession(tmp_path / "run", SETTINGS, run_id="t", t0_ns=time.perf_counter_ns())
    for cell in (Cell(model=f"hub:{path}", input_size=32, batch_size=2),
                 Cell(model=f"hub:{path}", input_size=32, batch_size=2, mode="train",
                      base="frozen")):
        outcome = session.run_cell(cell)
        assert outcome.status == "ok", outcome.reason


def test_random_weights_get_realistic_batch_norm_statistics() -> None:
    """Without the data-dependent BatchNorm initialisation a random MobileNetV2 outputs
    logits near 1e-12, which makes every parity check meaningless."""
    from harness.workloads import build_workload

    model = build_workload(Cell(model="tiny_mobilenet_v2"), SETTINGS).model
    x = np.random.default_rng(3).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    logits = model.predict_on_batch(x)
    assert np.abs(logits).max() > 1e-2
    norms = [layer for layer in model.get_layer(index=2).layers
             if layer.__class__.__name__ == "BatchNormalization"]
    assert norms and all(layer.momentum > 0.9 for layer in norms)  # momentum restored
    assert not np.allclose(norms[0].moving_variance.numpy(), 1.0)
