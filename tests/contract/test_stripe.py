"""stripe against a fake Stripe API on 127.0.0.1 serving the documented list shapes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio

from northstard.core.pnl import Book
from northstard.core.records import Invoice, Reading, Refund
from northstard.errors import HttpStatusError, NotConfigured, SchemaDriftError, Unreachable
from northstard_plugins.stripe import Settings, StripeSource
from northstard_plugins.stripe.parse import minor_factor, to_units

from fakes import (
    MALFORMED,
    TIMEOUT,
    TRUNCATED,
    FakeStripe,
    invoice,
    secret_file,
    transaction,
    wait_for_doc,
)

KEY = "sk_test_fake_0123456789"
T0 = 1786849200  # 2026-08-16T03:00:00Z
INVOICES = "/v1/invoices"
TRANSACTIONS = "/v1/balance_transactions"


async def fake_api(nursery: trio.Nursery, **options: Any) -> FakeStripe:
    fake = FakeStripe(**options)
    await fake.start(nursery)
    return fake


def make_source(fake: FakeStripe, **options: Any) -> StripeSource:
    return StripeSource("stripe", Settings(api_key=KEY, base_url=fake.url + "/v1", **options))


def records(reading: Reading) -> dict[str, Any]:
    return {r.id: r for r in reading.records}


def book_of(*readings: Reading) -> Book:
    book = Book()
    for reading in readings:
        book.ingest(reading.source, reading.records)
    return book


def requests_to(fake: FakeStripe, path: str) -> list[Any]:
    return [r for r in fake.requests if r.path == path]


def sample_invoices() -> list[dict[str, Any]]:
    return [
        invoice("in_1", "paid", 10000, created=T0, metadata={"agent": "atlas"}),
        invoice("in_2", "open", 5050, created=T0 + 10, metadata={"agent": "beacon"}),
        invoice("in_3", "draft", 999, created=T0 + 20),
        invoice("in_4", "void", 7000, created=T0 + 30, metadata={"agent": "atlas"}),
        invoice("in_5", "uncollectible", 3000, created=T0 + 40),
        invoice("in_6", "open", 4000, paid=1000, created=T0 + 50, metadata={"agent": "atlas"}),
    ]


async def test_invoices_across_pages_give_exact_invoiced_and_collected(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery, page_size=2)
    fake.add("invoices", *sample_invoices())
    source = make_source(fake)
    reading = await source.poll()

    first = records(reading)
    assert first["in_1"] == Invoice(id="in_1", total=Decimal("100"), paid=Decimal("100"), status="paid",
                                    ts=datetime(2026, 8, 16, 3, tzinfo=UTC), agent="atlas")
    assert first["in_6"].paid == Decimal("10") and first["in_6"].total == Decimal("40")
    assert first["in_3"].agent is None
    book = book_of(reading)
    assert book.total("revenue", "invoiced") == Decimal("190.50")  # open + paid totals
    assert book.total("revenue", "collected") == Decimal("110.00")  # amounts paid
    assert book.total("agents", "atlas", "invoiced") == Decimal("140")
    assert book.total("agents", "beacon", "invoiced") == Decimal("50.50")

    listed = requests_to(fake, INVOICES)
    assert [r.arg("starting_after") for r in listed] == [None, "in_5", "in_3"]
    assert {r.arg("limit") for r in listed} == {"100"}
    assert {r.arg("created[gte]") for r in listed} == {None}
    assert listed[0].headers["authorization"] == f"Bearer {KEY}"
    assert "stripe-version" not in listed[0].headers

    await source.poll()
    await source.aclose()
    # the open, draft and uncollectible invoices can still change: re-read from the oldest of them
    assert requests_to(fake, INVOICES)[-1].arg("created[gte]") == str(T0 + 10)


async def test_an_invoice_paid_later_is_read_again_and_updated(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery)
    fake.add("invoices", invoice("in_old", "paid", 100, created=T0 - 500),
             invoice("in_2", "open", 5050, created=T0), invoice("in_new", "paid", 1, created=T0 + 99))
    source = make_source(fake)
    first = await source.poll()
    fake.add("invoices", invoice("in_2", "paid", 5050, created=T0))
    second = await source.poll()
    assert set(records(second)) == {"in_2", "in_new"}  # in_old is settled and older: not re-read
    assert records(second)["in_2"].status == "paid"
    book = book_of(first, second)
    assert book.total("revenue", "collected") == Decimal("51.51")
    assert book.total("revenue", "invoiced") == Decimal("51.51")
    await source.poll()
    await source.aclose()
    # nothing left open: only the boundary of the newest invoice is re-read
    assert requests_to(fake, INVOICES)[-1].arg("created[gte]") == str(T0 + 99)
    assert source.unsettled == {}


async def test_a_deleted_draft_stops_holding_the_window_open(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery)
    fake.add("invoices", invoice("in_1", "paid", 100, created=T0),
             invoice("in_draft", "draft", 50, created=T0 - 1000))
    source = make_source(fake)
    await source.poll()
    assert source.unsettled == {"in_draft": T0 - 1000}
    del fake.objects["invoices"]["in_draft"]
    await source.poll()
    assert source.unsettled == {}
    await source.poll()
    await source.aclose()
    assert requests_to(fake, INVOICES)[-1].arg("created[gte]") == str(T0)


async def test_refunds_are_subtracted_and_other_transactions_ignored(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery, page_size=2)
    fake.add("invoices", invoice("in_1", "paid", 10000, created=T0, metadata={"agent": "atlas"}))
    fake.add("balance_transactions",
             transaction("txn_charge", "charge", 10000, created=T0, fee=320),
             transaction("txn_refund", "refund", -2500, created=T0 + 5),
             transaction("txn_payout", "payout", -5000, created=T0 + 6),
             transaction("txn_refund2", "refund", -1, created=T0 + 7))
    source = make_source(fake)
    reading = await source.poll()
    found = records(reading)
    assert found["txn_refund"] == Refund(id="txn_refund", amount=Decimal("25"),
                                         ts=datetime(2026, 8, 16, 3, 0, 5, tzinfo=UTC))
    assert found["txn_refund2"].amount == Decimal("0.01")
    assert {"txn_charge", "txn_payout"}.isdisjoint(found)
    book = book_of(reading)
    assert book.total("revenue", "invoiced") == Decimal("74.99")
    assert book.total("revenue", "collected") == Decimal("74.99")
    await source.poll()
    await source.aclose()
    assert requests_to(fake, TRANSACTIONS)[-1].arg("created[gte]") == str(T0 + 7)


@pytest.mark.parametrize(
    ("currency", "minor", "units"),
    [("usd", 1234, "12.34"), ("jpy", 1200, "1200"), ("krw", 50000, "50000"), ("kwd", 1500, "1.5"),
     ("eur", 1, "0.01")],
)
def test_minor_units_per_currency(currency: str, minor: int, units: str) -> None:
    assert to_units(minor, currency) == Decimal(units)


async def test_jpy_has_no_minor_unit_and_other_currencies_are_refused(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery)
    fake.add("invoices", invoice("in_jp", "paid", 1200, currency="jpy", created=T0),
             invoice("in_us", "paid", 1200, currency="usd", created=T0 + 1))
    fake.add("balance_transactions", transaction("txn_jp", "refund", -200, currency="jpy", created=T0))
    with structlog.testing.capture_logs() as logs:
        source = make_source(fake, currency="jpy")
        readings = [await source.poll(), await source.poll()]
    await source.aclose()
    assert set(records(readings[0])) == {"in_jp", "txn_jp"}
    assert book_of(*readings).total("revenue", "collected") == Decimal("1000")  # 1200 - 200 yen
    assert "in_us" not in records(readings[1])  # re-read at the boundary, refused again, logged once
    refused = [e for e in logs if e["event"] == "record refused"]
    assert len(refused) == 1 and refused[0]["id"] == "in_us" and refused[0]["log_level"] == "error"
    assert "currency 'usd' is not the reporting currency 'jpy'" in refused[0]["reason"]


async def test_the_default_reporting_currency_refuses_jpy(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery)
    fake.add("invoices", invoice("in_jp", "paid", 1200, currency="jpy"), invoice("in_us", "paid", 1200))
    source = make_source(fake)
    reading = await source.poll()
    await source.aclose()
    assert [r.total for r in reading.records if isinstance(r, Invoice)] == [Decimal("12")]


async def test_agent_metadata_key_is_configurable(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery)
    fake.add("invoices", invoice("in_1", "paid", 100, metadata={"owner": "cinder", "agent": "atlas"}),
             invoice("in_2", "paid", 100, created=T0 + 1, metadata={"agent": "atlas"}))
    source = make_source(fake, agent_metadata_key="owner")
    found = records(await source.poll())
    await source.aclose()
    assert (found["in_1"].agent, found["in_2"].agent) == ("cinder", None)


async def test_start_date_and_api_version_are_sent(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery)
    fake.add("invoices", invoice("in_1", "paid", 100, created=T0))
    source = make_source(fake, start_date=date(2026, 8, 1), api_version="2024-06-20")
    await source.poll()
    await source.aclose()
    start = str(int(datetime(2026, 8, 1, tzinfo=UTC).timestamp()))
    assert [r.arg("created[gte]") for r in fake.requests] == [start, start]
    assert {r.headers["stripe-version"] for r in fake.requests} == {"2024-06-20"}


async def test_without_an_api_key_the_source_is_off() -> None:
    with structlog.testing.capture_logs() as logs:
        source = StripeSource("stripe", Settings())
    with pytest.raises(NotConfigured, match="no api_key"):
        await source.poll()
    await source.aclose()
    assert [e["event"] for e in logs] == ["source off"]


# -- failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (FakeStripe.server_error(500), HttpStatusError, f"GET {TRANSACTIONS}: HTTP 500"),
        (MALFORMED, SchemaDriftError, "malformed JSON"),
        (TRUNCATED, SchemaDriftError, "truncated body"),
    ],
    ids=["500", "malformed", "truncated"],
)
async def test_a_bad_answer_fails_the_poll_and_nothing_advances(
    nursery: trio.Nursery, fault: Any, error: type[Exception], message: str
) -> None:
    fake = await fake_api(nursery)
    fake.add("invoices", invoice("in_1", "paid", 100, created=T0))
    fake.fail_next(fault, path=TRANSACTIONS)
    source = make_source(fake)
    with pytest.raises(error, match=message):
        await source.poll()
    assert (source.polls, source.newest_invoice) == (0, None)
    assert "in_1" in records(await source.poll())
    await source.aclose()


async def test_a_wrong_key_is_401_and_never_appears_in_the_error(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery)
    source = StripeSource("stripe", Settings(api_key="sk_live_WRONG_secret", base_url=fake.url + "/v1"))
    with pytest.raises(HttpStatusError) as raised:
        await source.poll()
    await source.aclose()
    assert raised.value.status == 401
    assert "WRONG_secret" not in str(raised.value)
    assert "Invalid API Key provided: <redacted>" in str(raised.value)


async def test_429_honours_retry_after(nursery: trio.Nursery, autojump_clock: Any) -> None:
    fake = await fake_api(nursery)
    fake.add("balance_transactions", transaction("txn_r", "refund", -100))
    fake.fail_next(FakeStripe.rate_limited("3"), path=TRANSACTIONS)
    source = make_source(fake)
    start = trio.current_time()
    reading = await source.poll()
    await source.aclose()
    assert 3.0 <= trio.current_time() - start < 3.5
    assert "txn_r" in records(reading)


async def test_a_hung_api_times_out(nursery: trio.Nursery, autojump_clock: Any) -> None:
    fake = await fake_api(nursery)
    fake.fail_next(TIMEOUT, path=INVOICES)
    source = make_source(fake, request_timeout_s=4.0)
    with pytest.raises(Unreachable, match=f"GET {INVOICES}: no answer within 4 s"):
        await source.poll()
    await source.aclose()


RECORD_DRIFTS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("total as a string", lambda o: {**o, "total": "10000"}),
    ("total as a float", lambda o: {**o, "total": 100.0}),
    ("unknown status", lambda o: {**o, "status": "pending"}),
    ("created missing", lambda o: {k: v for k, v in o.items() if k != "created"}),
    ("currency missing", lambda o: {k: v for k, v in o.items() if k != "currency"}),
    ("amount_paid renamed", lambda o: {k if k != "amount_paid" else "paid": v for k, v in o.items()}),
    ("id missing", lambda o: {k: v for k, v in o.items() if k != "id"}),
    ("not an object", lambda o: "in_bad"),
]


@pytest.mark.parametrize("drift", [d for _, d in RECORD_DRIFTS], ids=[n for n, _ in RECORD_DRIFTS])
async def test_a_drifted_invoice_is_refused_alone_and_logged_once(
    nursery: trio.Nursery, drift: Callable[[dict[str, Any]], Any]
) -> None:
    fake = await fake_api(nursery)
    fake.add("invoices", invoice("in_good", "paid", 100, created=T0))
    bad = invoice("in_bad", "paid", 10000, created=T0 + 1)

    def drifted(path: str, data: Any) -> Any:
        return {**data, "data": [drift(o) if o["id"] == "in_bad" else o for o in data["data"]]}

    fake.add("invoices", bad)
    fake.drift = drifted
    source = make_source(fake)
    with structlog.testing.capture_logs() as logs:
        readings = [await source.poll(), await source.poll()]
    await source.aclose()
    assert set(records(readings[0])) == {"in_good"}
    assert "in_bad" not in records(readings[1])
    events = [e for e in logs if e["event"] == "schema drift: record refused"]
    assert len(events) == 1 and events[0]["log_level"] == "error"


async def test_a_refund_with_a_positive_amount_is_refused(nursery: trio.Nursery) -> None:
    fake = await fake_api(nursery)
    fake.add("balance_transactions", transaction("txn_bad", "refund", 2500),
             transaction("txn_ok", "refund", -2500, created=T0 + 1))
    source = make_source(fake)
    reading = await source.poll()
    await source.aclose()
    assert set(records(reading)) == {"txn_ok"}


PAGE_DRIFTS: list[tuple[str, Callable[[str, Any], Any], str]] = [
    ("not a list object", lambda p, d: {**d, "object": "search_result"}, "expected a list object"),
    ("has_more missing", lambda p, d: {k: v for k, v in d.items() if k != "has_more"}, "'has_more'"),
    ("data renamed", lambda p, d: {**{k: v for k, v in d.items() if k != "data"}, "items": []}, "'data'"),
    ("has_more without data", lambda p, d: {**d, "has_more": True, "data": []}, "has_more with no data"),
]


@pytest.mark.parametrize(("drift", "message"), [(d, m) for _, d, m in PAGE_DRIFTS],
                         ids=[n for n, _, _ in PAGE_DRIFTS])
async def test_a_drifted_page_fails_the_poll(
    nursery: trio.Nursery, drift: Callable[[str, Any], Any], message: str
) -> None:
    fake = await fake_api(nursery)
    fake.drift = drift
    source = make_source(fake)
    with pytest.raises(SchemaDriftError, match=message):
        await source.poll()
    await source.aclose()


def test_minor_factor_tables() -> None:
    assert minor_factor("jpy") == 1 and minor_factor("bhd") == 1000 and minor_factor("usd") == 100


# -- end to end ----------------------------------------------------------------


async def test_e2e_invoices_and_refunds_reach_the_snapshot(
    nursery: trio.Nursery, start_daemon: Any, tmp_path: Path
) -> None:
    fake = await fake_api(nursery, page_size=2)
    fake.add("invoices", *sample_invoices())
    fake.add("balance_transactions", transaction("txn_refund", "refund", -2500, created=T0 + 5))
    daemon = await start_daemon({"stripe": {
        "base_url": fake.url + "/v1", "api_key_file": secret_file(tmp_path, "stripe", KEY),
        "interval_s": 0.05,
    }})
    doc = await wait_for_doc(daemon, lambda d: d.get("revenue", {}).get("invoiced") not in (None, "0.00"))
    assert doc["revenue"]["invoiced"] == "165.50"  # 190.50 - 25.00 refunded
    assert doc["revenue"]["collected"] == "85.00"  # 110.00 - 25.00
    assert doc["agents"]["atlas"]["revenue"] == "140.00"
    assert doc["agents"]["beacon"]["revenue"] == "50.50"
    assert doc["agents"]["unattributed"]["revenue"] == "-25.00"  # refunds carry no invoice metadata
    fake.add("invoices", invoice("in_2", "paid", 5050, created=T0 + 10, metadata={"agent": "beacon"}))
    doc = await wait_for_doc(daemon, lambda d: d["revenue"]["collected"] == "135.50")
    assert doc["revenue"]["invoiced"] == "165.50"


async def test_e2e_a_failing_api_marks_the_source_while_the_demo_streams(
    nursery: trio.Nursery, start_daemon: Any, tmp_path: Path
) -> None:
    fake = await fake_api(nursery)
    fake.fail_always(FakeStripe.server_error(500))
    daemon = await start_daemon({
        "stripe": {"base_url": fake.url + "/v1", "api_key_file": secret_file(tmp_path, "stripe", KEY),
                   "interval_s": 0.05, "failure_threshold": 100},
        "demo": {"interval_s": 0.02, "seed": 7},
    })
    doc = await wait_for_doc(
        daemon, lambda d: d.get("sources", {}).get("stripe", {}).get("status") == "failing"
    )
    assert "HTTP 500" in doc["sources"]["stripe"]["last_error"]
    seq = daemon.hub.seq
    doc = await wait_for_doc(daemon, lambda d: daemon.hub.seq >= seq + 3)
    assert doc["sources"]["demo"]["status"] == "ok"
    assert doc["sources"]["stripe"]["status"] == "failing"
