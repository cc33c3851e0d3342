"""Decimal money: one amount grammar, exact arithmetic, one canonical string form.

No float ever holds an amount. Amounts on the wire are decimal strings in a
canonical form: trailing zeros dropped, but at least two decimals
("5.60", "3.6979", "-0.10", "1.2378912"). Equal values always have equal strings,
so a delta never reports a change that is only a change of representation.

Every amount that enters (a decimal string, a JSON number, an int) is held to
``AMOUNT`` (ASCII digits only: no ``_``, no other scripts' digits, no spaces),
to a magnitude under $100 trillion (``LIMIT``) and to at most 12 decimal
places (``MAX_PLACES``); the message names the field and the reason. An
exponent is accepted ("1.5E+3") because JSON numbers may carry one; the
bounds apply to the value, so an exponent cannot smuggle in a huge number.

``EXACT`` is the decimal context the engine computes in. Under the bounds
above the widest value the engine makes is a position's marked value: count
(< 1e14, 12 places) × mid price ((bid + ask) / 2: < 1e14, 13 places), under
1e28 with 25 places: 53 digits. Totals keep 25 places and are held under
``pnl.TOTAL_LIMIT`` (1e50), so any total, any difference of two totals and
the margin's operands need at most 77 digits: with 90 digits of precision
and ``Inexact``/``Rounded`` trapped no operation can round silently — one
that would raises instead. ``format_money`` reads the digits directly and
never rounds, whatever the context.
"""

from __future__ import annotations

import re
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
)

from northstard.errors import SchemaDriftError

__all__ = [
    "AMOUNT",
    "DIGITS",
    "EXACT",
    "LIMIT",
    "MAX_PLACES",
    "ZERO",
    "check_bounds",
    "format_money",
    "parse_money",
    "places",
    "within_bounds",
]

ZERO = Decimal(0)
LIMIT = Decimal(10) ** 14
MAX_PLACES = 12
MAX_TEXT = 100  # characters of an amount literal; a longer one is refused unread
PRECISION = 90
EXACT = Context(
    prec=PRECISION,
    rounding=ROUND_HALF_EVEN,
    Emax=999,
    Emin=-999,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded],
)
DIGITS = re.compile(r"[0-9]+", re.ASCII)  # a sequence number or a count: ASCII digits only
# ASCII decimal syntax: optional sign, digits with an optional fraction, optional exponent.
AMOUNT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def _show(value: object) -> str:
    return repr(str(value)[:40])


def _from_text(text: str, field: str) -> Decimal:
    if len(text) > MAX_TEXT:
        raise SchemaDriftError(f"{field}: longer than {MAX_TEXT} characters")
    if AMOUNT.fullmatch(text) is None:
        raise SchemaDriftError(f"{field}: not an ASCII decimal number: {_show(text)}")
    return Decimal(text)  # exact: the constructor never rounds


def parse_money(value: object, *, field: str = "amount") -> Decimal:
    """A Decimal from a decimal string, an int or a Decimal; floats and bools are refused."""
    if isinstance(value, bool | float):
        raise SchemaDriftError(f"{field}: expected a decimal string, got {type(value).__name__}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        if abs(value) >= LIMIT:
            raise SchemaDriftError(f"{field}: $100 trillion or more: {_show(value)}")
        result = Decimal(value)
    elif isinstance(value, str):
        result = _from_text(value, field)
    else:
        raise SchemaDriftError(f"{field}: expected a decimal string, got {type(value).__name__}")
    check_bounds(result, field, value)
    return result


def check_bounds(value: Decimal, field: str, shown: object = None) -> None:
    """Refuse a value that is not finite, is $100 trillion or more, or has too many places."""
    shown = value if shown is None else shown
    if not value.is_finite():
        raise SchemaDriftError(f"{field}: not a finite number: {_show(shown)}")
    if value and value.adjusted() >= 14:  # adjusted() reads the exponent: no context, no overflow
        raise SchemaDriftError(f"{field}: $100 trillion or more: {_show(shown)}")
    if places(value) > MAX_PLACES:
        raise SchemaDriftError(f"{field}: more than {MAX_PLACES} decimal places: {_show(shown)}")


def within_bounds(value: Decimal) -> bool:
    """A quick sufficient test of ``check_bounds``: True means within them (False: look closer).

    In plain notation ``str`` shows the value's decimal places as they are (never rounded).
    """
    if not value.is_finite():
        return False
    text = str(value)
    if "E" not in text and "e" not in text:
        point = text.find(".")
        return (point < 0 or len(text) - point - 1 <= MAX_PLACES) and value.adjusted() < 14
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -MAX_PLACES and value.adjusted() < 14


def places(value: Decimal) -> int:
    """Decimal places ``value`` needs (trailing zeros do not count); no context involved."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if trailing == len(digits):  # zero
        return 0
    return max(0, -(exponent + trailing))


def format_money(value: Decimal) -> str:
    """The canonical wire string of an amount: at least two decimals, no trailing zeros past them.

    Exact for any finite Decimal, in any context: ``str`` of a Decimal never
    rounds; when it is in plain notation the text only needs its decimals
    trimmed or padded, otherwise (exponent notation) it is built from the digits.
    """
    if value.is_finite():
        if not value:
            return "0.00"  # every zero, -0.000 included
        text = str(value)
        if "E" not in text and "e" not in text:
            point = text.find(".")
            if point < 0:
                return text + ".00"
            decimals = len(text) - point - 1
            if decimals == 2 or (decimals > 2 and text[-1] != "0"):
                return text
            if decimals < 2:
                return text + "0"
            text = text.rstrip("0")
            return text + "0" * (2 - (len(text) - point - 1))
    return _from_digits(value)


def _from_digits(value: Decimal) -> str:
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int), value
    text = "".join(map(str, digits)).lstrip("0")
    if not text:
        return "0.00"
    if exponent >= 0:
        whole, fraction = text + "0" * exponent, ""
    else:
        text = text.rjust(-exponent + 1, "0")
        whole, fraction = text[:exponent], text[exponent:]
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{'-' if sign else ''}{whole}.{fraction}"
