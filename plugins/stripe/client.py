"""The Stripe list calls the source makes, every page of each.

    GET /v1/invoices?limit=100&created[gte]=T[&starting_after=in_...]
    GET /v1/balance_transactions?limit=100&created[gte]=T[&starting_after=txn_...]

Lists come newest first; the next page starts after the last id of this one
while ``has_more``.
"""

from __future__ import annotations

from typing import Any

from northstard.errors import SchemaDriftError
from northstard.http import JsonClient, RetryPolicy

from .parse import id_of, list_page
from .settings import Settings

__all__ = ["LIMIT", "StripeClient"]

LIMIT = 100
MAX_PAGES = 1000


class StripeClient:
    """Bearer-authenticated Stripe calls."""

    def __init__(self, settings: Settings, retry: RetryPolicy | None = None) -> None:
        secrets = [settings.api_key] if settings.api_key else []
        self.http = JsonClient(settings.base_url, settings.headers(),
                               timeout_s=settings.request_timeout_s, secrets=secrets, retry=retry,
                               max_body_bytes=settings.max_body_bytes,
                               retry_after_max_s=settings.retry_after_max_s)

    def __repr__(self) -> str:
        return f"<StripeClient {self.http!r}>"

    async def list_all(self, path: str, since: int | None) -> list[Any]:
        """Every object of the list at ``path`` created at or after ``since`` (Unix s)."""
        params = [("limit", str(LIMIT))]
        if since is not None:
            params.append(("created[gte]", str(since)))
        items: list[Any] = []
        after: str | None = None
        for number in range(1, MAX_PAGES + 1):
            query = [*params, ("starting_after", after)] if after else params
            data, has_more = list_page(await self.http.get(path, query), f"{path} page {number}")
            items.extend(data)
            if not has_more:
                return items
            if not data:
                raise SchemaDriftError(f"{path} page {number}: has_more with no data")
            after = id_of(data[-1])
        raise SchemaDriftError(f"{path}: still has_more after {MAX_PAGES} pages")

    async def aclose(self) -> None:
        await self.http.aclose()
