"""Typed reads of Kalshi JSON: decimal strings stay Decimal, drift is refused loudly.

``loads`` parses a body so that no JSON number ever becomes a float (numbers
become ``Decimal`` or ``int``; ``NaN``/``Infinity`` are refused). The readers
below take one field of one row and raise ``SchemaDriftError`` naming it when
it is missing, renamed or of the wrong type: a ``*_dollars`` field must be a
decimal *string* (a bare number there is drift, never silently accepted); an
integer-cents field must be a JSON integer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from northstard.core.money import parse_money
from northstard.errors import SchemaDriftError

__all__ = [
    "cents",
    "drift",
    "loads",
    "moment",
    "money",
    "money_or_none",
    "rows",
    "text",
    "text_or_none",
    "unix",
    "unix_ms",
]

_HUNDRED = Decimal(100)


def drift(where: str, problem: str) -> SchemaDriftError:
    """The one shape of a drift error: ``kalshi: <where>: <problem>``."""
    return SchemaDriftError(f"kalshi: {where}: {problem}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(body: str, where: str) -> dict[str, Any]:
    """A JSON object from ``body``, numbers as Decimal/int, never float."""
    try:
        value = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise drift(where, f"malformed JSON ({exc})") from None
    if not isinstance(value, dict):
        raise drift(where, f"expected a JSON object, got {type(value).__name__}")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _get(row: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in row:
        raise drift(where, f"missing field {name!r}")
    return row[name]


def text(row: Mapping[str, Any], name: str, where: str) -> str:
    """A required non-empty string field."""
    value = _get(row, name, where)
    if not isinstance(value, str) or not value:
        raise drift(where, f"{name}: expected a non-empty string, got {_kind(value)}")
    return value


def text_or_none(row: Mapping[str, Any], name: str, where: str) -> str | None:
    """An optional string field (absent or null gives None)."""
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise drift(where, f"{name}: expected a string, got {_kind(value)}")
    return value


def money(row: Mapping[str, Any], name: str, where: str) -> Decimal:
    """A required ``*_dollars`` / ``*_fp`` decimal string."""
    value = _get(row, name, where)
    if not isinstance(value, str):
        raise drift(where, f"{name}: expected a decimal string, got {_kind(value)}")
    return parse_money(value, field=f"kalshi: {where}: {name}")


def money_or_none(
    row: Mapping[str, Any], name: str, where: str, *, required: bool = True
) -> Decimal | None:
    """A nullable decimal string: null gives None, a number is drift.

    With ``required`` the key itself must be there (a renamed field is drift,
    not a silent "no quote"); without, an absent key also gives None.
    """
    if required:
        _get(row, name, where)
    if row.get(name) is None:
        return None
    return money(row, name, where)


def cents(row: Mapping[str, Any], name: str, where: str) -> Decimal:
    """A required integer-cents field, in dollars."""
    value = _get(row, name, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise drift(where, f"{name}: expected integer cents, got {_kind(value)}")
    return Decimal(value) / _HUNDRED


def moment(row: Mapping[str, Any], name: str, where: str) -> datetime:
    """A required RFC 3339 time, in UTC."""
    value = text(row, name, where)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise drift(where, f"{name}: not an RFC 3339 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise drift(where, f"{name}: time without a zone: {value[:40]!r}")
    return parsed.astimezone(UTC)


def unix(row: Mapping[str, Any], name: str, where: str) -> datetime:
    """A required Unix-seconds integer, as a UTC time."""
    value = _get(row, name, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise drift(where, f"{name}: expected integer Unix seconds, got {_kind(value)}")
    return datetime.fromtimestamp(value, UTC)


def unix_ms(row: Mapping[str, Any], name: str, where: str) -> datetime:
    """A required Unix-milliseconds integer, as a UTC time."""
    value = _get(row, name, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise drift(where, f"{name}: expected integer Unix milliseconds, got {_kind(value)}")
    return datetime.fromtimestamp(value / 1000, UTC)


def rows(body: Mapping[str, Any], name: str, where: str) -> list[Mapping[str, Any]]:
    """The list ``name`` of a page; a null list is an empty page."""
    value = _get(body, name, where)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise drift(where, f"{name}: expected a list of objects")
    return value
