"""The ``stripe`` ``Source``: invoices and refunds since the last seen, as records.

Each poll lists invoices and balance transactions with ``created[gte]`` at
the newest ``created`` already seen (the boundary is re-read; upserts are
idempotent). Invoices still able to change (draft, open, uncollectible) keep
the invoice window open back to the oldest of them, so an invoice paid today
is re-read and its record updated; one missing from a listing that reaches
back to it was deleted (a draft) and is no longer tracked. The first poll reads from ``start_date``
(or all history). A record that cannot be read, or is in another currency,
is refused and logged once; the rest of the page counts. One that cannot be
read is also named in the reading's ``refused``, so the source shows degraded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from northstard.core.fieldcheck import drift
from northstard.core.records import Reading, Record
from northstard.errors import NotConfigured, SchemaDriftError
from northstard.http import RetryPolicy

from .client import StripeClient
from .parse import Refused, created_of, id_of, invoice_record, refund_record
from .settings import Settings
from .spec_fields import SHAPES

__all__ = ["StripeSource"]

log = structlog.get_logger("northstard.plugins.stripe")

INVOICES = "/invoices"
TRANSACTIONS = "/balance_transactions"
UNSETTLED = ("draft", "open", "uncollectible")
NO_CREDENTIALS = "off: no api_key configured (from the environment or api_key_file)"


class StripeSource:
    """One ``[sources.NAME]`` instance of the ``stripe`` plugin."""

    def __init__(self, name: str, settings: Settings, *, retry: RetryPolicy | None = None) -> None:
        self.name = name
        self.settings = settings
        self.client = StripeClient(settings, retry) if settings.api_key else None
        self.log = log.bind(source=name)
        self.polls = 0
        self.newest_invoice: int | None = None
        self.newest_transaction: int | None = None
        self.unsettled: dict[str, int] = {}  # invoice id -> created, while it can still change
        self._said: set[str] = set()
        self._refused: list[str] = []  # drift refused by the poll under way, for its Reading
        if self.client is None:
            self.log.warning("source off", reason=NO_CREDENTIALS)

    def __repr__(self) -> str:
        return (f"<StripeSource {self.name!r} polls={self.polls} newest_invoice="
                f"{self.newest_invoice} unsettled={len(self.unsettled)}>")

    def invoice_since(self) -> int | None:
        """``created[gte]`` of the next invoice listing."""
        marks = [*self.unsettled.values()]
        if self.newest_invoice is not None:
            marks.append(self.newest_invoice)
        return min(marks) if marks else self.settings.start_ts

    async def poll(self) -> Reading:
        """New and changed invoices, and new refunds."""
        if self.client is None:
            raise NotConfigured(NO_CREDENTIALS)
        invoices = await self.client.list_all(INVOICES, self.invoice_since())
        since = self.newest_transaction
        transactions = await self.client.list_all(
            TRANSACTIONS, self.settings.start_ts if since is None else since
        )
        records: dict[tuple[str, str], Record] = {}
        self._refused = []
        unsettled: dict[str, int] = {}  # the listing reaches back to every tracked one
        for obj in invoices:
            record = self._read(obj, self._invoice)
            if record is not None:
                records[record.kind, record.id] = record
                if record.status in UNSETTLED:
                    unsettled[record.id] = created_of(obj)
        for obj in transactions:
            refund = self._read(obj, self._refund)
            if refund is not None:
                records[refund.kind, refund.id] = refund
        self._advance(invoices, transactions, unsettled)
        notes = {"invoices_read": str(len(invoices)), "transactions_read": str(len(transactions))}
        return Reading(self.name, tuple(records.values()), datetime.now(UTC), notes=notes,
                       refused=tuple(self._refused))

    def _invoice(self, obj: dict[str, Any]) -> Record:
        return invoice_record(obj, self.settings.currency, self.settings.agent_metadata_key)

    def _refund(self, obj: dict[str, Any]) -> Record | None:
        return refund_record(obj, self.settings.currency, self.settings.refund_types)

    def _read(self, obj: Any, build: Callable[[dict[str, Any]], Any]) -> Any:
        try:
            if not isinstance(obj, dict):
                raise SchemaDriftError("list item is not an object")
            return build(obj)
        except (SchemaDriftError, Refused) as exc:
            ident = obj.get("id") if isinstance(obj, dict) else None
            where = ident if isinstance(ident, str) else "an object without id"
            drift = isinstance(exc, SchemaDriftError)
            if drift:  # another currency is left out by configuration, not a fault
                self._refused.append(f"{where}: {exc}")
            key = f"{where} {exc}"
            if key not in self._said:
                self._said.add(key)
                event = "schema drift: record refused" if drift else "record refused"
                self.log.error(event, id=where, reason=str(exc))
            return None

    def _advance(self, invoices: list[Any], transactions: list[Any], unsettled: dict[str, int]) -> None:
        """After a whole successful poll: move the windows forward."""
        self.polls += 1
        self.unsettled = unsettled
        self.newest_invoice = _newest(invoices, self.newest_invoice)
        self.newest_transaction = _newest(transactions, self.newest_transaction)

    def field_drift(self) -> dict[str, dict[str, list[str]]]:
        """Fields received that the provider's published schema does not know, and required ones not
        received, per response kind (``northstard sources check`` reports them)."""
        return drift(self.client.http.fields, SHAPES) if self.client is not None else {}

    async def aclose(self) -> None:
        """Close the HTTP client (idempotent)."""
        if self.client is not None:
            await self.client.aclose()


def _newest(objects: list[Any], current: int | None) -> int | None:
    newest = current
    for obj in objects:
        try:
            id_of(obj)
            created = created_of(obj)
        except SchemaDriftError:
            continue
        newest = created if newest is None else max(newest, created)
    return newest
