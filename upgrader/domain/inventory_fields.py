"""Field validators for inventory documents: each error names the field's path (``nodes[2].kubelet``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upgrader.domain.text import excerpt
from upgrader.domain.versions import Version
from upgrader.errors import InvalidInventoryError, InvalidVersionError

MAX_TEXT = 2048  # characters of a free-text field (an OS image, a URL, an error) an inventory may hold


def mapping(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInventoryError(f"{where}: expected an object, got {type(raw).__name__}")
    return raw


def no_unknown(obj: Mapping[str, Any], allowed: set[str] | frozenset[str], prefix: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise InvalidInventoryError(f"{prefix}{unknown[0]}: unknown field")


def string(obj: Mapping[str, Any], key: str, where: str, *, limit: int = MAX_TEXT) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInventoryError(f"{where}: expected a non-empty string, got {excerpt(value)}")
    if len(value) > limit:
        raise InvalidInventoryError(f"{where}: longer than {limit} characters ({excerpt(value)})")
    return value


def optional_string(obj: Mapping[str, Any], key: str, where: str, *, limit: int = MAX_TEXT) -> str | None:
    return None if obj.get(key) is None else string(obj, key, where, limit=limit)


def boolean(obj: Mapping[str, Any], key: str, where: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise InvalidInventoryError(f"{where}: expected true or false, got {excerpt(value)}")
    return value


def optional_boolean(obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    return None if obj.get(key) is None else boolean(obj, key, where)


def optional_count(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidInventoryError(f"{where}: expected a whole number from 0, got {excerpt(value)}")
    return value


def string_list(obj: Mapping[str, Any], key: str, where: str, *, limit: int = 64) -> tuple[str, ...]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise InvalidInventoryError(f"{where}: expected a list of strings, got {excerpt(value)}")
    if len(value) > limit:
        raise InvalidInventoryError(f"{where}: more than {limit} entries")
    return tuple(string({"v": v}, "v", f"{where}[{i}]") for i, v in enumerate(value))


def version(raw: object, where: str) -> Version:
    if not isinstance(raw, str):
        raise InvalidInventoryError(f"{where}: expected a version string such as v1.30.6, got {excerpt(raw)}")
    try:
        return Version.parse(raw)
    except InvalidVersionError as e:
        raise InvalidInventoryError(f"{where}: {e}") from e
