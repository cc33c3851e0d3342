"""Reading the Admin API's report pages into cost records.

Page shape (both reports): ``{"data": [bucket...], "has_more": bool, "next_page": str|null}``;
a bucket is ``{"starting_at": RFC 3339, "ending_at": ..., "results": [row...]}``.
A page that does not have this shape is schema drift for the whole page; a
row with a missing or mistyped field is refused on its own (``Refused``) and
the rest of the page is kept.

Cost rows: ``amount`` is a decimal STRING in cents ("123.78912" = $1.2378912);
a JSON number there is drift, never silently accepted. One ``Cost`` per
(day, workspace, description), amounts of identical keys summed.

Usage rows: integer token counts, priced per model by the ``PriceTable``;
one estimated ``Cost`` per (day, price key).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from northstard.core.money import parse_money
from northstard.core.records import Cost
from northstard.errors import SchemaDriftError

from .prices import PriceTable

__all__ = [
    "Bucket",
    "Estimate",
    "Refused",
    "Report",
    "day_start",
    "estimate_id",
    "estimate_usage",
    "page_of",
    "read_costs",
]

CATEGORY = "ai"


@dataclass(frozen=True)
class Bucket:
    """One time bucket of a report page."""

    start: datetime
    results: tuple[Any, ...]

    @property
    def day(self) -> date:
        return self.start.date()


@dataclass(frozen=True)
class Refused:
    """A row that was not accepted, and why."""

    where: str
    reason: str


@dataclass
class Report:
    """What the cost report says: reported costs and the days it covers."""

    costs: list[Cost] = field(default_factory=list)
    covered: set[date] = field(default_factory=set)
    refused: list[Refused] = field(default_factory=list)


@dataclass
class Estimate:
    """Estimated costs of the days not yet reported, from usage × prices."""

    costs: list[Cost] = field(default_factory=list)
    unpriced: set[str] = field(default_factory=set)
    refused: list[Refused] = field(default_factory=list)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def estimate_id(day: date, key: str) -> str:
    """The id of a day's estimated cost for one price-table key (known in advance: retractable)."""
    return f"estimate/{day.isoformat()}/{key}"


def _timestamp(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise SchemaDriftError(f"{what}: expected an RFC 3339 string, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SchemaDriftError(f"{what}: not an RFC 3339 time: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise SchemaDriftError(f"{what}: time without a UTC offset: {value[:40]!r}")
    return moment.astimezone(UTC)


def _bucket(value: Any, what: str) -> Bucket:
    if not isinstance(value, dict):
        raise SchemaDriftError(f"{what}: a bucket is not an object")
    results = value.get("results")
    if not isinstance(results, list):
        raise SchemaDriftError(f"{what}: bucket 'results' is missing or not a list")
    return Bucket(_timestamp(value.get("starting_at"), f"{what}: starting_at"), tuple(results))


def page_of(body: Any, what: str) -> tuple[list[Bucket], str | None]:
    """The buckets of one page and the next page token (None on the last page)."""
    if not isinstance(body, dict):
        raise SchemaDriftError(f"{what}: expected a JSON object, got {type(body).__name__}")
    data, has_more = body.get("data"), body.get("has_more")
    if not isinstance(data, list):
        raise SchemaDriftError(f"{what}: 'data' is missing or not a list")
    if not isinstance(has_more, bool):
        raise SchemaDriftError(f"{what}: 'has_more' is missing or not a boolean")
    buckets = [_bucket(item, what) for item in data]
    if not has_more:
        return buckets, None
    token = body.get("next_page")
    if not isinstance(token, str) or not token:
        raise SchemaDriftError(f"{what}: has_more is true but 'next_page' is missing")
    return buckets, token


def _text(row: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = row.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise SchemaDriftError(f"{key}: expected a string, got {type(value).__name__}")
    return value


def _cost_row(row: Any, day: date) -> tuple[str, Decimal, str | None, str | None]:
    """(id, dollars, model, cost_type) of one cost row."""
    if not isinstance(row, dict):
        raise SchemaDriftError("row is not an object")
    amount = row.get("amount")
    if not isinstance(amount, str):
        raise SchemaDriftError(f"amount: expected a decimal string (cents), got {type(amount).__name__}")
    cents = parse_money(amount, field="amount")
    currency = row.get("currency")
    if currency != "USD":
        raise SchemaDriftError(f"currency: expected 'USD', got {currency!r}")
    description = _text(row, "description", required=True)
    workspace = _text(row, "workspace_id", required=False) or "default"
    model, cost_type = _text(row, "model", required=False), _text(row, "cost_type", required=False)
    dollars = parse_money(cents.scaleb(-2), field=f"amount ({amount} cents, in dollars)")
    return f"report/{day.isoformat()}/{workspace}/{description}", dollars, model, cost_type


def read_costs(buckets: Iterable[Bucket]) -> Report:
    """Reported costs, one per (day, workspace, description); a day with rows is covered."""
    report = Report()
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    details: dict[str, tuple[date, str | None, str | None]] = {}
    for bucket in buckets:
        if bucket.results:
            report.covered.add(bucket.day)
        for index, row in enumerate(bucket.results):
            try:
                key, dollars, model, cost_type = _cost_row(row, bucket.day)
            except SchemaDriftError as exc:
                report.refused.append(Refused(f"cost_report {bucket.day} row {index}", str(exc)))
                continue
            amounts[key] += dollars
            details.setdefault(key, (bucket.day, model, cost_type))
    for key, dollars in amounts.items():
        day, model, cost_type = details[key]
        report.costs.append(Cost(id=key, amount=dollars, category=CATEGORY, ts=day_start(day),
                                 model=model, cost_type=cost_type))
    return report


def _count(row: dict[str, Any], key: str, where: str = "") -> int:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SchemaDriftError(f"{where}{key}: expected a token count, got {value!r}"[:120])
    return value


def _usage_cost(row: Any, prices: PriceTable) -> tuple[str, str | None, Decimal]:
    """(model, price key or None, dollars) of one usage row."""
    if not isinstance(row, dict):
        raise SchemaDriftError("row is not an object")
    model = _text(row, "model", required=True)
    assert model is not None
    cache = row.get("cache_creation")
    if not isinstance(cache, dict):
        raise SchemaDriftError("cache_creation: missing or not an object")
    counts = {
        "uncached": _count(row, "uncached_input_tokens"),
        "output": _count(row, "output_tokens"),
        "cache_read": _count(row, "cache_read_input_tokens"),
        "cache_5m": _count(cache, "ephemeral_5m_input_tokens", "cache_creation."),
        "cache_1h": _count(cache, "ephemeral_1h_input_tokens", "cache_creation."),
    }
    key = prices.key_for(model)
    if key is None:
        return model, None, Decimal(0)
    return model, key, prices.prices[key].cost(**counts)


def estimate_usage(buckets: Iterable[Bucket], prices: PriceTable, days: set[date]) -> Estimate:
    """Estimated costs of ``days``: usage rows priced, summed per (day, price key)."""
    estimate = Estimate()
    amounts: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for bucket in buckets:
        if bucket.day not in days:
            continue
        for index, row in enumerate(bucket.results):
            try:
                model, key, dollars = _usage_cost(row, prices)
            except SchemaDriftError as exc:
                where = f"usage_report {bucket.start.isoformat()} row {index}"
                estimate.refused.append(Refused(where, str(exc)))
                continue
            if key is None:
                estimate.unpriced.add(model)
            else:
                amounts[bucket.day, key] += dollars
    for (day, key), dollars in sorted(amounts.items()):
        estimate.costs.append(Cost(id=estimate_id(day, key), amount=dollars, category=CATEGORY,
                                   ts=day_start(day), model=key, cost_type="tokens", estimated=True))
    return estimate
