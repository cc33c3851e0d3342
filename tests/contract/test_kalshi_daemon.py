"""The kalshi source inside the real daemon, against the fake Kalshi on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from northstard.core.mergepatch import Doc
from northstard.daemon import Daemon

from conftest import DEMO_FAST
from kalshi_fake import KalshiFake, signing_key, ws_ticker


@pytest.fixture
async def fake(nursery: trio.Nursery) -> AsyncIterator[KalshiFake]:
    fake = await KalshiFake(signing_key()[1]).start(nursery)
    yield fake
    assert fake.violations == []  # it served only what Kalshi's published specs document


def kalshi_section(fake: KalshiFake, tmp_path: Path, **options: Any) -> dict[str, Any]:
    """A ``[sources.kalshi]`` section; the secrets come from files, as in production."""
    key_file = tmp_path / "kalshi.pem"
    key_file.write_text(signing_key()[0])
    id_file = tmp_path / "kalshi.key_id"
    id_file.write_text(fake.key_id)
    return {"base_url": fake.http_url, "ws_url": fake.ws_url, "key_id_file": str(id_file),
            "private_key_file": str(key_file), **options}


async def doc_where(daemon: Daemon, predicate: Callable[[Doc], bool]) -> Doc:
    """The first published document (current included) for which ``predicate`` holds."""
    with daemon.hub.subscribe("test", daemon.hub.position) as sub:
        while not predicate(daemon.hub.doc):
            await sub.next_message()
    return daemon.hub.doc


def unrealized(doc: Doc) -> str | None:
    value = doc.get("trading", {}).get("unrealized")
    return None if value is None else str(value)


def status(doc: Doc, source: str) -> str:
    return str(doc.get("sources", {}).get(source, {}).get("status"))


async def test_a_failing_kalshi_is_marked_while_the_demo_keeps_streaming(
    start_daemon: Callable[..., Any], fake: KalshiFake, tmp_path: Path
) -> None:
    section = kalshi_section(fake, tmp_path, interval_s=0.05, failure_threshold=1, cooldown_s=0.05,
                             stream=False)
    daemon: Daemon = await start_daemon({**DEMO_FAST, "kalshi": section})
    with trio.fail_after(15):
        doc = await doc_where(daemon, lambda d: status(d, "kalshi") == "ok")
        assert doc["sources"]["kalshi"]["as_of"] == "2026-08-16T04:00:01.250Z"
        assert ("kalshi", "position", "T-A") in daemon.engine.book.records

        fake.fail("500")
        failing = await doc_where(daemon, lambda d: status(d, "kalshi") == "failing")
        error = failing["sources"]["kalshi"]["last_error"]  # whichever call the failure hit
        assert re.fullmatch(r"kalshi: GET /[a-z_/]+: server error "
                            r"\(HTTP 500: internal_error - internal server error\)", error), error
        seq = daemon.hub.seq
        later = await doc_where(daemon, lambda d: daemon.hub.seq >= seq + 5)
        assert status(later, "demo") == "ok" and status(later, "kalshi") == "failing"
        # the last good kalshi values are kept while it fails
        assert ("kalshi", "position", "T-A") in daemon.engine.book.records

        fake.clear()
        await doc_where(daemon, lambda d: status(d, "kalshi") == "ok")


async def test_a_pushed_ticker_moves_unrealized_pnl_without_a_poll(
    start_daemon: Callable[..., Any], fake: KalshiFake, tmp_path: Path
) -> None:
    section = kalshi_section(fake, tmp_path, interval_s=3600.0)  # one poll, at start
    daemon: Daemon = await start_daemon({"kalshi": section})
    with trio.fail_after(15):
        polled = await doc_where(daemon, lambda d: unrealized(d) == "1.5239")
        assert polled["trading"]["realized"] == "1.3979"
        assert polled["trading"]["balance"] == "20.6583"
        await fake.wait_until(lambda: {"T-A", "T-B"} <= fake.subscribed.get("ticker", set()))
    requests = len(fake.seen)

    with trio.fail_after(1):  # "within a second of the exchange"
        await fake.push(ws_ticker(market_ticker="T-A", yes_bid_dollars="0.6000",
                                  yes_ask_dollars="0.6200", price_dollars="0.5700"))
        moved = await doc_where(daemon, lambda d: unrealized(d) != "1.5239")
    assert moved["trading"]["unrealized"] == "1.8891"  # T-A 9.13 x 0.60 - 4.8389 + T-B 1.25
    assert moved["trading"]["total"] == "3.287"
    assert len(fake.seen) == requests  # no REST call: the stream did it


async def test_an_absurd_position_is_marked_exactly_and_the_engine_keeps_running(
    start_daemon: Callable[..., Any], fake: KalshiFake, tmp_path: Path
) -> None:
    """99999999999999.99 contracts at a bid of 99999999999999.99 (issue 12, item 1)."""
    from decimal import Decimal
    from fractions import Fraction

    huge = Fraction(Decimal("99999999999999.99"))
    fake.positions[0]["position_fp"] = "99999999999999.99"
    fake.markets["T-A"]["yes_bid_dollars"] = "99999999999999.99"
    section = kalshi_section(fake, tmp_path, interval_s=0.05, stream=False)
    daemon: Daemon = await start_daemon({"kalshi": section})
    t_b = 5 * Fraction(Decimal("0.67")) - Fraction(Decimal("2.10"))  # 5 NO at the NO bid
    exposure = Fraction(Decimal("4.8389"))
    with trio.fail_after(15):
        doc = await doc_where(daemon, lambda d: status(d, "kalshi") == "ok")
        assert Fraction(Decimal(unrealized(doc) or "")) == huge * huge - exposure + t_b
        fake.markets["T-A"]["yes_bid_dollars"] = "0.6000"  # the next poll re-marks it
        moved = await doc_where(daemon, lambda d: unrealized(d) != unrealized(doc))
    assert Fraction(Decimal(unrealized(moved) or "")) == huge * Fraction(6, 10) - exposure + t_b
    assert status(moved, "kalshi") == "ok"
    assert daemon.supervisor.actors["engine"].restarts == 0
