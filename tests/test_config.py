"""Configuration validation: cells, settings, profiles and matrix expansion."""

from __future__ import annotations

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
    assert Cell(model="tiny_cnn", data=str(tmp_path)).test_id.endswith("data-" + tmp_path.name)


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
    allowed = r"profile: 'nope' is not valid; allowed: (.*, )?full, quick"
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
