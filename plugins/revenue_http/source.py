"""The ``revenue_http`` ``Source``: one GET per poll, one ``RevenueTotal`` record.

The record's id is the source name, so each poll replaces the last one. Its
``ts`` is when these totals were first seen: a poll that finds the same
totals re-sends an equal record, which changes nothing downstream.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from northstard.core.records import Reading, RevenueTotal
from northstard.http import JsonClient

from .parse import totals
from .settings import Settings

__all__ = ["RevenueHttpSource"]


class RevenueHttpSource:
    """One ``[sources.NAME]`` instance of the ``revenue_http`` plugin."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        headers = {"accept": "application/json", "user-agent": "northstard"}
        if settings.token:
            headers["authorization"] = f"Bearer {settings.token}"
        self.client = JsonClient(
            settings.base_url, headers, timeout_s=settings.request_timeout_s,
            secrets=[settings.token or ""], max_body_bytes=settings.max_body_bytes,
            retry_after_max_s=settings.retry_after_max_s,
        )
        self._last: RevenueTotal | None = None

    def __repr__(self) -> str:
        last = self._last
        shown = f"invoiced={last.invoiced} collected={last.collected}" if last else "no reading"
        return f"<RevenueHttpSource {self.name!r} {self.settings.base_url}{self.settings.path} {shown}>"

    async def poll(self) -> Reading:
        """GET the totals and return them as one record."""
        body = await self.client.get(self.settings.path)
        invoiced, collected = totals(body, self.settings.invoiced_field, self.settings.collected_field)
        now = datetime.now(UTC)
        record = self._record(invoiced, collected, now)
        return Reading(self.name, (record,), now, complete=True, complete_kinds=(record.kind,))

    def _record(self, invoiced: Decimal, collected: Decimal, now: datetime) -> RevenueTotal:
        last = self._last
        if last is None or (last.invoiced, last.collected) != (invoiced, collected):
            last = RevenueTotal(
                id=self.name, invoiced=invoiced, collected=collected, ts=now,
                agent=self.settings.agent or None,
            )
            self._last = last
        return last

    async def aclose(self) -> None:
        """Close the HTTP client (idempotent)."""
        await self.client.aclose()
