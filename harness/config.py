"""Typed, validated configuration: benchmark cells, run settings and profiles.

Everything the user can set passes through here once. Values are checked in
`__post_init__` and a bad one raises `UserError` naming the field, the value
and what is allowed. Profiles are TOML files; `expand_matrix` turns a profile's
matrix into the list of cells to run.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import sys
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.engine_table import ENGINES, engine_options_problem
from harness.errors import UserError
from harness.model_input import file_input_size

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on Python 3.10 only
    pass

MODES = ("infer", "train", "fit")
BASES = ("frozen", "unfrozen", "cached")
TRAINING_MODES = ("train", "fit")  # modes that take a base and a learning rate
OPTIMIZERS = ("sgd", "adam")
DEFAULT_LEARNING_RATE = 0.01
FIT_ENGINES = ("tf", "xla")  # fit mode and base=cached train through TensorFlow (harness.fit)
PRECISIONS = ("fp32", "mixed", "fp16", "int8", "dynamic")
WEIGHTS_KEYWORDS = ("random", "imagenet")
# Data-parallel strategies (harness/strategy.py); only the tf and xla engines run them.
STRATEGIES = ("none", "mirrored", "multiworker")
STRATEGY_ENGINES = ("tf", "xla")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# name -> (input size, keras.applications builder); tiny_* models are for tests.
MODELS: dict[str, int] = {
    "mobilenet_v2": 224,
    "inception_v3": 299,
    "mobilenet_v1": 224,
    "tiny_cnn": 32,
    "tiny_mobilenet_v2": 32,
    # The homework's MNIST classifiers (28x28 grey input; harness.mnist).
    "mnist_dense": 28,
    "mnist_mlp2": 28,
    "mnist_cnn": 28,
}
MNIST_DATA = "mnist"  # data keyword: mnist.npz from the Keras datasets cache
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


def _check_strategy(strategy: str, engine: str, mode: str, base: str = "") -> None:
    _check_choice("strategy", strategy, STRATEGIES)
    if strategy == "none":
        return
    if mode not in ("infer", "train") or base == "cached":
        raise UserError(f"strategy: {strategy!r} times infer and train steps; mode {mode!r}"
                        f"{' with base cached' if base == 'cached' else ''} runs its own "
                        "loop: use strategy 'none'")
    if engine not in STRATEGY_ENGINES:
        raise UserError(f"strategy: {strategy!r} runs on engines {', '.join(STRATEGY_ENGINES)}, "
                        f"not {engine!r}; use strategy 'none' for that engine")
    if strategy == "multiworker" and mode != "train":
        raise UserError(f"strategy: 'multiworker' is for mode 'train', not {mode!r} "
                        "(inference has no gradients to synchronise)")


def strategy_allows(strategy: str, engine: str, mode: str, base: str = "") -> bool:
    try:
        _check_strategy(strategy, engine, mode, base)
    except UserError:
        return False
    return True


def model_input_size(model: str) -> int:
    """The input size a model takes: known models' own, or read from a .keras/.h5 file;
    `UserError` (asking for ``input_size``) where it cannot be known without loading it."""
    return MODELS[model] if model in MODELS else file_input_size(model)


def _check_weights(value: str) -> None:
    if value in WEIGHTS_KEYWORDS:
        return
    path = Path(value)
    if path.is_dir():
        raise UserError(f"weights: {value!r} is a directory; allowed: random, imagenet, or a "
                        "path to a .keras/.h5 weights file")
    if path.suffix in (".keras", ".h5"):
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


MNIST_MODELS = tuple(m for m in MODELS if m.startswith("mnist_"))


def _engine_mode(mode: str) -> str:
    """The engine capability a mode needs: fit trains, so it needs a training engine."""
    return "train" if mode == "fit" else mode


def _check_learning_rate(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value != value or value == float("inf"):
        raise UserError.invalid("learning_rate", value, "numbers > 0")


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", value).strip("_")


def resolved(value: str) -> str:
    """The key that says whether two spellings name the same thing: an existing local path
    resolved to its absolute form; anything else (a keyword, a URL handle) as written."""
    local = value[4:] if value.startswith("hub:") else value
    if local.startswith(("http://", "https://")) or not Path(local).exists():
        return value
    return ("hub:" if value.startswith("hub:") else "") + str(Path(local).resolve())


def path_label(value: str, name: str) -> str:
    """A readable, unique id part for a path (or handle): ``name`` (its basename or stem) and
    the first 8 hex digits of the SHA-1 of the resolved path, so that two ``flowers/``
    folders in different parents give two ids."""
    digest = hashlib.sha1(resolved(value).encode("utf8")).hexdigest()[:8]
    return f"{_slug(name) or 'path'}_{digest}"


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
    # Given as None: the model's own size (known models; read from a .keras/.h5 file);
    # __post_init__ always leaves an int here, so readers see an int.
    input_size: int = None  # type: ignore[assignment]
    learning_rate: float | None = None  # train and fit modes (default 0.01); None for infer
    strategy: str = "none"

    def __post_init__(self) -> None:
        _check_model(self.model)
        _check_weights(self.weights)
        if not _DEVICE_RE.match(self.device):
            raise UserError.invalid("device", self.device, "cpu, gpu, gpu:N")
        _check_choice("mode", self.mode, MODES)
        if self.mode in TRAINING_MODES:
            _check_choice("base", self.base, BASES)
        elif self.base == "cached":
            raise UserError("base: 'cached' trains a head on cached base features; it needs "
                            "mode train or fit, not infer")
        elif self.base:
            raise UserError(
                f"base: {self.base!r} is only for modes train and fit; leave it empty for infer")
        if self.mode in TRAINING_MODES:
            if self.learning_rate is None:
                object.__setattr__(self, "learning_rate", DEFAULT_LEARNING_RATE)
            _check_learning_rate(self.learning_rate)
        elif self.learning_rate is not None:
            raise UserError(f"learning_rate: {self.learning_rate!r} is only for modes train "
                            "and fit; leave it unset for infer")
        _check_choice("engine", self.engine, tuple(ENGINES))
        _check_choice("precision", self.precision, PRECISIONS)
        spec = ENGINES[self.engine]
        if _engine_mode(self.mode) not in spec.modes:
            raise UserError.invalid(f"mode (engine {self.engine})", self.mode, spec.modes)
        if self.precision not in spec.precisions:
            raise UserError.invalid(f"precision (engine {self.engine})", self.precision,
                                    spec.precisions)
        if (self.mode == "fit" or self.base == "cached") and self.engine not in FIT_ENGINES:
            raise UserError.invalid(f"engine (mode {self.mode}, base {self.base})", self.engine,
                                    FIT_ENGINES)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size <= 0:
            raise UserError.invalid("batch_size", self.batch_size, "integers > 0")
        if (self.data == MNIST_DATA or self.model in MNIST_MODELS) and self.mode != "fit":
            raise UserError.invalid(f"mode (model {self.model}, data {self.data})",
                                    self.mode, "fit (MNIST models and data run in fit mode)")
        if self.mode == "fit" and self.data == "synthetic":
            raise UserError("data: mode 'fit' needs a data set to learn and validate on; "
                            "allowed: an image folder (one sub-folder per class) or mnist")
        if self.data not in ("synthetic", MNIST_DATA):
            check_data_dir(self.data)
        _check_strategy(self.strategy, self.engine, self.mode, self.base)
        if self.input_size is None:
            object.__setattr__(self, "input_size", model_input_size(self.model))
        elif isinstance(self.input_size, bool) or not isinstance(self.input_size, int) \
                or self.input_size <= 0:
            raise UserError.invalid("input_size", self.input_size, "integers > 0")

    @property
    def test_id(self) -> str:
        """Readable id used for pytest: ``mobilenet_v2-cpu-frozen-tf-fp32-bs16``."""
        model = self.model if self.model in MODELS else path_label(self.model,
                                                                   Path(self.model).name)
        if self.model not in MODELS or self.input_size != MODELS[self.model]:
            model += f"-{self.input_size}px"
        parts = [model, self.device.replace(":", "")]
        if self.base:
            parts.append(self.base)
        parts += [self.engine, self.precision, f"bs{self.batch_size}"]
        if self.weights != "random":
            weights = (self.weights if self.weights in WEIGHTS_KEYWORDS
                       else path_label(self.weights, Path(self.weights).stem))
            parts.append("w-" + weights)
        if self.data != "synthetic":
            parts.append("data-" + path_label(self.data, Path(self.data).name))
        if self.mode in TRAINING_MODES and (self.mode == "fit"
                                            or self.learning_rate != DEFAULT_LEARNING_RATE):
            parts.append("lr" + f"{self.learning_rate:g}".replace("+", ""))
        if self.strategy != "none":
            parts.append(self.strategy)
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
    # Keep measuring until the median's 95% CI is within ±this (relative); None: no target.
    target_ci_rel: float | None = None
    max_measured_steps: int = 1000
    timeout_s: float = 900.0
    num_classes: int = 5
    seed: int = 0
    allow_download: bool = False
    samplers: tuple[str, ...] = ("psutil",)
    sample_interval_s: float | None = None  # None: each sampler's own interval
    repeat: int = 1
    interleave: int = 1  # blocks per cell, alternating with the other cells; 1: one block
    plots: bool = True
    intra_op_threads: int | None = None  # None: TensorFlow's default
    inter_op_threads: int | None = None
    engine_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    trace_steps: int = 0  # profiling: steps traced after the measured ones; 0 = no trace
    # Training and fit mode (harness.fit): None means "not set" for the optional ones.
    optimizer: str = "sgd"  # sgd (momentum 0.9) or adam
    epochs: int = 1
    max_steps: int | None = None  # caps the fit's training steps
    target_accuracy: float = 0.9  # validation accuracy whose first reach is timed
    validation_fraction: float = 0.2
    eval_every_steps: int | None = None  # None: once per epoch
    workers: int = 2  # processes of a strategy=multiworker cell
    mirrored_cpu_devices: int = 2  # logical CPU devices of a strategy=mirrored cell on cpu

    def __post_init__(self) -> None:
        _check_fit_settings(self)
        for name in ("warmup_steps", "measured_steps", "num_classes", "repeat", "interleave",
                     "seed", "max_measured_steps", "trace_steps", "workers",
                     "mirrored_cpu_devices"):
            value = getattr(self, name)
            lowest = 0 if name in ("warmup_steps", "seed", "trace_steps") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                allowed = f"integers >= {lowest}" + (" (1: no interleaving)"
                                                     if name == "interleave" else "")
                raise UserError.invalid(name, value, allowed)
        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise UserError.invalid(name, value,
                                        "integers >= 1 (leave it out for TensorFlow's default)")
        for name in ("min_duration_s", "timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise UserError.invalid(name, value, "finite numbers >= 0")
        target = self.target_ci_rel
        if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                                   or not 0 < target < 1):
            raise UserError.invalid("target_ci_rel", target,
                                    "numbers in (0, 1), e.g. 0.03 for ±3% (leave it out for no "
                                    "target)")
        interval = self.sample_interval_s
        if interval is not None and (isinstance(interval, bool)
                                     or not isinstance(interval, (int, float))
                                     or not math.isfinite(interval) or not interval > 0):
            raise UserError.invalid("sample_interval_s", interval,
                                    "numbers > 0 (leave it out for each sampler's own interval)")
        for name in ("allow_download", "plots"):
            if not isinstance(getattr(self, name), bool):
                raise UserError.invalid(name, getattr(self, name), "true, false")
        if self.timeout_s == 0:
            raise UserError.invalid("timeout_s", self.timeout_s, "numbers > 0")
        from harness.samplers import parse_sampler_names

        object.__setattr__(self, "samplers", parse_sampler_names(self.samplers))
        if not isinstance(self.engine_options, Mapping):
            raise UserError.invalid("engine_options", self.engine_options, "a table per engine")
        for name, options in self.engine_options.items():
            problem = engine_options_problem(name, options)
            if problem:
                raise UserError(problem)


def _check_fit_settings(s: RunSettings) -> None:
    _check_choice("optimizer", s.optimizer, OPTIMIZERS)
    for name in ("epochs", "max_steps", "eval_every_steps"):
        value = getattr(s, name)
        if value is None and name != "epochs":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError.invalid(name, value, "integers >= 1")
    t = s.target_accuracy
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 1:
        raise UserError.invalid("target_accuracy", t, "numbers in (0, 1]")
    v = s.validation_fraction
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        raise UserError.invalid("validation_fraction", v, "numbers in (0, 1)")


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
    "input_sizes": "input_size",
    "learning_rates": "learning_rate",
    "strategies": "strategy",
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
            for value in values:
                if key in ("batch_sizes", "input_sizes"):
                    wrong, allowed = isinstance(value, bool) or not isinstance(value, int), \
                        "integers > 0"
                elif key == "learning_rates":  # range and finiteness: _check_learning_rate
                    wrong, allowed = isinstance(value, (bool, str)) or \
                        not isinstance(value, (int, float)), "numbers > 0"
                else:
                    wrong, allowed = not isinstance(value, str), "strings"
                if wrong:
                    raise UserError.invalid(f"matrix.{key}", value, allowed)
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
    bases = m.get("bases", ("frozen", "unfrozen"))  # cached only when asked for
    engines = m.get("engines", ("tf",))
    precisions = m.get("precisions", ("fp32",))
    batch_sizes = m.get("batch_sizes", (8,))
    weights = m.get("weights", ("random",))
    datas = m.get("data", ("synthetic",))
    sizes = m.get("input_sizes", (None,))
    strategies = m.get("strategies", ("none",))
    for st in strategies:
        _check_choice("strategies", st, STRATEGIES)
    # none first: a strategy cell's scaling efficiency needs its single-replica cell's rate
    strategies = tuple(sorted(strategies, key=STRATEGIES.index))
    for key, values in m.items():
        _check_no_repeats(key, values)
    rates = m.get("learning_rates", (DEFAULT_LEARNING_RATE,))
    for rate in rates:
        _check_learning_rate(rate)
    for e in engines:
        _check_choice("engines", e, tuple(ENGINES))
    for p in precisions:
        _check_choice("precisions", p, PRECISIONS)
    for mode in modes:
        _check_choice("modes", mode, MODES)
    for b in bases:
        _check_choice("bases", b, BASES)
    if "cached" in bases and not set(modes) & set(TRAINING_MODES):
        raise UserError("bases: 'cached' trains a head on cached base features; it needs "
                        f"mode train or fit, and the modes are {', '.join(modes)}")
    cells: list[Cell] = []
    seen: dict[str, Cell] = {}
    for model, size, device, mode, engine, precision, bs, w, d, st in itertools.product(
        models, sizes, devices, modes, engines, precisions, batch_sizes, weights, datas,
        strategies,
    ):
        spec = ENGINES[engine]
        if _engine_mode(mode) not in spec.modes or precision not in spec.precisions:
            continue
        if not strategy_allows(st, engine, mode):
            continue
        if not _pairs(model, d, datas):
            continue
        training = mode in TRAINING_MODES
        for base, rate in itertools.product(bases if training else ("",),
                                            rates if training else (None,)):
            if (mode == "fit" or base == "cached") and engine not in FIT_ENGINES:
                continue
            if not strategy_allows(st, engine, mode, base):
                continue
            cell = Cell(model=model, device=device, mode=mode, base=base, engine=engine,
                        precision=precision, batch_size=bs, weights=w, data=d, input_size=size,
                        learning_rate=rate, strategy=st)
            other = seen.get(cell.config_id)
            if other is not None:
                raise UserError(f"matrix: {cell.config_id!r} is requested twice "
                                f"({_differ(other, cell)}); list each model, folder and "
                                "value once")
            seen[cell.config_id] = cell
            cells.append(cell)
    used = {c.strategy for c in cells}
    for st in strategies:
        if st not in used and st != "none":
            _check_strategy(st, engines[0], modes[0])  # the reason, from the first combination
            if cells:
                raise UserError(f"strategy: {st!r} makes no cell with the selected engines "
                                "and modes")
    _check_all_used(cells, {"engine": engines, "precision": precisions, "mode": modes})
    return cells


def _check_no_repeats(key: str, values: Sequence[Any]) -> None:
    """A value listed twice in one matrix list (``--batch-sizes 8,8``, one folder spelled two
    ways) would run the same cell twice under one config_id: refuse it."""
    first: dict[Any, Any] = {}
    for value in values:
        norm = resolved(value) if isinstance(value, str) else value
        if isinstance(norm, Hashable) and norm in first:
            same = "" if first[norm] == value else f" (the same as {first[norm]!r})"
            raise UserError(f"matrix.{key}: {value!r} is listed twice{same}; list each value once")
        if isinstance(norm, Hashable):
            first[norm] = value


def _differ(a: Cell, b: Cell) -> str:
    pairs = [f"{f.name} {getattr(a, f.name)!r} and {getattr(b, f.name)!r}"
             for f in fields(Cell) if getattr(a, f.name) != getattr(b, f.name)]
    return "; ".join(pairs) or "the same factors"


def _pairs(model: str, data: str, datas: Sequence[str]) -> bool:
    """When a matrix lists ``mnist`` beside other data (the homework profile), the MNIST
    models take the mnist data and the other models the other data sets."""
    if MNIST_DATA not in datas or len(datas) == 1:
        return True
    return (model in MNIST_MODELS) == (data == MNIST_DATA)


def _check_all_used(cells: Iterable[Cell], asked: Mapping[str, Sequence[str]]) -> None:
    cells = list(cells)
    selected = [ENGINES[e] for e in asked["engine"]]
    used_engines = {c.engine for c in cells}
    for name in asked["engine"]:
        spec = ENGINES[name]
        modes = [m for m in asked["mode"] if m in spec.modes]
        if name not in used_engines and not modes:
            raise UserError(
                f"engine: {name!r} cannot run mode {', '.join(asked['mode'])} "
                f"(it runs modes {', '.join(spec.modes)}); this combination makes no sense"
            )
    for attr in ("precision", "mode", "engine"):
        used = {_engine_mode(getattr(c, attr)) if attr == "mode" else getattr(c, attr)
                for c in cells} | {getattr(c, attr) for c in cells}
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
    """A profile name (``quick``, ``full``) or the path of a TOML file (`harness.profiles`)."""
    from harness.profiles import resolve_profile_path as resolve

    return resolve(name_or_path)


def load_profile(name_or_path: str) -> Profile:
    """Read and validate a profile TOML file (`harness.profiles`)."""
    from harness.profiles import load_profile as load

    return load(name_or_path)


def profile_from_dict(raw: Mapping[str, Any], default_name: str = "custom",
                      where: str = "profile") -> Profile:
    """A validated `Profile` from a parsed TOML table (`harness.profiles`)."""
    from harness.profiles import profile_from_dict as build

    return build(raw, default_name, where)
