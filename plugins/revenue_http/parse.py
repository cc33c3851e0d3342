"""Reading the in-house revenue endpoint's body: ``{"invoiced": ..., "collected": ...}``.

The values are dollars, as JSON numbers or decimal strings. The body was
decoded with non-integer numbers as ``Decimal`` (``http.decode_json``), so
``1234.56`` and ``"1234.56"`` give the same exact amount and no float ever
holds one. Anything else (null, a boolean, a missing field, text that is not
a number) is schema drift.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from northstard.core.money import parse_money
from northstard.errors import SchemaDriftError

__all__ = ["amount_at", "totals"]


def amount_at(body: Any, dotted: str) -> Decimal:
    """The amount at ``dotted`` (``"invoiced"`` or ``"totals.invoiced"``) in ``body``."""
    value = body
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise SchemaDriftError(f"field {dotted!r} is missing")
        value = value[part]
    if value is None or isinstance(value, bool):
        raise SchemaDriftError(f"field {dotted!r}: expected a number or decimal string, got {value!r}")
    return parse_money(value, field=dotted)


def totals(body: Any, invoiced_field: str, collected_field: str) -> tuple[Decimal, Decimal]:
    """(invoiced, collected) from the decoded body."""
    if not isinstance(body, dict):
        raise SchemaDriftError(f"expected a JSON object, got {type(body).__name__}")
    return amount_at(body, invoiced_field), amount_at(body, collected_field)
