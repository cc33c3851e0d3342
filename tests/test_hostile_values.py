"""Hostile values against the real daemon and the real engine (issue 12, items 1, 4 and 5).

An absurd but in-bounds record is computed exactly and the engine goes on;
a refused record leaves its source degraded (status, last_error, a counter
in /metrics) while the rest counts and the other sources stream; a resume
position in non-ASCII digits is a 400.
"""

from __future__ import annotations

import re
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import trio
import trio.testing
from contract.fakes import FakeAnthropic, cost_row, secret_file, wait_for_doc

from northstard.actors.engine import EngineState, _apply_all
from northstard.core.mergepatch import apply_patch
from northstard.core.pnl import Book
from northstard.core.records import Cost, Position, Price, Reading, RevenueTotal, record_from_json
from northstard.store.sqlite import open_reader

from scripted import FEEDS

D = Decimal
T0 = datetime(2026, 8, 16, 12, tzinfo=UTC)
KEY = "sk-ant-admin01-test-key-0000"
HUGE = D("99999999999999.99")


def unrealized_moved(doc: dict[str, Any]) -> bool:
    return doc.get("trading", {}).get("unrealized", "0.00") != "0.00"


def status(doc: dict[str, Any], name: str) -> str | None:
    entry = doc.get("sources", {}).get(name, {})
    return entry.get("status") if isinstance(entry, dict) else None


def anthropic_costs(db: Path) -> Decimal:
    """The stored costs of the source (saved records leave the Book's memory: the store has them all)."""
    with closing(open_reader(db)) as conn:
        rows = conn.execute("SELECT body FROM rec_cost WHERE source = 'anthropic'").fetchall()
    return sum((record_from_json(body).amount for (body,) in rows), D(0))


async def test_absurd_in_bounds_values_are_published_exactly_and_the_engine_goes_on(
    start_daemon: Any,
) -> None:
    daemon = await start_daemon({"feed": {"plugin": "scripted"}})
    feed = FEEDS["feed"]
    async with httpx.AsyncClient(base_url=daemon.url, timeout=20) as http:
        first = (await http.get("/api/pnl/current")).json()
        since = f"{first['epoch']}:{first['seq']}"
        wire = first["data"]  # what a polling client holds
        kinds: list[str] = []

        async def long_poll() -> None:
            nonlocal wire
            position = since  # the source's own status change may come first: poll on from it
            while "gross_margin_pct" not in wire and len(kinds) < 5:
                reply = (await http.get("/api/pnl/changes",
                                        params={"since": position, "wait": "15"})).json()
                kinds.append(reply["type"])
                wire = apply_patch(wire, reply["patch"]) if reply["type"] == "delta" else reply["data"]
                position = f"{reply['epoch']}:{reply['seq']}"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_poll)
            await trio.testing.wait_all_tasks_blocked(0.05)
            await feed.push([Position(id="p", ticker="T", count=HUGE, cost_basis=D(0)),
                             Price(id="T", yes_bid=HUGE),
                             RevenueTotal(id="r", invoiced=D("1e-12"), collected=D(0), ts=T0),
                             Cost(id="c", amount=D("1.5e12"), category="ai", ts=T0)])
    assert kinds and set(kinds) == {"delta"}, kinds
    doc = await wait_for_doc(daemon, lambda d: "gross_margin_pct" in d)
    unrealized = Fraction(HUGE) * Fraction(HUGE)
    net = unrealized + Fraction(D("1e-12")) - Fraction(D("1.5e12"))
    margin = (Fraction(D("1e-12")) - Fraction(D("1.5e12"))) / Fraction(D("1e-12")) * 100
    for body in (doc, wire):
        assert Fraction(D(body["trading"]["unrealized"])) == unrealized
        assert Fraction(D(body["net_pnl"])) == net
        assert Fraction(D(body["gross_margin_pct"])) == margin  # a whole number of hundredths
    assert daemon.supervisor.actors["engine"].restarts == 0
    seq = daemon.hub.seq
    await feed.push([Cost(id="c2", amount=D("1.25"), category="ai", ts=T0)])
    later = await wait_for_doc(daemon, lambda d: daemon.hub.seq > seq)
    assert Fraction(D(later["costs"]["total"])) == Fraction(D("1500000000001.25"))
    assert status(later, "feed") == "ok"


async def test_a_refused_cost_row_degrades_the_source_visibly_while_the_rest_streams(
    nursery: trio.Nursery, start_daemon: Any, tmp_path: Path
) -> None:
    fake = FakeAnthropic()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    fake.costs[yesterday] = [cost_row("100"), cost_row("1.00000000001", workspace_id="wrkspc_02")]
    await fake.start(nursery)
    key = secret_file(tmp_path, "anthropic", KEY)
    daemon = await start_daemon({
        "anthropic": {"plugin": "anthropic_costs", "base_url": fake.url, "admin_key_file": key,
                      "interval_s": 0.05},
        "demo": {"interval_s": 0.02, "seed": 7},
    })
    doc = await wait_for_doc(daemon, lambda d: status(d, "anthropic") == "degraded")
    reason = (f"1 record refused: cost_report {yesterday.isoformat()} row 1: amount (1.00000000001 "
              "cents, in dollars): more than 12 decimal places: '0.0100000000001'")
    entry = doc["sources"]["anthropic"]
    assert entry["last_error"] == reason and entry["stale"] is True
    assert anthropic_costs(tmp_path / "northstard.db") == D("1.00")  # the good row still counts
    seq = daemon.hub.seq
    doc = await wait_for_doc(daemon, lambda d: daemon.hub.seq >= seq + 3)
    assert status(doc, "demo") == "ok" and status(doc, "anthropic") == "degraded"
    async with httpx.AsyncClient(base_url=daemon.url) as http:
        sources = {s["name"]: s for s in (await http.get("/api/sources")).json()["sources"]}
        health = (await http.get("/api/health")).json()
        metrics = (await http.get("/metrics")).text
    assert sources["anthropic"]["status"] == "degraded"
    assert sources["anthropic"]["last_error"] == reason
    assert sources["demo"]["status"] == "ok"
    assert health["status"] == "degraded" and health["sources"]["anthropic"] == "degraded"
    found = re.search(r'^northstard_records_refused_total\{source="anthropic"\} (\S+)$', metrics, re.M)
    assert found is not None and float(found.group(1)) >= 1
    assert 'northstard_records_refused_total{source="demo"}' not in metrics

    fake.costs[yesterday] = [cost_row("100"), cost_row("1.00000000002", workspace_id="wrkspc_02")]
    doc = await wait_for_doc(daemon, lambda d: "1.00000000002" in d["sources"]["anthropic"]["last_error"])
    assert status(doc, "anthropic") == "degraded"
    fake.costs[yesterday] = [cost_row("100"), cost_row("250", workspace_id="wrkspc_02")]
    doc = await wait_for_doc(daemon, lambda d: status(d, "anthropic") == "ok")
    assert anthropic_costs(tmp_path / "northstard.db") == D("3.50")


async def test_a_resume_position_in_other_digits_is_a_400(start_daemon: Any) -> None:
    daemon = await start_daemon()
    epoch = daemon.hub.epoch
    async with httpx.AsyncClient(base_url=daemon.url) as http:
        for since in (f"{epoch}:\u0661\u0662", f"{epoch}:\uff11\uff12", f"{epoch}:1_2"):
            reply = await http.get("/api/pnl/changes", params={"since": since})
            assert reply.status_code == 400, since
            assert reply.json()["error"] == "bad_parameter"
        assert (await http.get("/api/pnl/changes", params={"since": f"{epoch}:1"})).status_code == 200


def test_book_refusals_degrade_the_source_and_keep_the_stored_records_of_that_kind() -> None:
    book = Book()
    book.limit = D(1000)
    book.add_source("shop", "scripted", 60.0)
    state = EngineState(book=book, epoch="e", seq=0, doc=None)
    seen: list[tuple[str, int]] = []

    def observe(source: str, count: int) -> None:
        seen.append((source, count))

    first = Reading("shop", (Cost(id="a", amount=D(600), category="ai", ts=T0),), T0,
                    complete_kinds=("cost",))
    _apply_all(state, [first], T0, observe)
    assert book.document(T0)["sources"]["shop"]["status"] == "ok" and seen == []
    second = Reading("shop", (Cost(id="b", amount=D(500), category="ai", ts=T0),), T0,
                     complete_kinds=("cost",), refused=("row 7: amount: not an ASCII decimal number: '2_5'",))
    changed, touched = _apply_all(state, [second], T0, observe)
    assert touched and changed == []
    entry = book.document(T0)["sources"]["shop"]
    assert entry["status"] == "degraded"
    assert entry["last_error"] == ("2 records refused (and 1 more): row 7: amount: not an ASCII "
                                   "decimal number: '2_5'")
    assert seen == [("shop", 2)]
    assert book.total("costs", "total") == D(600)  # "a" is kept: the complete set was not whole
    third = Reading("shop", (Cost(id="a", amount=D(600), category="ai", ts=T0),), T0,
                    complete_kinds=("cost",))
    _apply_all(state, [third], T0, observe)
    assert book.document(T0)["sources"]["shop"]["status"] == "ok" and seen == [("shop", 2)]


async def test_a_restart_publishes_no_change_of_money_for_a_35_digit_product(tmp_path: Path) -> None:
    """12345678901.123456789012 × 0.123456789012, stored, then recovered from SQLite (item 2)."""
    from northstard.daemon import run_daemon

    from conftest import build_config, plugins_for_tests

    config = build_config(tmp_path, {"feed": {"plugin": "scripted"}})
    position = Position(id="p", ticker="T", count=D("12345678901.123456789012"), cost_basis=D(0))
    price = Price(id="T", yes_bid=D("0.123456789012"))
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, plugins_for_tests(), handle_signals=False, task_status=task_status))
        await FEEDS["feed"].push([position, price])
        before = await wait_for_doc(daemon, unrealized_moved)
        stopped_at = daemon.hub.seq
        daemon.stop()
    FEEDS.clear()
    async with trio.open_nursery() as nursery:
        again = await nursery.start(lambda task_status: run_daemon(
            config, plugins_for_tests(), handle_signals=False, task_status=task_status))
        # the feed's state moves from ok to stale, so the recovered engine publishes a change
        after = await wait_for_doc(again, lambda d: again.hub.seq > stopped_at)
        again.stop()
    product = Fraction(position.count) * Fraction(D("0.123456789012"))
    assert Fraction(D(before["trading"]["unrealized"])) == product
    assert after["trading"]["unrealized"] == before["trading"]["unrealized"]
    assert after["net_pnl"] == before["net_pnl"]
    assert after["change"]["since_previous"] == "0.00"

