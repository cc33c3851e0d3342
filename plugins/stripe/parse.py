"""Reading Stripe list pages, invoices and balance transactions into records.

Money is an integer in the currency's minor unit: 100 per unit for most
currencies, 1 for zero-decimal ones (JPY, KRW, ...), 1000 for three-decimal
ones (BHD, KWD, ...). ``Decimal(minor) / factor`` is exact. A record in a
currency other than the reporting one is refused (no FX): ``Refused``.
A missing or mistyped field is ``SchemaDriftError`` for that record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, cast

from northstard.core.records import Invoice, Refund
from northstard.errors import SchemaDriftError

__all__ = [
    "THREE_DECIMAL",
    "ZERO_DECIMAL",
    "Refused",
    "created_of",
    "id_of",
    "invoice_record",
    "list_page",
    "minor_factor",
    "refund_record",
    "to_units",
]

# Stripe's zero-decimal and three-decimal currencies, as listed in its currency guide
# (stripe.com/docs/currencies); the OpenAPI (stripe-node 23.2.0, API 2026-11-18) types
# ``currency`` as a plain string, so no machine-readable table exists: kept as a table here.
# Zero-decimal currencies (amounts are whole units).
ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
    "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
})
# Stripe's three-decimal currencies (amounts are thousandths).
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# Invoice.Status in the OpenAPI: these five or any other string (OtherString), and null: an invoice
# with another status is refused on its own (logged), the rest of the page counts.
STATUSES = ("draft", "open", "paid", "uncollectible", "void")

InvoiceStatus = Literal["draft", "open", "paid", "uncollectible", "void"]


class Refused(Exception):
    """A well-formed record northstard will not count (another currency)."""


def minor_factor(currency: str) -> Decimal:
    """Minor units per unit of ``currency`` (lower-case ISO 4217)."""
    if currency in ZERO_DECIMAL:
        return Decimal(1)
    if currency in THREE_DECIMAL:
        return Decimal(1000)
    return Decimal(100)


def _integer(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaDriftError(f"{key}: expected an integer (minor units), got {type(value).__name__}")
    return value


def to_units(minor: int, currency: str) -> Decimal:
    return Decimal(minor) / minor_factor(currency)


def id_of(obj: Any) -> str:
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
        raise SchemaDriftError("object without a string 'id'")
    return cast(str, obj["id"])


def created_of(obj: dict[str, Any]) -> int:
    return _integer(obj, "created")


def list_page(body: Any, what: str) -> tuple[list[Any], bool]:
    """(data, has_more) of a Stripe list object; anything else is drift for the page."""
    if not isinstance(body, dict) or body.get("object") != "list":
        raise SchemaDriftError(f"{what}: expected a list object")
    data, has_more = body.get("data"), body.get("has_more")
    if not isinstance(data, list):
        raise SchemaDriftError(f"{what}: 'data' is missing or not a list")
    if not isinstance(has_more, bool):
        raise SchemaDriftError(f"{what}: 'has_more' is missing or not a boolean")
    return data, has_more


def _currency(obj: dict[str, Any], reporting: str) -> str:
    currency = obj.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise SchemaDriftError(f"currency: expected an ISO code, got {currency!r}")
    currency = currency.lower()
    if currency != reporting:
        raise Refused(f"currency {currency!r} is not the reporting currency {reporting!r} (no FX)")
    return currency


def _when(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _agent(obj: dict[str, Any], key: str) -> str | None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return None
    agent = metadata.get(key)
    return agent if isinstance(agent, str) and agent else None


def invoice_record(obj: dict[str, Any], reporting: str, agent_key: str) -> Invoice:
    """An ``Invoice``: ``total`` (invoiced when open or paid), ``amount_paid`` (collected)."""
    status = obj.get("status")
    if status not in STATUSES:
        raise SchemaDriftError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
    total, paid, created = _integer(obj, "total"), _integer(obj, "amount_paid"), created_of(obj)
    currency = _currency(obj, reporting)
    return Invoice(
        id=id_of(obj), total=to_units(total, currency), paid=to_units(paid, currency),
        status=cast(InvoiceStatus, status), ts=_when(created), agent=_agent(obj, agent_key),
    )


def refund_record(obj: dict[str, Any], reporting: str, refund_types: tuple[str, ...]) -> Refund | None:
    """A ``Refund`` for a refund balance transaction (negative amount); None for other types."""
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise SchemaDriftError(f"type: expected a string, got {type(kind).__name__}")
    if kind not in refund_types:
        return None
    amount, created = _integer(obj, "amount"), created_of(obj)
    if amount >= 0:
        raise SchemaDriftError(f"amount: a refund must be negative, got {amount}")
    currency = _currency(obj, reporting)
    return Refund(id=id_of(obj), amount=to_units(-amount, currency), ts=_when(created))
