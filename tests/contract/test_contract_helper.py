"""northstard.testing.check_source_contract, and ``northstard sources check``.

The contract check passes good sources (a minimal one, the demo, each
built-in HTTP plugin against its fake) and names the rule a broken one
breaks. ``sources check`` polls every configured source once and reports
reachable / authenticated / what it would contribute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from northstard.core.records import Cost, Fill, Invoice, Reading, Record, Retract
from northstard.ops import sources_check
from northstard.testing import check_source_contract
from northstard_plugins.anthropic_costs import AnthropicCostSource
from northstard_plugins.anthropic_costs import Settings as AnthropicSettings
from northstard_plugins.demo import DemoSource
from northstard_plugins.demo import Settings as DemoSettings
from northstard_plugins.revenue_http import RevenueHttpSource
from northstard_plugins.revenue_http import Settings as RevenueSettings
from northstard_plugins.stripe import Settings as StripeSettings
from northstard_plugins.stripe import StripeSource

from conftest import build_config, plugins_for_tests
from fakes import (
    TIMEOUT,
    FakeAnthropic,
    FakeRevenue,
    FakeStripe,
    closed_port_url,
    cost_row,
    invoice,
    secret_file,
    transaction,
    usage_row,
)

T = datetime(2026, 8, 16, 12, tzinfo=UTC)


class Scripted:
    """A source that returns the scripted records, one tuple per poll."""

    def __init__(self, polls: Sequence[Sequence[Any]], *, as_of: datetime = T, closes: int = 99,
                 stream: Callable[[], Any] | None = None) -> None:
        self.polls = list(polls)
        self.as_of = as_of
        self.closes_left = closes
        self.closed = 0
        if stream is not None:
            self.stream = stream

    async def poll(self) -> Reading:
        await trio.lowlevel.checkpoint()
        records = tuple(self.polls.pop(0)) if self.polls else ()
        return Reading("scripted", records, self.as_of)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        self.closed += 1
        if self.closed > self.closes_left:
            raise RuntimeError("already closed")


def cost(id: str = "c1", amount: Any = Decimal("1.50"), **changes: Any) -> Cost:
    return Cost(**{"id": id, "amount": amount, "category": "ai", "ts": T, **changes})


def bypass(record: Record, **changes: Any) -> Record:
    """``record`` with fields set past the dataclass checks (as a buggy plugin might)."""
    copy = dataclasses.replace(record)
    for name, value in changes.items():
        object.__setattr__(copy, name, value)
    return copy


FILL = Fill(id="f1", ticker="T", side="yes", action="buy", count=Decimal(15), price=Decimal("0.74"),
            fee=Decimal("0.2021"), ts=T)
INVOICE = Invoice(id="in_1", total=Decimal(100), paid=Decimal(0), status="open", ts=T)


async def test_a_good_source_passes_and_gets_its_readings_back() -> None:
    source = Scripted([
        [cost(), INVOICE, FILL, Retract(id="estimate/x", target_kind="cost")],
        [cost(amount=Decimal("2.00"), estimated=True), dataclasses.replace(INVOICE, status="paid",
                                                                           paid=Decimal(100)), FILL],
    ])
    readings = await check_source_contract(lambda: source)
    assert [len(r.records) for r in readings] == [4, 3]
    assert source.closed == 2  # aclose() twice: it must be idempotent


async def test_an_async_factory_is_awaited() -> None:
    async def factory() -> Scripted:
        await trio.lowlevel.checkpoint()
        return Scripted([[cost()]])

    assert len(await check_source_contract(factory, polls=1)) == 1


async def test_a_stream_that_is_an_async_generator_passes() -> None:
    async def stream() -> AsyncIterator[Reading]:
        yield Reading("scripted", (), T)  # pragma: no cover - never started

    await check_source_contract(lambda: Scripted([], stream=stream))


class Completes(Scripted):
    def __init__(self, polls: Sequence[Sequence[Any]], complete_kinds: tuple[str, ...]) -> None:
        super().__init__(polls)
        self.complete_kinds = complete_kinds

    async def poll(self) -> Reading:
        reading = await super().poll()
        return dataclasses.replace(reading, complete_kinds=self.complete_kinds)


class NotAReading(Scripted):
    async def poll(self) -> Any:
        await trio.lowlevel.checkpoint()
        return {"records": []}


BROKEN: list[tuple[str, Callable[[], Any], str]] = [
    ("float amount", lambda: Scripted([[cost(amount=1.5)]]), "amount is the float 1.5"),
    ("nan amount", lambda: Scripted([[bypass(cost(), amount=Decimal("NaN"))]]),
     "amount is NaN, not a finite amount"),
    ("amount out of bounds", lambda: Scripted([[bypass(cost(), amount=Decimal("1e15"))]]),
     r"amount: \$100 trillion or more"),
    ("too many places", lambda: Scripted([[bypass(cost(), amount=Decimal("0.1234567890123"))]]),
     "amount: more than 12 decimal places"),
    ("unknown complete kind", lambda: Completes([[cost()]], complete_kinds=("costs",)),
     "complete_kinds must be a tuple of record kinds"),
    ("naive time", lambda: Scripted([[bypass(cost(), ts=datetime(2026, 8, 16))]]), "ts is a naive datetime"),
    ("non-UTC time", lambda: Scripted([[bypass(cost(), ts=T.astimezone(timezone(timedelta(hours=2))))]]),
     "ts is 2026-08-16T14:00:00\\+02:00; times must be UTC"),
    ("naive as_of", lambda: Scripted([[]], as_of=datetime(2026, 8, 16)), "Reading.as_of is a naive"),
    ("empty id", lambda: Scripted([[bypass(cost(), id="")]]), "id '' must be a non-empty string"),
    ("not a record", lambda: Scripted([[{"id": "x", "amount": "1"}]]), "is not a northstard record"),
    ("duplicate id", lambda: Scripted([[cost(), cost(amount=Decimal(2))]]), "sent twice in one reading"),
    ("retract and send", lambda: Scripted([[Retract(id="c1", target_kind="cost"), cost()]]),
     "retracts cost 'c1' and sends it in the same reading"),
    ("retract unknown kind", lambda: Scripted([[Retract(id="c1", target_kind="costs")]]),
     "retracts an unknown kind 'costs'"),
    ("fill changes", lambda: Scripted([[FILL], [dataclasses.replace(FILL, count=Decimal(16))]]),
     "poll 2, record fill 'f1': count changed from Decimal\\('15'\\) to Decimal\\('16'\\)"),
    ("invoice time changes",
     lambda: Scripted([[INVOICE], [dataclasses.replace(INVOICE, ts=T + timedelta(1))]]), "ts changed"),
    ("cost category changes", lambda: Scripted([[cost()], [cost(category="infra")]]), "category changed"),
    ("not a Reading", lambda: NotAReading([]), "poll\\(\\) returned dict, not a Reading"),
    ("stream not iterable", lambda: Scripted([], stream=lambda: [1, 2]), "stream\\(\\) returned list"),
    ("aclose twice fails", lambda: Scripted([], closes=1), "a second aclose\\(\\).*idempotent.*already"),
    ("not a source", lambda: object(), "has no async poll\\(\\) and aclose\\(\\)"),
    ("empty agent", lambda: Scripted([[bypass(cost(), agent="")]]), "agent '' must be None"),
]


@pytest.mark.parametrize(("factory", "message"), [(f, m) for _, f, m in BROKEN],
                         ids=[n for n, _, _ in BROKEN])
async def test_a_broken_source_fails_with_a_clear_message(factory: Callable[[], Any], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        await check_source_contract(factory)


async def test_a_broken_source_is_still_closed() -> None:
    source = Scripted([[cost(amount=0.1)]])
    with pytest.raises(AssertionError):
        await check_source_contract(lambda: source)
    assert source.closed == 1


async def test_polls_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await check_source_contract(lambda: Scripted([]), polls=0)


# -- the built-in plugins pass ----------------------------------------------------


async def test_the_demo_passes() -> None:
    readings = await check_source_contract(lambda: DemoSource("demo", DemoSettings(seed=7)), polls=3)
    assert all(r.records for r in readings)


async def test_anthropic_costs_passes_against_its_fake(nursery: trio.Nursery) -> None:
    now = datetime(2026, 8, 16, 12, tzinfo=UTC)
    fake = FakeAnthropic(clock=lambda: now, page_size=2)
    fake.costs[date(2026, 8, 15)] = [cost_row("123.78912"), cost_row("5", workspace_id=None)]
    fake.usage[datetime(2026, 8, 16, 11, tzinfo=UTC)] = [usage_row("claude-sonnet-4", output=100)]
    await fake.start(nursery)
    settings = AnthropicSettings(admin_key=fake.admin_key, base_url=fake.url, start_date=date(2026, 8, 10))
    readings = await check_source_contract(
        lambda: AnthropicCostSource("anthropic", settings, clock=lambda: now)
    )
    assert {r.kind for r in readings[0].records} == {"cost", "retract"}


async def test_revenue_http_passes_against_its_fake(nursery: trio.Nursery) -> None:
    fake = FakeRevenue('{"invoiced": 99999999999999.99, "collected": "1.10"}')
    await fake.start(nursery)
    readings = await check_source_contract(
        lambda: RevenueHttpSource("sales", RevenueSettings(base_url=fake.url))
    )
    assert readings[0].records == readings[1].records


async def test_stripe_passes_against_its_fake(nursery: trio.Nursery) -> None:
    fake = FakeStripe(page_size=1)
    fake.add("invoices", invoice("in_1", "open", 500), invoice("in_2", "paid", 700, created=1786849300))
    fake.add("balance_transactions", transaction("txn_1", "refund", -100))
    await fake.start(nursery)
    settings = StripeSettings(api_key=fake.api_key, base_url=fake.url + "/v1")
    readings = await check_source_contract(lambda: StripeSource("stripe", settings))
    assert {r.kind for r in readings[0].records} == {"invoice", "refund"}


# -- northstard sources check --------------------------------------------------------


async def test_sources_check_reports_each_source(nursery: trio.Nursery, tmp_path: Path) -> None:
    revenue = FakeRevenue('{"invoiced": "1234.56", "collected": 1000}')
    stripe = FakeStripe()
    anthropic = FakeAnthropic()
    for fake in (revenue, stripe, anthropic):
        await fake.start(nursery)
    anthropic.costs[datetime.now(UTC).date() - timedelta(days=1)] = [cost_row("250")]
    config = build_config(tmp_path, {
        "sales": {"plugin": "revenue_http", "base_url": revenue.url},
        "stripe": {"base_url": stripe.url + "/v1",
                   "api_key_file": secret_file(tmp_path, "stripe", "sk_test_WRONG_key_1")},
        "anthropic": {"plugin": "anthropic_costs", "base_url": anthropic.url,
                      "admin_key_file": secret_file(tmp_path, "anthropic", anthropic.admin_key or "")},
        "nobody": {"plugin": "revenue_http", "base_url": closed_port_url()},
        "nokey": {"plugin": "stripe"},
        "off": {"plugin": "revenue_http", "base_url": revenue.url, "enabled": False},
    })
    results = await sources_check.check_sources(config, plugins_for_tests())
    by_name = {r["name"]: r for r in results}
    assert list(by_name) == ["sales", "stripe", "anthropic", "nobody", "nokey"]

    sales = by_name["sales"]
    assert (sales["ok"], sales["reachable"], sales["authenticated"]) == (True, True, True)
    assert sales["error"] is None
    assert sales["records"] == {"revenue_total": 1}
    assert sales["totals"]["invoiced"] == "1234.56" and sales["totals"]["net_pnl"] == "1234.56"

    stripe_result = by_name["stripe"]
    assert (stripe_result["ok"], stripe_result["reachable"], stripe_result["authenticated"]) == (
        False, True, False)
    assert "HTTP 401" in stripe_result["error"] and "WRONG_key" not in stripe_result["error"]

    costs = by_name["anthropic"]
    assert costs["ok"] and costs["totals"]["costs"] == "2.50" and costs["totals"]["net_pnl"] == "-2.50"
    assert costs["records"]["cost"] == 1

    assert (by_name["nobody"]["reachable"], by_name["nobody"]["authenticated"]) == (False, False)
    assert "ConnectError" in by_name["nobody"]["error"]
    assert (by_name["nokey"]["reachable"], by_name["nokey"]["authenticated"]) == (False, False)
    assert "no api_key" in by_name["nokey"]["error"]

    table = sources_check.format_table(results)
    assert table.splitlines()[0].split() == ["SOURCE", "PLUGIN", "REACHABLE", "AUTHENTICATED", "CONTRIBUTES"]
    assert "1 revenue_total; net_pnl 1234.56, invoiced 1234.56, collected 1000.00" in table


async def test_sources_check_respects_each_timeout(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: Any
) -> None:

    revenue = FakeRevenue()
    revenue.fail_always(TIMEOUT)
    await revenue.start(nursery)
    config = build_config(tmp_path, {"sales": {"plugin": "revenue_http", "base_url": revenue.url,
                                               "timeout_s": 3.0}})
    (result,) = await sources_check.check_sources(config, plugins_for_tests())
    assert (result["reachable"], result["error"]) == (False, "timed out")
    assert result["latency_s"] == pytest.approx(3.0, abs=0.1)


def test_sources_check_main_prints_a_table_and_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = build_config(tmp_path, {"demo": {"seed": 7}})
    assert sources_check.main(ok, plugins_for_tests()) == 0
    out = capsys.readouterr().out
    assert "demo    demo    yes" in out and "position" in out
    bad = build_config(tmp_path, {"demo": {"seed": 7}, "sales": {"plugin": "revenue_http",
                                                               "base_url": closed_port_url()},
                                  "later": {"plugin": "demo", "enabled": False}})
    assert sources_check.main(bad, plugins_for_tests()) == 1
    out = capsys.readouterr().out
    assert "sales   revenue_http  no         no             error: GET /api/revenue: ConnectError" in out
    assert "disabled: later" in out


def test_classify_reads_status_and_cause_chains() -> None:
    class Status(Exception):
        status = 403

    try:
        try:
            raise Status()
        except Status as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert sources_check.classify(outer) == (True, False)
    assert sources_check.classify(trio.TooSlowError()) == (False, False)
    assert sources_check.classify(ValueError("schema")) == (True, True)


async def test_sources_check_reports_fields_the_spec_does_not_know_and_required_ones_missing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Issue 17 item 4: a renamed field and a new one are seen on the first poll, per response kind."""
    anthropic = FakeAnthropic()
    await anthropic.start(nursery)
    anthropic.costs[datetime.now(UTC).date() - timedelta(days=1)] = [
        {**cost_row("250"), "discount_amount": "0"}]  # a field the reference does not document
    stripe = FakeStripe()
    await stripe.start(nursery)
    stripe.add("invoices", invoice("in_1", "paid", 1000))
    stripe.drift = lambda path, data: {**data, "data": [
        {("amount_paid_v2" if k == "amount_paid" else k): v for k, v in row.items()} for row in data["data"]]}
    config = build_config(tmp_path, {
        "anthropic": {"plugin": "anthropic_costs", "base_url": anthropic.url,
                      "admin_key_file": secret_file(tmp_path, "anthropic", anthropic.admin_key or "")},
        "stripe": {"base_url": stripe.url + "/v1",
                   "api_key_file": secret_file(tmp_path, "stripe", stripe.api_key)},
    })
    results = await sources_check.check_sources(config, plugins_for_tests())
    by_name = {r["name"]: r for r in results}
    assert by_name["anthropic"]["ok"]  # drift alone does not fail the check
    assert by_name["anthropic"]["fields"] == {"GET /v1/organizations/cost_report data[] results[]": {
        "unknown": ["discount_amount"], "missing": []}}
    stripe_result = by_name["stripe"]
    assert stripe_result["records"] == {}  # the plugin refused the invoice it cannot read (logged)
    assert stripe_result["fields"] == {"GET /v1/invoices data[]": {
        "unknown": ["amount_paid_v2"], "missing": ["amount_paid"]}}
    table = sources_check.format_table(results)
    assert ("  anthropic: schema drift in GET /v1/organizations/cost_report data[] results[]: "
            "not in the spec: discount_amount") in table.splitlines()
    assert ("  stripe: schema drift in GET /v1/invoices data[]: not in the spec: amount_paid_v2; "
            "required, not received: amount_paid") in table.splitlines()


async def test_sources_check_reports_no_drift_for_fakes_that_serve_the_spec(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    anthropic = FakeAnthropic()
    await anthropic.start(nursery)
    anthropic.costs[datetime.now(UTC).date() - timedelta(days=1)] = [cost_row("250")]
    anthropic.usage[datetime.now(UTC).replace(minute=0, second=0, microsecond=0)] = [
        usage_row("claude-sonnet-4", uncached=10)]
    config = build_config(tmp_path, {
        "anthropic": {"plugin": "anthropic_costs", "base_url": anthropic.url,
                      "admin_key_file": secret_file(tmp_path, "anthropic", anthropic.admin_key or "")}})
    (result,) = await sources_check.check_sources(config, plugins_for_tests())
    assert result["ok"] and result["fields"] == {}
