"""The ``anthropic_costs`` ``Source``: reported daily AI spend plus an intraday estimate.

Each poll:

1. reads the daily cost report from the oldest day that may still change
   (the whole window at the first poll; afterwards two days back, or the
   oldest day still carrying an estimate) up to tomorrow. A day with rows is
   *covered*: its reported costs are exact.
2. estimates the days not covered yet (yesterday and today at most) from the
   usage report × the price table: ``Cost(estimated=True)``, one per
   (day, price key), with ids known in advance.
3. withdraws the estimates of every covered day it read with ``Retract``
   (harmless when there is none), so the reported cost replaces the estimate
   when a day closes, also across a restart.

If the cost report ever covers today's partial day, it is preferred to the
estimate; that assumption is logged once (the API reference, checked for
issue 17, says only that buckets "end before ending_at", not whether the
current day's bucket is partial).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import structlog

from northstard.core.fieldcheck import drift
from northstard.core.records import Reading, Record, Retract
from northstard.errors import NotConfigured
from northstard.http import RetryPolicy

from .client import AnthropicClient
from .parse import Estimate, Refused, Report, day_start, estimate_id, estimate_usage, read_costs
from .prices import PriceTable
from .settings import Settings
from .spec_fields import SHAPES

__all__ = ["AnthropicCostSource"]

log = structlog.get_logger("northstard.plugins.anthropic_costs")

DEFAULT_DAYS = 30
REFRESH_DAYS = 2
NO_CREDENTIALS = (
    "off: no credentials configured (admin_key or oauth_token, from the environment or a *_file)"
)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class AnthropicCostSource:
    """One ``[sources.NAME]`` instance of the ``anthropic_costs`` plugin."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _wall_clock,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.prices = PriceTable(settings.prices)
        self.start = settings.start_date or clock().date() - timedelta(days=DEFAULT_DAYS)
        self.client = AnthropicClient(settings, retry) if settings.has_credentials else None
        self.log = log.bind(source=name)
        self.polls = 0
        self._pending: set[date] = set()  # days holding an estimate, not yet seen covered
        self._said: set[str] = set()
        if self.client is None:
            self.log.warning("source off", reason=NO_CREDENTIALS)

    def __repr__(self) -> str:
        pending = ",".join(d.isoformat() for d in sorted(self._pending)) or "none"
        return (f"<AnthropicCostSource {self.name!r} from={self.start} polls={self.polls} "
                f"estimated={pending}>")

    async def poll(self) -> Reading:
        """Reported costs, today's (and maybe yesterday's) estimate, and the retractions."""
        if self.client is None:
            raise NotConfigured(NO_CREDENTIALS)
        now = self.clock()
        today = now.date()
        first = self._first_day(today)
        report = read_costs(await self.client.cost_report(first, today + timedelta(days=1)))
        if today in report.covered:
            self._say_once("today", "cost report covers today's partial day; preferring it to "
                           "the estimate (assumption: it is as current as the usage report)")
        days = {d for d in (today - timedelta(days=1), today) if d >= self.start} - report.covered
        estimate = Estimate()
        if days:
            buckets = await self.client.usage(day_start(min(days)), self.settings.usage_bucket)
            estimate = estimate_usage(buckets, self.prices, days)
        self.polls += 1
        self._pending = (self._pending - report.covered) | {c.ts.date() for c in estimate.costs}
        self._report_problems([*report.refused, *estimate.refused], estimate.unpriced)
        records: list[Record] = [*self._retractions(report.covered), *report.costs, *estimate.costs]
        refused = tuple(f"{r.where}: {r.reason}" for r in (*report.refused, *estimate.refused))
        return Reading(self.name, tuple(records), now, notes=self._notes(report, estimate, days),
                       refused=refused)

    def _first_day(self, today: date) -> date:
        if self.polls == 0:
            return self.start
        oldest = min({today - timedelta(days=REFRESH_DAYS), *self._pending})
        return max(self.start, oldest)

    def _retractions(self, covered: Iterable[date]) -> list[Retract]:
        return [
            Retract(id=estimate_id(day, key), target_kind="cost")
            for day in sorted(covered) for key in self.prices.names()
        ]

    def _notes(self, report: Report, estimate: Estimate, days: set[date]) -> dict[str, str]:
        notes = {
            "reported_through": max(report.covered).isoformat() if report.covered else "",
            "estimated_days": ",".join(d.isoformat() for d in sorted(days)),
        }
        if estimate.unpriced:
            notes["unpriced_models"] = ",".join(sorted(estimate.unpriced))
        refused = len(report.refused) + len(estimate.refused)
        if refused:
            notes["refused_rows"] = str(refused)
        return notes

    def _report_problems(self, refused: list[Refused], unpriced: set[str]) -> None:
        for item in refused:
            key = f"refused {item.where} {item.reason}"
            if key not in self._said:
                self._said.add(key)
                self.log.error("schema drift: row refused", where=item.where, reason=item.reason)
        for model in sorted(unpriced):
            self._say_once(f"unpriced {model}", f"no price for model {model!r}: its usage is left "
                           "out of the estimate (add it to price_table)", level="warning")

    def _say_once(self, key: str, message: str, level: str = "info") -> None:
        if key not in self._said:
            self._said.add(key)
            getattr(self.log, level)(message)

    def field_drift(self) -> dict[str, dict[str, list[str]]]:
        """Fields received that the provider's published schema does not know, and required ones not
        received, per response kind (``northstard sources check`` reports them)."""
        return drift(self.client.http.fields, SHAPES) if self.client is not None else {}

    async def aclose(self) -> None:
        """Close the HTTP client (idempotent)."""
        if self.client is not None:
            await self.client.aclose()
