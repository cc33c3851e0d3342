"""The two Admin API reports the source reads, every page of each.

    GET /v1/organizations/cost_report            bucket_width=1d, grouped by description and workspace
    GET /v1/organizations/usage_report/messages  bucket_width=1m|1h, grouped by model

Pages are followed with ``page=<next_page>`` while ``has_more``. Array
parameters repeat their key (``group_by[]=description&group_by[]=workspace_id``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from northstard.errors import SchemaDriftError
from northstard.http import JsonClient, Params, RetryPolicy

from .parse import Bucket, day_start, page_of
from .settings import Settings

__all__ = ["COST_PATH", "USAGE_PATH", "AnthropicClient", "rfc3339"]

COST_PATH = "/v1/organizations/cost_report"
USAGE_PATH = "/v1/organizations/usage_report/messages"
COST_LIMIT = 31  # days per page, the documented maximum
USAGE_LIMITS = {"1m": 1440, "1h": 168}  # buckets per page, the documented maxima
MAX_PAGES = 100


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AnthropicClient:
    """Admin API calls with the version header and the admin key or bearer token."""

    def __init__(self, settings: Settings, retry: RetryPolicy | None = None) -> None:
        self.http = JsonClient(
            settings.base_url, settings.headers(), timeout_s=settings.request_timeout_s,
            secrets=settings.secrets, retry=retry, max_body_bytes=settings.max_body_bytes,
            retry_after_max_s=settings.retry_after_max_s,
        )

    def __repr__(self) -> str:
        return f"<AnthropicClient {self.http!r}>"

    async def cost_report(self, first: date, end: date) -> list[Bucket]:
        """Daily cost buckets of ``first`` up to (not including) ``end``."""
        params = [
            ("starting_at", rfc3339(day_start(first))),
            ("ending_at", rfc3339(day_start(end))),
            ("bucket_width", "1d"),
            ("group_by[]", "description"),
            ("group_by[]", "workspace_id"),
            ("limit", str(COST_LIMIT)),
        ]
        return await self._pages(COST_PATH, params)

    async def usage(self, start: datetime, width: str) -> list[Bucket]:
        """Token usage by model in ``width`` buckets from ``start`` to now."""
        params = [
            ("starting_at", rfc3339(start)),
            ("bucket_width", width),
            ("group_by[]", "model"),
            ("limit", str(USAGE_LIMITS[width])),
        ]
        return await self._pages(USAGE_PATH, params)

    async def _pages(self, path: str, params: Params) -> list[Bucket]:
        buckets: list[Bucket] = []
        page: str | None = None
        for number in range(1, MAX_PAGES + 1):
            query = [*params, ("page", page)] if page else list(params)
            found, page = page_of(await self.http.get(path, query), f"{path} page {number}")
            buckets.extend(found)
            if page is None:
                return buckets
        raise SchemaDriftError(f"{path}: still has_more after {MAX_PAGES} pages")

    async def aclose(self) -> None:
        await self.http.aclose()
