"""Configuration validation: cells, settings, profiles and matrix expansion."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.config import (
    Cell,
    RunSettings,
    expand_matrix,
    load_profile,
    profile_from_dict,
)
from harness.errors import UserError


def test_cell_ids_are_readable_and_unique() -> None:
    cell = Cell(model="mobilenet_v2", mode="train", base="frozen", batch_size=16)
    assert cell.test_id == "mobilenet_v2-cpu-frozen-tf-fp32-bs16"
    assert cell.config_id == "train-mobilenet_v2-cpu-frozen-tf-fp32-bs16"
    assert cell.input_size == 224
    assert Cell(model="inception_v3").input_size == 299
    assert Cell(model="mobilenet_v2", device="gpu:1").test_id.startswith("mobilenet_v2-gpu1-")


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"model": "resnet9000"}, "model", "mobilenet_v2"),
        ({"model": "mobilenet_v2", "device": "tpu"}, "device", "cpu, gpu, gpu:N"),
        ({"model": "mobilenet_v2", "mode": "serve"}, "mode", "infer, train"),
        ({"model": "mobilenet_v2", "mode": "train", "base": "half"}, "base", "frozen, unfrozen"),
        ({"model": "mobilenet_v2", "engine": "tvm"}, "engine", "tf, xla"),
        ({"model": "mobilenet_v2", "precision": "fp8"}, "precision", "fp32"),
        ({"model": "mobilenet_v2", "batch_size": 0}, "batch_size", "integers > 0"),
        ({"model": "mobilenet_v2", "batch_size": -3}, "batch_size", "integers > 0"),
        ({"model": "mobilenet_v2", "engine": "litert", "mode": "train", "base": "frozen"},
         "mode (engine litert)", "infer"),
        ({"model": "mobilenet_v2", "engine": "tf", "precision": "int8"},
         "precision (engine tf)", "fp32, mixed"),
    ],
)
def test_bad_cells_name_field_value_and_allowed(kwargs: dict, field: str, allowed: str) -> None:
    with pytest.raises(UserError) as info:
        Cell(**kwargs)
    message = info.value.message
    assert message.startswith(f"{field}:")
    assert allowed in message


def test_base_is_only_for_training() -> None:
    with pytest.raises(UserError, match="base"):
        Cell(model="mobilenet_v2", mode="infer", base="frozen")


def test_data_directory_checks(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a directory"):
        Cell(model="tiny_cnn", data=str(tmp_path / "missing"))
    (tmp_path / "roses").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        Cell(model="tiny_cnn", data=str(tmp_path))
    (tmp_path / "roses" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    assert re.search(rf"-data-{tmp_path.name}_[0-9a-f]{{8}}$",
                     Cell(model="tiny_cnn", data=str(tmp_path)).test_id)


def image_folder(root: Path) -> Path:
    """A one-class image folder holding one (header-only) JPEG file."""
    (root / "daisy").mkdir(parents=True)
    (root / "daisy" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    return root


def test_same_basename_in_two_parents_gives_two_cells(tmp_path: Path) -> None:
    a, b = image_folder(tmp_path / "a" / "flowers"), image_folder(tmp_path / "b" / "flowers")
    profile = profile_from_dict({"matrix": {"models": ["tiny_cnn"], "modes": ["infer"],
                                            "data": [str(a), str(b)]}})
    cells = expand_matrix(profile)
    assert [c.data for c in cells] == [str(a), str(b)]
    ids = [c.config_id for c in cells]
    assert len(set(ids)) == 2
    assert all("-data-flowers_" in i for i in ids)  # readable: the basename stays


def test_same_model_file_name_in_two_folders_gives_two_ids(tmp_path: Path) -> None:
    cells = []
    for parent in ("x", "y"):
        (tmp_path / parent).mkdir()
        path = tmp_path / parent / "net.keras"
        write_keras_config(path, [None, 32, 32, 3])
        cells.append(Cell(model=str(path), weights=str(path)))
    assert cells[0].config_id != cells[1].config_id
    assert cells[0].test_id.startswith("net.keras_")


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ({"batch_sizes": [8, 8]}, "matrix.batch_sizes: 8 is listed twice"),
        ({"models": ["tiny_cnn", "tiny_cnn"]}, "matrix.models: 'tiny_cnn' is listed twice"),
        ({"input_sizes": [32, 32]}, "matrix.input_sizes: 32 is listed twice"),
    ],
)
def test_a_repeated_value_is_a_user_error(matrix: dict, message: str) -> None:
    profile = profile_from_dict({"matrix": {"models": ["tiny_cnn"], **matrix}})
    with pytest.raises(UserError, match=re.escape(message)):
        expand_matrix(profile)


def test_one_folder_spelled_two_ways_is_a_user_error(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    image_folder(tmp_path / "a" / "flowers")
    monkeypatch.chdir(tmp_path)
    profile = profile_from_dict({"matrix": {"models": ["tiny_cnn"],
                                            "data": ["a/flowers", "./a/../a/flowers"]}})
    with pytest.raises(UserError, match=r"'./a/../a/flowers' is listed twice \(the same as "
                                        r"'a/flowers'\)"):
        expand_matrix(profile)


def test_input_size_is_in_the_id_only_when_it_is_not_the_models_own() -> None:
    profile = profile_from_dict({"matrix": {"models": ["tiny_cnn"], "input_sizes": [32, 64]}})
    assert [c.config_id for c in expand_matrix(profile)] == [
        "infer-tiny_cnn-cpu-tf-fp32-bs8", "infer-tiny_cnn-64px-cpu-tf-fp32-bs8"]


def write_keras_config(path: Path, batch_shape: list, sequential: bool = False) -> None:
    """A .keras archive's config.json as Keras 3 writes it (only the part tfbench reads)."""
    import json
    import zipfile

    layer = {"module": "keras.layers", "class_name": "InputLayer",
             "config": {"batch_shape": batch_shape, "dtype": "float32", "name": "image"}}
    config = {"module": "keras", "class_name": "Sequential" if sequential else "Functional",
              "config": {"name": "net", "layers": [layer]}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))


def test_input_size_is_read_from_real_keras_and_h5_files(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((48, 48, 3)), keras.layers.Conv2D(2, 3)])
    model.save(tmp_path / "net.keras")
    model.save(tmp_path / "net.h5")
    functional = keras.Model(*(lambda x: (x, keras.layers.Conv2D(2, 3)(x)))(
        keras.Input((40, 40, 3))))
    functional.save(tmp_path / "f.keras")
    assert Cell(model=str(tmp_path / "net.keras")).input_size == 48
    assert Cell(model=str(tmp_path / "net.h5")).input_size == 48
    assert Cell(model=str(tmp_path / "f.keras")).input_size == 40
    assert Cell(model=str(tmp_path / "net.keras"), input_size=64).input_size == 64
    assert Cell(model=str(tmp_path / "net.keras")).test_id.startswith("net.keras_")
    assert "-48px-" in Cell(model=str(tmp_path / "net.keras")).test_id


def test_unknown_input_size_is_never_guessed(tmp_path: Path) -> None:
    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    with pytest.raises(UserError, match=r"input_size: not known for .*SavedModel.*--input-sizes"):
        Cell(model=str(saved))
    assert Cell(model=str(saved), input_size=96).input_size == 96
    with pytest.raises(UserError, match=r"input_size: not known for 'hub:.*TF Hub"):
        Cell(model=f"hub:{saved}")
    variable = tmp_path / "any.keras"
    write_keras_config(variable, [None, None, None, 3])
    with pytest.raises(UserError, match="accepts any image size"):
        Cell(model=str(variable))
    assert Cell(model=str(variable), input_size=64).input_size == 64
    with pytest.raises(UserError, match=r"input_size: 0 is not valid; allowed: integers > 0"):
        Cell(model="tiny_cnn", input_size=0)


def test_zero_no_longer_means_default() -> None:
    settings = RunSettings()
    assert settings.sample_interval_s is None
    assert settings.intra_op_threads is None and settings.inter_op_threads is None
    assert settings.interleave == 1
    assert settings.target_ci_rel is None
    for name, allowed in (("interleave", "integers >= 1 (1: no interleaving)"),
                          ("intra_op_threads", "leave it out for TensorFlow's default"),
                          ("inter_op_threads", "leave it out for TensorFlow's default"),
                          ("sample_interval_s", "leave it out for each sampler's own"),
                          ("target_ci_rel", "leave it out for no target")):
        with pytest.raises(UserError, match=re.escape(f"{name}: 0 is not valid")) as info:
            RunSettings(**{name: 0})
        assert allowed in info.value.message
    assert RunSettings(intra_op_threads=2, sample_interval_s=0.25).intra_op_threads == 2
    assert RunSettings(target_ci_rel=0.03).target_ci_rel == 0.03
    with pytest.raises(UserError, match=r"target_ci_rel: 1\.5 is not valid"):
        RunSettings(target_ci_rel=1.5)


def test_settings_validation() -> None:
    with pytest.raises(UserError, match="measured_steps"):
        RunSettings(measured_steps=0)
    with pytest.raises(UserError, match="timeout_s"):
        RunSettings(timeout_s=0)
    with pytest.raises(UserError, match="engine_options"):
        RunSettings(engine_options={"tvm": {}})


def test_quick_profile_expands_to_the_promised_matrix() -> None:
    cells = expand_matrix(load_profile("quick"))
    assert {c.model for c in cells} == {"mobilenet_v2", "inception_v3"}
    assert {c.device for c in cells} == {"cpu"}
    assert sorted({(c.mode, c.base) for c in cells}) == [
        ("infer", ""), ("train", "frozen"), ("train", "unfrozen")]
    assert len({c.batch_size for c in cells}) == 1
    assert len(cells) == 6


def test_full_profile_drops_unsupported_combinations() -> None:
    cells = expand_matrix(load_profile("full"))
    assert not [c for c in cells if c.engine == "litert" and c.mode == "train"]
    assert not [c for c in cells if c.engine == "tf" and c.precision == "int8"]
    assert {c.device for c in cells} == {"cpu", "gpu"}
    assert "mobilenet_v1" in {c.model for c in cells}
    assert len({c.config_id for c in cells}) == len(cells)


def test_a_value_no_engine_supports_is_an_error() -> None:
    profile = profile_from_dict({"matrix": {"models": ["tiny_cnn"], "engines": ["tf"],
                                            "precisions": ["int8"]}})
    with pytest.raises(UserError, match="precision: 'int8' is not supported by any selected"):
        expand_matrix(profile)


def test_profile_errors(tmp_path: Path) -> None:
    allowed = r"profile: 'nope' is not valid; allowed: (.*, )?full, (.*, )?quick"
    with pytest.raises(UserError, match=allowed):
        load_profile("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[matrix\nmodels = 3")
    with pytest.raises(UserError, match="not valid TOML"):
        load_profile(str(bad))
    with pytest.raises(UserError, match=r"does not exist|is not a file"):
        load_profile(str(tmp_path / "missing.toml"))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[settings]\nwarmup = 3\n[matrix]\nmodels=['tiny_cnn']\n")
    with pytest.raises(UserError, match=r"settings key: 'warmup'"):
        load_profile(str(unknown))
    empty = tmp_path / "empty.toml"
    empty.write_text("[matrix]\nmodels = []\n")
    with pytest.raises(UserError, match=r"matrix\.models"):
        load_profile(str(empty))


def test_overrides_replace_matrix_and_settings() -> None:
    profile = load_profile("quick").with_overrides(
        {"models": ["tiny_cnn"], "modes": ["infer"]}, {"measured_steps": 5, "warmup_steps": None})
    cells = expand_matrix(profile)
    assert [c.config_id for c in cells] == ["infer-tiny_cnn-cpu-tf-fp32-bs8"]
    assert profile.settings.measured_steps == 5
    assert profile.settings.warmup_steps == 3
