"""Decimal money: parsing from the wire and the one canonical string form.

No float ever holds an amount. Amounts on the wire are decimal strings in a
canonical form: trailing zeros dropped, but at least two decimals
("5.60", "3.6979", "-0.10", "1.2378912"). Equal values always have equal strings,
so a delta never reports a change that is only a change of representation.
``parse_money`` refuses amounts of $100 trillion or more and more than 12
decimal places, so that every sum the engine makes stays exact.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .errors import SchemaDriftError

__all__ = ["ZERO", "format_money", "parse_money"]

ZERO = Decimal(0)
_CENT = Decimal("0.01")
# Bounds that keep every sum and product exact in Decimal's default 28 digits:
# 14 integer digits (under $100 trillion) and 12 decimal places.
LIMIT = Decimal(10) ** 14
MAX_PLACES = 12


def parse_money(value: object, *, field: str = "amount") -> Decimal:
    """A Decimal from a decimal string or an int; floats and bools are refused."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool | float):
        raise SchemaDriftError(f"{field}: expected a decimal string, got {type(value).__name__}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise SchemaDriftError(f"{field}: not a decimal number: {value[:40]!r}") from None
    else:
        raise SchemaDriftError(f"{field}: expected a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise SchemaDriftError(f"{field}: not a finite number: {str(value)[:40]!r}")
    if abs(result) >= LIMIT or _places(result) > MAX_PLACES:
        raise SchemaDriftError(f"{field}: out of range: {str(value)[:40]!r}")
    return result


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def format_money(value: Decimal) -> str:
    """The canonical wire string of an amount: at least two decimals, no trailing zeros past them."""
    if value == 0:
        return "0.00"
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent > -2:
        normal = normal.quantize(_CENT)
    text = f"{normal:f}"
    return text
