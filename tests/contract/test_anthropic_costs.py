"""anthropic_costs against a fake Admin API on 127.0.0.1 serving the documented shapes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

import northstard_plugins.anthropic_costs as anthropic_costs
from northstard.config import load_config
from northstard.core.pnl import Book
from northstard.core.records import Cost, Reading, Retract
from northstard.errors import (
    ConfigError,
    HttpStatusError,
    NotConfigured,
    RateLimited,
    SchemaDriftError,
    Unreachable,
)
from northstard.http import retry_after_s
from northstard.plugins import make_plugins
from northstard_plugins.anthropic_costs import AnthropicCostSource, Settings

from fakes import (
    MALFORMED,
    TIMEOUT,
    TRUNCATED,
    TRUNCATED_NO_LENGTH,
    FakeAnthropic,
    cost_row,
    secret_file,
    usage_row,
    wait_for_doc,
)

KEY = "sk-ant-admin01-test-key-0000"
DAY = date(2026, 8, 16)
COST_PATH = "/v1/organizations/cost_report"
USAGE_PATH = "/v1/organizations/usage_report/messages"
PRICE_KEYS = ["claude-haiku-4", "claude-opus-4", "claude-opus-4-5", "claude-sonnet-4"]


def at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def days_ago(n: int) -> date:
    return DAY - timedelta(days=n)


async def fake_api(nursery: trio.Nursery, clock: Clock, **options: Any) -> FakeAnthropic:
    fake = FakeAnthropic(clock=clock, **options)
    await fake.start(nursery)
    return fake


def make_source(fake: FakeAnthropic, clock: Clock, **options: Any) -> AnthropicCostSource:
    settings = Settings(admin_key=KEY, base_url=fake.url, start_date=days_ago(3), **options)
    return AnthropicCostSource("anthropic", settings, clock=clock)


def costs(reading: Reading, *, estimated: bool | None = None) -> dict[str, Cost]:
    return {
        r.id: r for r in reading.records
        if isinstance(r, Cost) and (estimated is None or r.estimated == estimated)
    }


def retracted(reading: Reading) -> set[str]:
    return {r.id for r in reading.records if isinstance(r, Retract)}


def book_of(*readings: Reading) -> Book:
    book = Book()
    for reading in readings:
        book.ingest(reading.source, reading.records)
    return book


def cost_requests(fake: FakeAnthropic) -> list[Any]:
    return [r for r in fake.requests if r.path == COST_PATH]


def usage_requests(fake: FakeAnthropic) -> list[Any]:
    return [r for r in fake.requests if r.path == USAGE_PATH]


# -- the reported cost ---------------------------------------------------------


async def test_cost_report_pages_sum_to_exact_dollars(nursery: trio.Nursery) -> None:
    clock = Clock(at(DAY, 10, 30))
    fake = await fake_api(nursery, clock, page_size=1)
    fake.costs[days_ago(3)] = [
        cost_row("123.78912"),
        cost_row("4500", description="Claude Sonnet 4 Usage - Output Tokens", token_type="output_tokens"),
    ]
    fake.costs[days_ago(1)] = [
        cost_row("0.00088", workspace_id=None),
        cost_row("2500.5", model="claude-opus-4", description="Claude Opus 4 Usage - Input Tokens"),
        cost_row("1000", cost_type="web_search", model=None, description="Web Search", token_type=None),
    ]
    source = make_source(fake, clock)
    reading = await source.poll()
    await source.aclose()

    reported = costs(reading, estimated=False)
    assert sum(c.amount for c in reported.values()) == Decimal("81.2429")  # 8124.29 cents
    example = reported["report/2026-08-13/wrkspc_01/Claude Sonnet 4 Usage - Input Tokens"]
    assert example == Cost(
        id="report/2026-08-13/wrkspc_01/Claude Sonnet 4 Usage - Input Tokens",
        amount=Decimal("1.2378912"), category="ai", ts=at(days_ago(3)), model="claude-sonnet-4",
        cost_type="tokens",
    )
    assert reported["report/2026-08-15/default/Claude Sonnet 4 Usage - Input Tokens"].amount == Decimal(
        "0.0000088"
    )
    assert reported["report/2026-08-15/wrkspc_01/Web Search"].model is None
    assert reported["report/2026-08-15/wrkspc_01/Web Search"].cost_type == "web_search"
    assert book_of(reading).total("costs", "total") == Decimal("81.2429")
    assert book_of(reading).total("costs", "by_model", "claude-opus-4") == Decimal("25.005")

    requests = cost_requests(fake)
    assert [r.arg("page") for r in requests] == [None, "page_1", "page_2"]  # every page, in order
    for request in requests:
        assert request.args("group_by[]") == ["description", "workspace_id"]
        assert (request.arg("bucket_width"), request.arg("limit")) == ("1d", "31")
        assert request.arg("starting_at") == "2026-08-13T00:00:00Z"
        assert request.arg("ending_at") == "2026-08-17T00:00:00Z"
        assert request.headers["x-api-key"] == KEY
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert "authorization" not in request.headers
    # the covered days (not the empty one) withdraw any estimate they might have had
    assert retracted(reading) == {
        f"estimate/{day}/{key}" for day in ("2026-08-13", "2026-08-15") for key in PRICE_KEYS
    }
    assert reading.notes["reported_through"] == "2026-08-15"


async def test_identical_description_rows_of_a_day_and_workspace_are_summed(
    nursery: trio.Nursery,
) -> None:
    clock = Clock(at(DAY, 9))
    fake = await fake_api(nursery, clock)
    fake.costs[days_ago(1)] = [cost_row("100"), cost_row("0.5", context_window="200k-1M")]
    source = make_source(fake, clock)
    reported = costs(await source.poll(), estimated=False)
    await source.aclose()
    assert {k: v.amount for k, v in reported.items()} == {
        "report/2026-08-15/wrkspc_01/Claude Sonnet 4 Usage - Input Tokens": Decimal("1.005"),
    }


# -- the intraday estimate -----------------------------------------------------


async def test_todays_usage_is_priced_into_exact_estimates(nursery: trio.Nursery) -> None:
    clock = Clock(at(DAY, 10, 5))
    fake = await fake_api(nursery, clock)
    fake.costs[days_ago(1)] = [cost_row("100")]
    fake.usage[at(DAY, 8)] = [usage_row("claude-sonnet-4-20250514", uncached=1_000_000, output=200_000,
                                        cache_read=500_000, cache_5m=100_000, cache_1h=10_000)]
    fake.usage[at(DAY, 9)] = [
        usage_row("claude-sonnet-4-20250514", uncached=1234, output=567),
        usage_row("claude-opus-4-1-20250805", output=1000),
        usage_row("claude-opus-4-5-20251101", uncached=2000),
        usage_row("mystery-model", uncached=5),
    ]
    source = make_source(fake, clock)
    with structlog.testing.capture_logs() as logs:
        reading = await source.poll()
        again = await source.poll()
    await source.aclose()

    estimates = costs(reading, estimated=True)
    assert {k: v.amount for k, v in estimates.items()} == {
        "estimate/2026-08-16/claude-sonnet-4": Decimal("6.597207"),  # 6.585 + 0.012207
        "estimate/2026-08-16/claude-opus-4": Decimal("0.075"),
        "estimate/2026-08-16/claude-opus-4-5": Decimal("0.01"),
    }
    sonnet = estimates["estimate/2026-08-16/claude-sonnet-4"]
    assert (sonnet.model, sonnet.cost_type, sonnet.ts, sonnet.category) == (
        "claude-sonnet-4", "tokens", at(DAY), "ai"
    )
    book = book_of(reading)
    assert book.total("costs", "estimated") == Decimal("6.682207")
    assert book.total("costs", "total") == Decimal("1") + Decimal("6.682207")
    assert reading.notes == {"reported_through": "2026-08-15", "estimated_days": "2026-08-16",
                             "unpriced_models": "mystery-model"}
    assert costs(again) == costs(reading)  # the same day re-read: equal records
    unpriced = [e for e in logs if "mystery-model" in e["event"]]
    assert len(unpriced) == 1 and unpriced[0]["log_level"] == "warning"

    usage = usage_requests(fake)[0]
    assert usage.arg("starting_at") == "2026-08-16T00:00:00Z"  # yesterday is reported
    assert (usage.arg("bucket_width"), usage.arg("limit")) == ("1h", "168")
    assert usage.args("group_by[]") == ["model"]


async def test_the_report_replaces_the_estimate_when_the_day_closes(nursery: trio.Nursery) -> None:
    clock = Clock(at(DAY, 23))
    fake = await fake_api(nursery, clock)
    fake.costs[days_ago(1)] = [cost_row("100")]
    fake.usage[at(DAY, 22)] = [usage_row("claude-sonnet-4", uncached=1_000_000)]
    source = make_source(fake, clock)

    first = await source.poll()
    assert {k: v.amount for k, v in costs(first, estimated=True).items()} == {
        "estimate/2026-08-16/claude-sonnet-4": Decimal("3"),
    }

    # just after midnight: the 16th is not reported yet, so it stays estimated, and so is the 17th
    clock.now = at(DAY + timedelta(days=1), 0, 30)
    fake.usage[at(DAY, 23)] = [usage_row("claude-sonnet-4", uncached=100_000)]
    fake.usage[at(DAY + timedelta(days=1), 0)] = [usage_row("claude-sonnet-4", output=1000)]
    second = await source.poll()
    assert {k: v.amount for k, v in costs(second, estimated=True).items()} == {
        "estimate/2026-08-16/claude-sonnet-4": Decimal("3.3"),
        "estimate/2026-08-17/claude-sonnet-4": Decimal("0.015"),
    }
    assert usage_requests(fake)[-1].arg("starting_at") == "2026-08-16T00:00:00Z"
    assert "estimate/2026-08-16/claude-sonnet-4" not in retracted(second)

    # the 16th is reported: its estimate is withdrawn, then the reported cost counts
    fake.reported_until = DAY + timedelta(days=1)
    fake.costs[DAY] = [cost_row("310")]
    third = await source.poll()
    await source.aclose()
    kinds = [(r.kind, r.id) for r in third.records]
    withdraw = kinds.index(("retract", "estimate/2026-08-16/claude-sonnet-4"))
    report = kinds.index(("cost", "report/2026-08-16/wrkspc_01/Claude Sonnet 4 Usage - Input Tokens"))
    assert withdraw < report
    assert set(costs(third, estimated=True)) == {"estimate/2026-08-17/claude-sonnet-4"}
    assert cost_requests(fake)[-1].arg("starting_at") == "2026-08-15T00:00:00Z"  # today - 2

    book = book_of(first, second, third)
    assert book.total("costs", "estimated") == Decimal("0.015")
    assert book.total("costs", "total") == Decimal("1") + Decimal("3.10") + Decimal("0.015")


async def test_a_new_instance_withdraws_estimates_left_by_the_last_run(nursery: trio.Nursery) -> None:
    clock = Clock(at(DAY, 6))
    fake = await fake_api(nursery, clock)
    fake.costs[days_ago(3)] = [cost_row("1")]
    source = make_source(fake, clock)
    reading = await source.poll()
    await source.aclose()
    assert "estimate/2026-08-13/claude-sonnet-4" in retracted(reading)  # older than the refresh window


async def test_a_reported_partial_today_is_preferred_and_the_assumption_logged_once(
    nursery: trio.Nursery,
) -> None:
    clock = Clock(at(DAY, 15))
    fake = await fake_api(nursery, clock)
    fake.reported_until = DAY + timedelta(days=1)
    fake.costs[DAY] = [cost_row("250")]
    fake.costs[days_ago(1)] = [cost_row("100")]
    fake.usage[at(DAY, 14)] = [usage_row("claude-sonnet-4", uncached=5_000_000)]
    source = make_source(fake, clock)
    with structlog.testing.capture_logs() as logs:
        readings = [await source.poll(), await source.poll()]
    await source.aclose()
    for reading in readings:
        assert costs(reading, estimated=True) == {}
        assert "estimate/2026-08-16/claude-sonnet-4" in retracted(reading)
        assert reading.notes["estimated_days"] == ""
    assert usage_requests(fake) == []  # nothing left to estimate
    assert len([e for e in logs if "partial day" in e["event"]]) == 1
    assert book_of(*readings).total("costs", "total") == Decimal("3.50")


async def test_one_minute_buckets_are_paged(nursery: trio.Nursery) -> None:
    clock = Clock(at(DAY, 0, 50))
    fake = await fake_api(nursery, clock, page_size=20)
    fake.costs[days_ago(1)] = [cost_row("1")]
    fake.usage[at(DAY, 0, 10)] = [usage_row("claude-haiku-4-5-20251001", uncached=1_000_000)]
    fake.usage[at(DAY, 0, 45)] = [usage_row("claude-haiku-4-5-20251001", output=1_000_000)]
    source = make_source(fake, clock, usage_bucket="1m")
    reading = await source.poll()
    await source.aclose()
    assert costs(reading, estimated=True)["estimate/2026-08-16/claude-haiku-4"].amount == Decimal("6")
    usage = usage_requests(fake)
    assert [r.arg("page") for r in usage] == [None, "page_20", "page_40"]
    assert {(r.arg("bucket_width"), r.arg("limit")) for r in usage} == {("1m", "1440")}


async def test_an_oauth_bearer_token_is_sent_instead_of_a_key(nursery: trio.Nursery) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock, admin_key=None, oauth_token="oauth-token-abc123")
    settings = Settings(oauth_token="oauth-token-abc123", base_url=fake.url, start_date=DAY)
    source = AnthropicCostSource("anthropic", settings, clock=clock)
    await source.poll()
    await source.aclose()
    assert fake.requests[0].headers["authorization"] == "Bearer oauth-token-abc123"
    assert "x-api-key" not in fake.requests[0].headers


async def test_without_credentials_the_source_is_off_and_says_so_once() -> None:
    with structlog.testing.capture_logs() as logs:
        source = AnthropicCostSource("anthropic", Settings(base_url="http://127.0.0.1:9"))
        for _ in range(2):
            with pytest.raises(NotConfigured, match="no credentials"):
                await source.poll()
    await source.aclose()
    assert [e["event"] for e in logs] == ["source off"]


# -- failures: each a clear error, never a crash, never a wrong number -----------


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (FakeAnthropic.server_error(500), HttpStatusError,
         "HTTP 500 Internal Server Error: Internal server error"),
        (FakeAnthropic.server_error(503), HttpStatusError, "HTTP 503"),
        (MALFORMED, SchemaDriftError, "malformed JSON"),
        (TRUNCATED, SchemaDriftError, "truncated body"),
        (TRUNCATED_NO_LENGTH, SchemaDriftError, "malformed JSON"),
    ],
    ids=["500", "503", "malformed", "truncated", "truncated-no-length"],
)
async def test_a_bad_answer_fails_the_poll_clearly(
    nursery: trio.Nursery, fault: Any, error: type[Exception], message: str
) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock)
    fake.fail_next(fault, path=COST_PATH)
    source = make_source(fake, clock)
    with pytest.raises(error, match=message) as raised:
        await source.poll()
    assert str(raised.value).startswith(f"GET {COST_PATH}")
    await source.poll()  # the next poll is fine again
    await source.aclose()


async def test_a_wrong_key_is_401_and_never_appears_in_the_error(nursery: trio.Nursery) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock)
    settings = Settings(admin_key="sk-ant-admin01-WRONG-secret", base_url=fake.url, start_date=DAY)
    source = AnthropicCostSource("anthropic", settings, clock=clock)
    with pytest.raises(HttpStatusError) as raised:
        await source.poll()
    await source.aclose()
    assert raised.value.status == 401
    assert "WRONG-secret" not in str(raised.value)
    assert "HTTP 401 Unauthorized: invalid x-api-key <redacted>" in str(raised.value)


async def test_a_hung_server_times_out_per_call(nursery: trio.Nursery, autojump_clock: Any) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock)
    fake.fail_next(TIMEOUT, path=USAGE_PATH)
    source = make_source(fake, clock, request_timeout_s=5.0)
    start = trio.current_time()
    with pytest.raises(Unreachable, match=f"GET {USAGE_PATH}: no answer within 5 s"):
        await source.poll()
    assert trio.current_time() - start == pytest.approx(5.0, abs=0.1)
    await source.aclose()


async def test_429_waits_for_retry_after_then_succeeds(nursery: trio.Nursery, autojump_clock: Any) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock)
    fake.costs[days_ago(1)] = [cost_row("100")]
    fake.fail_next(FakeAnthropic.rate_limited("7"), path=COST_PATH)
    source = make_source(fake, clock)
    start = trio.current_time()
    reading = await source.poll()
    await source.aclose()
    assert 7.0 <= trio.current_time() - start < 7.5
    assert len(cost_requests(fake)) == 2
    assert book_of(reading).total("costs", "total") == Decimal("1")


async def test_429_without_retry_after_backs_off_exponentially(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock)
    fake.fail_next(FakeAnthropic.rate_limited(), FakeAnthropic.rate_limited(), path=COST_PATH)
    source = make_source(fake, clock)
    start = trio.current_time()
    await source.poll()
    elapsed = trio.current_time() - start
    assert 0.5 + 1.0 <= elapsed <= 1.0 + 2.0  # [b/2, b] for b = 1 s, then 2 s: jittered
    fake.fail_next(*[FakeAnthropic.rate_limited()] * 3, path=COST_PATH)
    with pytest.raises(RateLimited, match="HTTP 429"):
        await source.poll()  # three attempts, then the poll fails
    await source.aclose()


async def test_a_long_retry_after_fails_the_poll_and_is_honoured_by_the_next(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock)
    fake.fail_next(FakeAnthropic.rate_limited("120"), path=COST_PATH)
    source = make_source(fake, clock)
    with pytest.raises(RateLimited, match="retry in 120 s"):
        await source.poll()
    calls = len(fake.requests)
    await trio.sleep(60)
    with pytest.raises(RateLimited, match="not calling for another 60 s"):
        await source.poll()
    assert len(fake.requests) == calls  # no request inside the Retry-After window
    await trio.sleep(60)
    await source.poll()
    await source.aclose()


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 8, 16, 12, 0, tzinfo=UTC)
    assert retry_after_s("7") == 7.0
    assert retry_after_s("Sun, 16 Aug 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_s("Sun, 16 Aug 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None


DRIFTED_ROWS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("a number where the cents string belongs", lambda row: {**row, "amount": 123.78912}),
    ("amount renamed", lambda row: {k if k != "amount" else "cost": v for k, v in row.items()}),
    ("another currency", lambda row: {**row, "currency": "EUR"}),
    ("no description", lambda row: {k: v for k, v in row.items() if k != "description"}),
    ("not an object", lambda row: "123.78912"),
    ("more places than a record keeps", lambda row: {**row, "amount": "1.00000000001"}),  # 13 in dollars
]


@pytest.mark.parametrize("drift", [d for _, d in DRIFTED_ROWS], ids=[n for n, _ in DRIFTED_ROWS])
async def test_a_drifted_cost_row_is_refused_alone_and_logged_once(
    nursery: trio.Nursery, drift: Callable[[dict[str, Any]], Any]
) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock)
    fake.costs[days_ago(1)] = [cost_row("100", workspace_id="wrkspc_02"), drift(cost_row("999"))]
    source = make_source(fake, clock)
    with structlog.testing.capture_logs() as logs:
        readings = [await source.poll(), await source.poll()]
    await source.aclose()
    for reading in readings:
        assert [c.amount for c in costs(reading).values()] == [Decimal("1")]
        assert reading.notes["refused_rows"] == "1"
        assert len(reading.refused) == 1
        assert reading.refused[0].startswith("cost_report 2026-08-15 row 1: ")
    refused = [e for e in logs if e["event"] == "schema drift: row refused"]
    assert len(refused) == 1 and refused[0]["log_level"] == "error"
    assert refused[0]["where"] == "cost_report 2026-08-15 row 1"


async def test_a_drifted_usage_row_is_refused_alone(nursery: trio.Nursery) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock)
    good = usage_row("claude-sonnet-4", output=1000)
    bad = {k: v for k, v in usage_row("claude-opus-4", output=1000).items() if k != "output_tokens"}
    fake.usage[at(DAY, 11)] = [good, bad, {**good, "output_tokens": "1000"}]
    source = make_source(fake, clock)
    reading = await source.poll()
    await source.aclose()
    assert {k: v.amount for k, v in costs(reading, estimated=True).items()} == {
        "estimate/2026-08-16/claude-sonnet-4": Decimal("0.015"),
    }
    assert reading.notes["refused_rows"] == "2"


PAGE_DRIFTS: list[tuple[str, Callable[[str, Any], Any], str]] = [
    ("data renamed", lambda p, d: {"buckets": d["data"], "has_more": False}, "'data' is missing"),
    ("has_more missing", lambda p, d: {"data": d["data"]}, "'has_more' is missing"),
    ("next_page missing", lambda p, d: {"data": d["data"], "has_more": True}, "'next_page' is missing"),
    ("results not a list", lambda p, d: {**d, "data": [{**b, "results": {}} for b in d["data"]]},
     "'results' is missing"),
    ("starting_at a number", lambda p, d: {**d, "data": [{**b, "starting_at": 1786838400}
                                                          for b in d["data"]]}, "starting_at"),
    ("a list body", lambda p, d: d["data"], "expected a JSON object"),
]


@pytest.mark.parametrize(("drift", "message"), [(d, m) for _, d, m in PAGE_DRIFTS],
                         ids=[n for n, _, _ in PAGE_DRIFTS])
async def test_a_drifted_page_fails_the_poll(
    nursery: trio.Nursery, drift: Callable[[str, Any], Any], message: str
) -> None:
    clock = Clock(at(DAY, 12))
    fake = await fake_api(nursery, clock)
    fake.costs[days_ago(1)] = [cost_row("100")]
    fake.drift = drift
    source = make_source(fake, clock)
    with pytest.raises(SchemaDriftError, match=message):
        await source.poll()
    await source.aclose()


# -- config --------------------------------------------------------------------


def load(tmp_path: Path, body: str) -> Any:
    path = tmp_path / "northstard.toml"
    path.write_text("[sources.anthropic]\nplugin = \"anthropic_costs\"\n" + body)
    plugins = make_plugins(entry_points=False, extra=[anthropic_costs], blocked=())
    return load_config(path, plugins.source_types(), environ={}).sources[0]


def test_config_defaults_interval_and_price_table(tmp_path: Path) -> None:
    secret = secret_file(tmp_path, "admin", KEY)
    section = load(tmp_path, f'admin_key_file = "{secret}"\n'
                   '[sources.anthropic.price_table.claude-sonnet-4]\n'
                   'input = "2.5"\noutput = 12\ncache_write = "3.125"\ncache_read = "0.25"\n')
    assert section.interval_s == 60.0  # never faster than once a minute unless configured
    settings = Settings.from_options(section.options, "sources.anthropic")
    assert settings.admin_key == KEY
    sonnet = settings.prices["claude-sonnet-4"]
    assert (sonnet.input, sonnet.output, sonnet.cache_write_1h) == (Decimal("2.5"), 12, Decimal("5.0"))
    assert settings.prices["claude-opus-4"].output == 75  # defaults kept for the others
    assert settings.start_date is None and settings.usage_bucket == "1h"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[sources.anthropic.price_table.m]\ninput = 3.0\noutput = "1"\ncache_write = "1"\n'
         'cache_read = "1"\n', "write prices as strings"),
        ('[sources.anthropic.price_table.m]\ninput = "3"\n', "m: missing output, cache_write, cache_read"),
        ('[sources.anthropic.price_table.m]\ninput = "0.0000001"\noutput = "1"\ncache_write = "1"\n'
         'cache_read = "1"\n', "m.input: at most 6 decimal places"),
        ('usage_bucket = "5m"\n', "must be one of 1m, 1h"),
        ('start_date = "16/08/2026"\n', "YYYY-MM-DD"),
        ('admin_key = "sk-ant-admin01-in-the-file"\n', "secrets are not read from the config file"),
    ],
    ids=["float-price", "missing-price", "price-places", "bucket", "date", "secret-in-file"],
)
def test_bad_config_names_the_key(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, body)


# -- end to end ----------------------------------------------------------------


def failing(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda doc: doc.get("sources", {}).get(name, {}).get("status") == "failing"


def e2e_fake() -> FakeAnthropic:
    fake = FakeAnthropic()
    now = datetime.now(UTC)
    fake.costs[now.date() - timedelta(days=1)] = [
        cost_row("123.78912"),
        cost_row("4500", description="Claude Sonnet 4 Usage - Output Tokens"),
    ]
    hour = now.replace(minute=0, second=0, microsecond=0)
    fake.usage[hour] = [usage_row("claude-sonnet-4-20250514", uncached=1_000_000)]
    return fake


async def test_e2e_reported_and_estimated_costs_reach_the_snapshot(
    nursery: trio.Nursery, start_daemon: Any, tmp_path: Path
) -> None:
    fake = e2e_fake()
    await fake.start(nursery)
    key = secret_file(tmp_path, "anthropic", KEY)
    daemon = await start_daemon({"anthropic": {"plugin": "anthropic_costs", "base_url": fake.url,
                                               "admin_key_file": key, "interval_s": 0.05}})
    doc = await wait_for_doc(daemon, lambda d: d.get("costs", {}).get("total") not in (None, "0.00"))
    assert doc["costs"]["total"] == "49.2378912"  # $46.2378912 reported + $3 estimated
    assert doc["costs"]["estimated"] == "3.00"
    assert doc["costs"]["by_model"] == {"claude-sonnet-4": "49.2378912"}
    assert doc["net_pnl"] == "-49.2378912"
    assert doc["sources"]["anthropic"]["status"] == "ok"


async def test_e2e_a_failing_api_marks_the_source_while_the_demo_streams(
    nursery: trio.Nursery, start_daemon: Any, tmp_path: Path
) -> None:
    fake = e2e_fake()
    fake.fail_always(FakeAnthropic.server_error(503))
    await fake.start(nursery)
    key = secret_file(tmp_path, "anthropic", KEY)
    daemon = await start_daemon({
        "anthropic": {"plugin": "anthropic_costs", "base_url": fake.url, "admin_key_file": key,
                      "interval_s": 0.05, "failure_threshold": 100},
        "demo": {"interval_s": 0.02, "seed": 7},
    })
    doc = await wait_for_doc(daemon, failing("anthropic"))
    assert "HTTP 503" in doc["sources"]["anthropic"]["last_error"]
    assert KEY not in doc["sources"]["anthropic"]["last_error"]
    seq = daemon.hub.seq
    doc = await wait_for_doc(daemon, lambda d: daemon.hub.seq >= seq + 3)
    assert doc["sources"]["demo"]["status"] == "ok"
    assert doc["sources"]["anthropic"]["status"] == "failing"
