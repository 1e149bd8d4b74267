"""Profiles as TOML files: finding one by name or path, reading it, validating its tables
into a `harness.config.Profile` (bad input is a `UserError` naming the table and key)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.config import PROFILES_DIR, Profile, RunSettings
from harness.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


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
        raw = tomllib.loads(path.read_bytes().decode("utf8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"profile {path}: byte {exc.start} is not UTF-8 text; allowed: a "
                        "UTF-8 TOML file") from None
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
    for table in ("profile", "matrix", "settings", "engine_options"):
        if table in raw and not isinstance(raw[table], Mapping):
            raise UserError.invalid(f"{where}: {table}", raw[table], f"a [{table}] table")
    meta = raw.get("profile", {})
    for key in ("name", "description"):
        if key in meta and not isinstance(meta[key], str):
            raise UserError.invalid(f"{where}: profile.{key}", meta[key], "a string")
    for engine, options in raw.get("engine_options", {}).items():
        if not isinstance(options, Mapping):
            raise UserError.invalid(f"{where}: engine_options.{engine}", options,
                                    f"an [engine_options.{engine}] table")
    settings_raw = dict(raw.get("settings", {}))
    known = {f.name for f in fields(RunSettings)} - {"engine_options"}
    for key in settings_raw:
        if key not in known:
            raise UserError.invalid(f"{where}: settings key", key, sorted(known))
    if "samplers" in settings_raw:
        if not isinstance(settings_raw["samplers"], list):
            raise UserError.invalid(f"{where}: settings.samplers", settings_raw["samplers"],
                                    'a list of names, e.g. ["psutil"]')
        settings_raw["samplers"] = tuple(settings_raw["samplers"])
    settings = RunSettings(**settings_raw, engine_options=raw.get("engine_options", {}))
    matrix = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.get("matrix", {}).items()}
    return Profile(name=meta.get("name", default_name), matrix=matrix, settings=settings,
                   description=meta.get("description", ""))
