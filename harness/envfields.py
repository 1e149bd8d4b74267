"""Typed reading of environment.json fields: each helper returns the field's value or None
(not recorded) and refuses a wrong type with a `UserError` naming the field, the value and
what is allowed. Used by `harness.envmodel`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import UserError


def _where(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UserError.invalid(f"environment.json: {_where(where, key)}", value, "a string")
    return str(value)


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError.invalid(f"environment.json: {_where(where, key)}", value, "an integer")
    return value


def _opt_float(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError.invalid(f"environment.json: {_where(where, key)}", value, "a number")
    return float(value)


def _opt_bool(data: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise UserError.invalid(f"environment.json: {_where(where, key)}", value, "true or false")


def _typed(data: Mapping[str, Any], key: str, where: str, kind: type, word: str) -> Any:
    """``data[key]`` if it is a ``kind`` (None when absent), else the field's UserError."""
    value = data.get(key)
    if value is None or isinstance(value, kind):
        return value
    raise UserError.invalid(f"environment.json: {_where(where, key)}", value, word)


def _mapping(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value: Mapping[str, Any] | None = _typed(data, key, where, Mapping, "an object")
    return value


def _str_map(data: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = _mapping(data, key, where) or {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any] | None:
    value: list[Any] | None = _typed(data, key, where, list, "a list")
    return value
