"""Typed, validated configuration: benchmark cells, run settings and profiles.

Everything the user can set passes through here once. Values are checked in
`__post_init__` and a bad one raises `UserError` naming the field, the value
and what is allowed. Profiles are TOML files; `expand_matrix` turns a profile's
matrix into the list of cells to run.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.engines import ENGINES
from harness.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MODES = ("infer", "train")
BASES = ("frozen", "unfrozen")
PRECISIONS = ("fp32", "mixed", "fp16", "int8", "dynamic")
WEIGHTS_KEYWORDS = ("random", "imagenet")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# name -> (input size, keras.applications builder); tiny_* models are for tests.
MODELS: dict[str, int] = {
    "mobilenet_v2": 224,
    "inception_v3": 299,
    "mobilenet_v1": 224,
    "tiny_cnn": 32,
    "tiny_mobilenet_v2": 32,
}
MODEL_PREFIXES = ("hub:",)
PROFILES_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "profiles"
_DEVICE_RE = re.compile(r"^(cpu|gpu)(:\d+)?$")


def _check_choice(name: str, value: object, allowed: Sequence[object]) -> None:
    if value not in allowed:
        raise UserError.invalid(name, value, allowed)


def _check_model(value: str) -> None:
    if value in MODELS or value.startswith(MODEL_PREFIXES):
        return
    path = Path(value)
    if path.suffix in (".keras", ".h5") or (path / "saved_model.pb").exists():
        if not path.exists():
            raise UserError(f"model: {value!r} does not exist")
        return
    raise UserError.invalid(
        "model", value,
        f"{', '.join(MODELS)}, hub:<handle or local path>, or a .keras/.h5 file or SavedModel dir",
    )


def _check_weights(value: str) -> None:
    if value in WEIGHTS_KEYWORDS:
        return
    path = Path(value)
    if path.suffix in (".keras", ".h5") or path.is_dir():
        if not path.exists():
            raise UserError(f"weights: {value!r} does not exist")
        return
    raise UserError.invalid("weights", value, "random, imagenet, or a path to a .keras/.h5 file")


def check_data_dir(value: str) -> None:
    """An image folder: one sub-folder of JPEG/PNG images per class."""
    path = Path(value)
    if not path.is_dir():
        raise UserError(
            f"data: {value!r} is not a directory; allowed: synthetic, or an image folder "
            "with one sub-folder of JPEG/PNG files per class"
        )
    classes = [p for p in sorted(path.iterdir()) if p.is_dir()]
    counts = {
        c.name: sum(1 for f in c.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for c in classes
    }
    if not classes or not any(counts.values()):
        raise UserError(
            f"data: {value!r} holds no images; expected one sub-folder per class with "
            f"{', '.join(IMAGE_SUFFIXES)} files"
        )


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", value).strip("_")


@dataclass(frozen=True)
class Cell:
    """One benchmark cell: a single combination of the factors."""

    model: str
    device: str = "cpu"
    mode: str = "infer"
    base: str = ""
    engine: str = "tf"
    precision: str = "fp32"
    batch_size: int = 8
    weights: str = "random"
    data: str = "synthetic"
    input_size: int = 0  # 0: the model's default

    def __post_init__(self) -> None:
        _check_model(self.model)
        _check_weights(self.weights)
        if not _DEVICE_RE.match(self.device):
            raise UserError.invalid("device", self.device, "cpu, gpu, gpu:N")
        _check_choice("mode", self.mode, MODES)
        if self.mode == "train":
            _check_choice("base", self.base, BASES)
        elif self.base:
            raise UserError(
                f"base: {self.base!r} is only for mode 'train'; leave it empty for infer")
        _check_choice("engine", self.engine, tuple(ENGINES))
        _check_choice("precision", self.precision, PRECISIONS)
        spec = ENGINES[self.engine]
        if self.mode not in spec.modes:
            raise UserError.invalid(f"mode (engine {self.engine})", self.mode, spec.modes)
        if self.precision not in spec.precisions:
            raise UserError.invalid(f"precision (engine {self.engine})", self.precision,
                                    spec.precisions)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size <= 0:
            raise UserError.invalid("batch_size", self.batch_size, "integers > 0")
        if self.data != "synthetic":
            check_data_dir(self.data)
        if self.input_size == 0:
            object.__setattr__(self, "input_size", MODELS.get(self.model, 224))
        elif self.input_size < 0:
            raise UserError.invalid("input_size", self.input_size, "integers > 0")

    @property
    def test_id(self) -> str:
        """Readable id used for pytest: ``mobilenet_v2-cpu-frozen-tf-fp32-bs16``."""
        model = self.model if self.model in MODELS else _slug(Path(self.model).name)
        parts = [model, self.device.replace(":", "")]
        if self.base:
            parts.append(self.base)
        parts += [self.engine, self.precision, f"bs{self.batch_size}"]
        if self.weights != "random":
            parts.append("w-" + _slug(Path(self.weights).stem))
        if self.data != "synthetic":
            parts.append("data-" + _slug(Path(self.data).name))
        return "-".join(parts)

    @property
    def config_id(self) -> str:
        """Unique within a run: the mode followed by the test id."""
        return f"{self.mode}-{self.test_id}"

    def factors(self) -> dict[str, Any]:
        """The factor columns, as written to the CSV files."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_factors(cls, values: Mapping[str, Any]) -> Cell:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class RunSettings:
    """How each cell is measured and how the run behaves."""

    warmup_steps: int = 3
    measured_steps: int = 30
    min_duration_s: float = 0.0
    target_ci_rel: float = 0.0  # keep measuring until the median's 95% CI is within ±this
    max_measured_steps: int = 1000
    timeout_s: float = 900.0
    num_classes: int = 5
    seed: int = 0
    allow_download: bool = False
    samplers: tuple[str, ...] = ("psutil",)
    sample_interval_s: float = 0.0  # 0: each sampler's own default
    repeat: int = 1
    interleave: int = 0  # blocks per cell; 0 or 1 = no interleaving
    plots: bool = True
    intra_op_threads: int = 0  # 0: TensorFlow's default
    inter_op_threads: int = 0
    engine_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("warmup_steps", "measured_steps", "num_classes", "repeat",
                     "intra_op_threads", "inter_op_threads", "interleave", "seed",
                     "max_measured_steps"):
            value = getattr(self, name)
            lowest = 1 if name in ("measured_steps", "num_classes", "repeat",
                                   "max_measured_steps") else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise UserError.invalid(name, value, f"integers >= {lowest}")
        for name in ("min_duration_s", "timeout_s", "sample_interval_s", "target_ci_rel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UserError.invalid(name, value, "numbers >= 0")
        if self.timeout_s == 0:
            raise UserError.invalid("timeout_s", self.timeout_s, "numbers > 0")
        from harness.samplers import parse_sampler_names

        object.__setattr__(self, "samplers", parse_sampler_names(self.samplers))
        if not isinstance(self.engine_options, Mapping):
            raise UserError.invalid("engine_options", self.engine_options, "a table per engine")
        for name in self.engine_options:
            _check_choice("engine_options", name, tuple(ENGINES))


MATRIX_KEYS = {
    "models": "model",
    "devices": "device",
    "modes": "mode",
    "bases": "base",
    "engines": "engine",
    "precisions": "precision",
    "batch_sizes": "batch_size",
    "weights": "weights",
    "data": "data",
}


@dataclass(frozen=True)
class Profile:
    """A named matrix of factor values plus run settings."""

    name: str
    matrix: Mapping[str, tuple[Any, ...]]
    settings: RunSettings
    description: str = ""

    def __post_init__(self) -> None:
        for key, values in self.matrix.items():
            _check_choice("matrix key", key, tuple(MATRIX_KEYS))
            if not isinstance(values, (list, tuple)) or not values:
                raise UserError.invalid(f"matrix.{key}", values, "a non-empty list")
        if "models" not in self.matrix:
            raise UserError("matrix.models: missing; list at least one model")

    def with_overrides(self, matrix: Mapping[str, Sequence[Any] | None],
                       settings: Mapping[str, Any | None]) -> Profile:
        """Return a copy with command-line overrides applied (None = keep)."""
        new_matrix = dict(self.matrix)
        new_matrix.update({k: tuple(v) for k, v in matrix.items() if v})
        kept = {k: v for k, v in settings.items() if v is not None}
        return replace(self, matrix=new_matrix, settings=replace(self.settings, **kept))


def expand_matrix(profile: Profile) -> list[Cell]:
    """All valid cells of a profile's matrix, in a stable order.

    Combinations an engine cannot run (LiteRT training, TF-TRT mixed precision)
    are left out; a factor value that ends up in no cell at all is an error,
    since the user asked for it.
    """
    m = profile.matrix
    models = m["models"]
    devices = m.get("devices", ("cpu",))
    modes = m.get("modes", ("infer",))
    bases = m.get("bases", BASES)
    engines = m.get("engines", ("tf",))
    precisions = m.get("precisions", ("fp32",))
    batch_sizes = m.get("batch_sizes", (8,))
    weights = m.get("weights", ("random",))
    datas = m.get("data", ("synthetic",))
    for e in engines:
        _check_choice("engines", e, tuple(ENGINES))
    for p in precisions:
        _check_choice("precisions", p, PRECISIONS)
    for mode in modes:
        _check_choice("modes", mode, MODES)
    for b in bases:
        _check_choice("bases", b, BASES)
    cells: list[Cell] = []
    seen: set[str] = set()
    for model, device, mode, engine, precision, bs, w, d in itertools.product(
        models, devices, modes, engines, precisions, batch_sizes, weights, datas
    ):
        spec = ENGINES[engine]
        if mode not in spec.modes or precision not in spec.precisions:
            continue
        for base in bases if mode == "train" else ("",):
            cell = Cell(model=model, device=device, mode=mode, base=base, engine=engine,
                        precision=precision, batch_size=bs, weights=w, data=d)
            if cell.config_id not in seen:
                seen.add(cell.config_id)
                cells.append(cell)
    _check_all_used(cells, {"engine": engines, "precision": precisions, "mode": modes})
    return cells


def _check_all_used(cells: Iterable[Cell], asked: Mapping[str, Sequence[str]]) -> None:
    cells = list(cells)
    selected = [ENGINES[e] for e in asked["engine"]]
    for attr in ("precision", "mode", "engine"):
        used = {getattr(c, attr) for c in cells}
        for value in asked[attr]:
            if value in used:
                continue
            if attr == "engine":
                spec = ENGINES[value]
                raise UserError(
                    f"engine: {value!r} makes no cell with the selected modes and precisions; "
                    f"it runs modes {', '.join(spec.modes)} "
                    f"at precisions {', '.join(spec.precisions)}"
                )
            support = "; ".join(
                f"{s.name}: {', '.join(s.modes if attr == 'mode' else s.precisions)}"
                for s in selected
            )
            raise UserError(
                f"{attr}: {value!r} is not supported by any selected engine ({support})"
            )


def resolve_profile_path(name_or_path: str) -> Path:
    """A profile name (``quick``, ``full``) or the path of a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserError(f"profile: {name_or_path!r} is not a file")
        return path
    candidate = PROFILES_DIR / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
    raise UserError.invalid("profile", name_or_path, [*known, "a path to a .toml file"])


def load_profile(name_or_path: str) -> Profile:
    """Read and validate a profile TOML file."""
    path = resolve_profile_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"profile {path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UserError(f"profile {path}: cannot be read: {exc.strerror}") from None
    return profile_from_dict(raw, default_name=path.stem, where=str(path))


def profile_from_dict(raw: Mapping[str, Any], default_name: str = "custom",
                      where: str = "profile") -> Profile:
    unknown = set(raw) - {"profile", "matrix", "settings", "engine_options"}
    if unknown:
        raise UserError.invalid(f"{where}: table", sorted(unknown)[0],
                                "profile, matrix, settings, engine_options")
    meta = raw.get("profile", {})
    settings_raw = dict(raw.get("settings", {}))
    known = {f.name for f in fields(RunSettings)} - {"engine_options"}
    for key in settings_raw:
        if key not in known:
            raise UserError.invalid(f"{where}: settings key", key, sorted(known))
    if "samplers" in settings_raw:
        settings_raw["samplers"] = tuple(settings_raw["samplers"])
    settings = RunSettings(**settings_raw, engine_options=raw.get("engine_options", {}))
    matrix = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.get("matrix", {}).items()}
    return Profile(name=meta.get("name", default_name), matrix=matrix, settings=settings,
                   description=meta.get("description", ""))
