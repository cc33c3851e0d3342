"""The kalshi source against a fake Kalshi on 127.0.0.1 (real HTTP and WebSocket, signatures checked)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing

from northstard.core.pnl import Book
from northstard.core.records import Balance, Fill, Position, Price, Reading, Record, Settlement
from northstard.errors import SchemaDriftError, SourceError
from northstard.ops.sources_check import classify
from northstard.testing import check_source_contract
from northstard_plugins.kalshi import KalshiSource, KalshiStreamingSource, Settings
from northstard_plugins.kalshi.bucket import Backoff
from northstard_plugins.kalshi.stream import subscribe

from kalshi_fake import (
    FILLS,
    KalshiFake,
    as_number,
    options_for,
    other_key,
    rename,
    signing_key,
    ws_fill,
    ws_position,
    ws_ticker,
)

NOW = datetime(2026, 8, 16, 4, 0, 2, tzinfo=UTC)
Factory = Callable[..., KalshiSource]


@pytest.fixture
async def fake(nursery: trio.Nursery) -> AsyncIterator[KalshiFake]:
    fake = await KalshiFake(signing_key()[1]).start(nursery)
    yield fake
    assert fake.violations == []  # it served only what Kalshi's published specs document


@pytest.fixture
async def make(fake: KalshiFake) -> AsyncIterator[Factory]:
    """``make(**options)`` -> a source pointed at the fake; closed at teardown."""
    made: list[KalshiSource] = []

    def build(*, pem: str | None = None, **options: Any) -> KalshiSource:
        settings = Settings.from_options(options_for(fake, pem=pem, **options))
        cls = KalshiStreamingSource if settings.stream else KalshiSource
        source = cls("kalshi", settings, rng=random.Random(7))
        made.append(source)
        return source

    yield build
    for source in made:
        await source.aclose()


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that jumps when every task waits (50 ms of real idleness: loopback I/O is not idle)."""
    return trio.testing.MockClock(autojump_threshold=0.05)


def document(*readings: Reading) -> dict[str, Any]:
    book = Book()
    book.add_source("kalshi", "kalshi", 60.0)
    for reading in readings:
        book.ingest(reading.source, reading.records)
    trading: dict[str, Any] = book.document(NOW)["trading"]
    return trading


def kinds(records: tuple[Record, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for record in records:
        out[record.kind] = out.get(record.kind, 0) + 1
    return out


def secrets_absent(text: str, fake: KalshiFake) -> bool:
    pem = signing_key()[0]
    body = "".join(pem.strip().splitlines()[1:-1])
    return fake.key_id not in text and body[:40] not in text and "BEGIN" not in text


# -- polling -----------------------------------------------------------------------


async def test_a_poll_reads_every_page_and_gives_exact_pnl(fake: KalshiFake, make: Factory) -> None:
    reading = await make().poll()
    assert reading.source == "kalshi"
    assert reading.as_of == datetime(2026, 8, 16, 4, 0, 1, 250000, tzinfo=UTC)
    assert kinds(reading.records) == {"balance": 1, "settlement": 2, "position": 3, "fill": 3, "price": 2}
    assert document(reading) == {
        "realized": "1.3979",     # positions 0 + 0.50 + 1.25; settlements +3.6979 - 4.05
        "unrealized": "1.5239",   # T-A 9.13 x 0.56 - 4.8389 = 0.2739; T-B (NO) 5 x 0.67 - 2.10 = 1.25
        "fees": "0.5113",         # 0.1592 + 0.07 + 0.03 + 0.2021 + 0.05
        "total": "2.9218",
        "balance": "20.6583",
    }
    assert fake.refused == []  # every request carried a valid signature
    assert [fake.count(e) for e in ("/portfolio/positions", "/portfolio/fills",
                                    "/portfolio/settlements", "/markets")] == [2, 2, 1, 1]
    positions = [s.query for s in fake.seen if s.endpoint == "/portfolio/positions"]
    assert positions == [{"limit": "1000"}, {"limit": "1000", "cursor": "2"}]
    [markets] = [s.query for s in fake.seen if s.endpoint == "/markets"]
    assert markets["tickers"] == "T-A,T-B"  # held markets only, batched
    cash_moves = ("/portfolio/deposits", "/portfolio/withdrawals")  # never P&L: never fetched
    assert not any(s.endpoint.startswith(cash_moves) for s in fake.seen)


async def test_records_carry_the_documented_values(make: Factory) -> None:
    reading = await make(agent="atlas").poll()
    by_id = {(r.kind, r.id): r for r in reading.records}
    assert by_id["position", "T-A"] == Position(
        id="T-A", agent="atlas", ticker="T-A", count=Decimal("9.13"), cost_basis=Decimal("4.8389"),
        realized_pnl=Decimal("0.0"), fees=Decimal("0.1592"), mark="bid")
    assert by_id["price", "T-B"] == Price(
        id="T-B", agent="atlas", yes_bid=Decimal("0.3000"), yes_ask=Decimal("0.3300"),
        no_bid=Decimal("0.6700"), no_ask=Decimal("0.7000"), last=Decimal("0.3100"))
    settlement = by_id["settlement", "T"]
    assert isinstance(settlement, Settlement)
    assert settlement.revenue - settlement.cost - settlement.fee == Decimal("3.6979")
    balance = by_id["balance", "balance"]
    assert isinstance(balance, Balance) and balance.cash == Decimal("20.6583")
    fill = by_id["fill", "f1"]
    assert isinstance(fill, Fill) and (fill.count, fill.price, fill.fee) == (
        Decimal("15.00"), Decimal("0.7400"), Decimal("0.202100"))


async def test_later_polls_fetch_fills_and_settlements_since_the_last_seen(
    fake: KalshiFake, make: Factory
) -> None:
    source = make()
    await source.poll()
    fake.fills.append({**FILLS[0], "fill_id": "f4", "trade_id": "f4", "ts": 1786849260,
                       "created_time": "2026-08-16T03:01:00Z"})
    second = await source.poll()
    assert [r.id for r in second.records if isinstance(r, Fill)] == ["f4"]
    assert not any(isinstance(r, Settlement) for r in second.records)
    fills = [s.query for s in fake.seen if s.endpoint == "/portfolio/fills"]
    settlements = [s.query for s in fake.seen if s.endpoint == "/portfolio/settlements"]
    assert fills[-1]["min_ts"] == "1786849200" and settlements[-1]["min_ts"] == "1786852800"
    third = await source.poll()
    assert not any(isinstance(r, Fill) for r in third.records)  # f4 again: deduplicated by fill_id


async def test_a_position_that_disappears_is_retracted(fake: KalshiFake, make: Factory) -> None:
    source = make()
    first = await source.poll()
    fake.positions = fake.positions[1:]
    second = await source.poll()
    assert document(first, second)["unrealized"] == "1.25"
    assert source.portfolio.held() == ["T-B"]


@pytest.mark.parametrize(
    ("options", "unrealized", "realized"),
    [
        ({"mark": "mid"}, "1.6902", "1.3979"),   # T-A 9.13 x 0.57 - 4.8389; T-B 5 x 0.685 - 2.10
        ({"mark": "last"}, "1.7152", "1.3979"),  # T-A 9.13 x 0.57 - 4.8389; T-B 5 x (1 - 0.31) - 2.10
        ({"realized_includes_fees": False}, "1.5239", "1.1387"),  # position fees 0.2592 taken off
    ],
)
async def test_mark_rule_and_fee_treatment_are_choices(
    make: Factory, options: dict[str, Any], unrealized: str, realized: str
) -> None:
    trading = document(await make(**options).poll())
    assert (trading["unrealized"], trading["realized"]) == (unrealized, realized)


async def test_the_source_keeps_the_plugin_contract(fake: KalshiFake, make: Factory) -> None:
    fake.fills.append({**FILLS[0], "fill_id": "f4", "trade_id": "f4", "ts": 1786849260})
    readings = await check_source_contract(lambda: make(), polls=3)
    # later polls: the balance, every position and the held prices; no fill or settlement again
    assert [len(r.records) for r in readings] == [12, 6, 6]
    assert document(*readings)["unrealized"] == "1.5239"


async def test_a_poll_that_fails_half_way_changes_nothing(fake: KalshiFake, make: Factory) -> None:
    source = make()
    fake.fail("500", "/markets", times=1)  # after settlements, positions and fills were read
    with pytest.raises(SourceError):
        await source.poll()
    assert repr(source.portfolio) == "<Portfolio positions=0 held=0 prices=0 settled=0 fills_since=None>"
    reading = await source.poll()  # nothing was lost: the settlements and fills come now
    assert kinds(reading.records) == {"balance": 1, "settlement": 2, "position": 3, "fill": 3, "price": 2}


# -- authentication and failures -----------------------------------------------------


async def test_a_wrong_key_is_a_clear_authentication_error(fake: KalshiFake, make: Factory) -> None:
    with pytest.raises(SourceError) as caught:
        await make(pem=other_key()).poll()
    message = str(caught.value)
    assert message.startswith("kalshi: GET /exchange/user_data_timestamp: authentication refused (HTTP 401")
    assert "check key_id and private_key" in message
    assert fake.refused == ["invalid signature"]
    assert classify(caught.value) == (True, False)  # `sources check`: reachable, not authenticated
    assert secrets_absent(message, fake) and other_key().splitlines()[1] not in message


async def test_an_unknown_key_id_is_refused(fake: KalshiFake, make: Factory) -> None:
    source = make()
    fake.key_id = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(SourceError, match=r"authentication refused .*unknown key id"):
        await source.poll()


@pytest.mark.parametrize(
    ("mode", "endpoint", "mutate", "error", "message"),
    [
        ("500", None, None, SourceError,
         "GET /exchange/user_data_timestamp: server error "
         "(HTTP 500: internal_error - internal server error)"),
        ("malformed", "/portfolio/positions", None, SchemaDriftError,
         "GET /portfolio/positions: malformed JSON"),
        ("truncated", "/portfolio/balance", None, SchemaDriftError,
         "GET /portfolio/balance: truncated response body (HTTP 200)"),
        ("drift", "/portfolio/positions", rename("market_exposure_dollars"), SchemaDriftError,
         "market_positions[0]: missing field 'market_exposure_dollars'"),
        ("drift", "/portfolio/positions", rename("market_positions"), SchemaDriftError,
         "GET /portfolio/positions (page 1): missing field 'market_positions'"),
        ("drift", "/markets", as_number("yes_bid_dollars"), SchemaDriftError,
         "GET /markets: markets[0]: yes_bid_dollars: expected a decimal string, got a number"),
        ("drift", "/portfolio/balance", as_number("balance_dollars"), SchemaDriftError,
         "GET /portfolio/balance: balance_dollars: expected a decimal string, got a number"),
        ("drift", "/portfolio/settlements", as_number("revenue"), SchemaDriftError,
         "settlements[0]: revenue: expected integer cents, got a number"),
        ("drift", "/portfolio/fills", rename("fee_cost", "fee_cost_dollars"), SchemaDriftError,
         "fills[0]: missing field 'fee_cost'"),
    ],
)
async def test_each_failure_is_a_clear_error_and_the_next_poll_recovers(
    fake: KalshiFake, make: Factory, mode: str, endpoint: str | None,
    mutate: Callable[[dict[str, Any]], dict[str, Any]] | None, error: type[Exception], message: str,
) -> None:
    source = make()
    fake.fail(mode, endpoint, mutate=mutate)
    with pytest.raises(error) as caught:
        await source.poll()
    assert isinstance(caught.value, error) and (error is SourceError) != isinstance(
        caught.value, SchemaDriftError)
    assert str(caught.value).startswith("kalshi: ") and message in str(caught.value)
    assert secrets_absent(str(caught.value), fake)
    fake.clear()
    assert document(await source.poll())["unrealized"] == "1.5239"


async def test_a_call_that_never_answers_times_out(
    clock: trio.testing.MockClock, fake: KalshiFake, make: Factory
) -> None:
    fake.fail("timeout", "/portfolio/fills")
    start = trio.current_time()
    with pytest.raises(SourceError, match=r"^kalshi: GET /portfolio/fills: timed out after 2.5 s$") as caught:
        await make(call_timeout_s=2.5).poll()
    assert classify(caught.value) == (False, False)
    assert trio.current_time() - start == pytest.approx(2.5)


async def test_429_backs_off_exponentially_with_seeded_jitter(
    clock: trio.testing.MockClock, fake: KalshiFake, make: Factory
) -> None:
    draws = random.Random(7)
    expected = sum(Backoff().delay(attempt, draws.random()) for attempt in range(3))
    fake.fail("429", "/portfolio/balance", times=3)
    source = make()
    start = trio.current_time()
    reading = await source.poll()
    assert trio.current_time() - start == pytest.approx(expected)
    assert any(isinstance(r, Balance) for r in reading.records)
    assert source.client is not None and source.client.rate_limited == 3
    assert fake.count("/portfolio/balance") == 4


async def test_429_that_never_ends_gives_up_with_a_clear_error(
    clock: trio.testing.MockClock, fake: KalshiFake, make: Factory
) -> None:
    fake.fail("429")
    with pytest.raises(SourceError, match="rate limited \\(HTTP 429\\) 6 times in a row"):
        await make().poll()
    assert fake.count("/exchange/user_data_timestamp") == 6


async def test_the_read_budget_spaces_calls(
    clock: trio.testing.MockClock, fake: KalshiFake, make: Factory
) -> None:
    source = make(read_rate=10.0, burst=10.0)  # one GET (10 tokens) a second, no burst
    start = trio.current_time()
    await source.poll()
    calls = len(fake.seen)
    assert calls == 8
    assert trio.current_time() - start == pytest.approx(calls - 1)


# -- the WebSocket stream ------------------------------------------------------------


async def pump(source: KalshiStreamingSource, send: trio.MemorySendChannel[Reading]) -> None:
    async with send:
        async for reading in source.stream():
            await send.send(reading)


async def streaming(
    nursery: trio.Nursery, fake: KalshiFake, source: KalshiSource
) -> trio.MemoryReceiveChannel[Reading]:
    assert isinstance(source, KalshiStreamingSource)
    send, receive = trio.open_memory_channel[Reading](16)
    nursery.start_soon(pump, source, send)
    return receive


def ticker_subscribed(fake: KalshiFake, *tickers: str) -> Callable[[], bool]:
    return lambda: set(tickers) <= fake.subscribed.get("ticker", set())


async def test_the_stream_is_signed_and_its_messages_move_pnl(
    nursery: trio.Nursery, fake: KalshiFake, make: Factory
) -> None:
    source = make()
    polled = await source.poll()
    readings = await streaming(nursery, fake, source)
    await fake.wait_until(ticker_subscribed(fake, "T-A", "T-B"))
    assert fake.refused == []
    assert fake.commands == [subscribe(1, ["fill", "market_positions"]),
                             subscribe(2, ["ticker"], ["T-A", "T-B"])]

    await fake.push(ws_ticker(market_ticker="T-A", yes_bid_dollars="0.6000", yes_ask_dollars="0.6200",
                              price_dollars="0.6100"))
    tick = await readings.receive()
    assert tick.records == (Price(id="T-A", yes_bid=Decimal("0.6000"), yes_ask=Decimal("0.6200"),
                                  no_bid=Decimal("0.3800"), no_ask=Decimal("0.4000"),
                                  last=Decimal("0.6100")),)
    assert document(polled, tick)["unrealized"] == "1.8891"  # T-A 9.13 x 0.60 - 4.8389 = 0.6391

    await fake.push_raw('{"type":"market_position","msg":{"market_ticker":"T-A","position_fp":12}}')
    await fake.push(ws_position(market_ticker="T-A", position_fp="12.00", position_cost_dollars="6.4289",
                                realized_pnl_dollars="0.0000", fees_paid_dollars="0.2000"))
    moved = await readings.receive()  # the drifted message was dropped, not the stream
    assert document(polled, tick, moved)["unrealized"] == "2.0211"  # 12 x 0.60 - 6.4289 + 1.25

    await fake.push(ws_fill(trade_id="f9", market_ticker="T-A", outcome_side="no", book_side="ask",
                            side="yes", action="sell", purchased_side="no"))
    [fill] = (await readings.receive()).records
    # the documented stream fill: no fill_id, no no_price_dollars; outcome_side is the direction
    assert fill == Fill(id="f9", ticker="T-A", side="no", action="buy", count=Decimal("278.00"),
                        price=Decimal("0.2500"), fee=Decimal("0.010000"),
                        ts=datetime(2022, 12, 24, 16, 29, 57, tzinfo=UTC))


async def test_a_market_bought_while_streaming_gets_its_ticker(
    nursery: trio.Nursery, fake: KalshiFake, make: Factory
) -> None:
    source = make()
    await source.poll()
    readings = await streaming(nursery, fake, source)
    await fake.wait_until(ticker_subscribed(fake, "T-A", "T-B"))
    await fake.push(ws_position(market_ticker="T-N", position_fp="-3.00", position_cost_dollars="1.5000",
                                realized_pnl_dollars="0.0000", fees_paid_dollars="0.0300"))
    await readings.receive()
    await fake.wait_until(ticker_subscribed(fake, "T-N"))
    assert fake.commands[-1] == subscribe(3, ["ticker"], ["T-N"])


async def test_the_stream_refuses_a_wrong_key_at_the_handshake(fake: KalshiFake, make: Factory) -> None:
    source = make(pem=other_key())
    assert isinstance(source, KalshiStreamingSource)
    with pytest.raises(SourceError) as caught:
        await source.stream().__anext__()
    assert str(caught.value) == (
        "kalshi: stream: handshake refused with HTTP 401 "
        "(authentication refused: check key_id and private_key)")
    assert fake.refused == ["ws: invalid signature"]


async def test_a_stream_error_message_breaks_the_stream_for_a_reconnect(
    nursery: trio.Nursery, fake: KalshiFake, make: Factory
) -> None:
    source = make()
    assert isinstance(source, KalshiStreamingSource)
    stream = source.stream()
    pending: list[BaseException] = []

    async def consume() -> None:
        try:
            await stream.__anext__()
        except SourceError as exc:
            pending.append(exc)

    async with trio.open_nursery() as inner:
        inner.start_soon(consume)
        await fake.wait_until(lambda: "market_positions" in fake.subscribed)
        await fake.push_raw('{"type":"error","id":1,"msg":{"code":9,"msg":"Authentication required"}}')
    assert [str(e) for e in pending] == ["kalshi: stream error: code 9: Authentication required"]
    await fake.wait_until(lambda: not fake.sockets)  # and the connection was closed


async def test_stream_false_polls_only(make: Factory) -> None:
    source = make(stream=False)
    assert type(source) is KalshiSource and not hasattr(source, "stream")


async def test_a_quiet_stream_is_pinged_and_stays_up(
    clock: trio.testing.MockClock, nursery: trio.Nursery, fake: KalshiFake, make: Factory
) -> None:
    source = make()
    assert isinstance(source, KalshiStreamingSource)
    source.recheck_s = 10.0  # fewer wake-ups: fewer clock jumps
    await streaming(nursery, fake, source)
    await fake.wait_until(lambda: "market_positions" in fake.subscribed)
    await trio.sleep(75)  # virtual time: pinged at 40 s, the pong keeps it up past 60 s
    assert source._pinged == pytest.approx(40.0, abs=0.5)
    assert len(fake.sockets) == 1 and fake.refused == []


class SilentWs:
    """Stands in for a connection that never answers."""

    def __init__(self) -> None:
        self.last_data = trio.current_time()
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        await trio.lowlevel.checkpoint()


async def test_a_silent_stream_is_pinged_then_given_up(
    clock: trio.testing.MockClock, make: Factory
) -> None:
    source = make()
    assert isinstance(source, KalshiStreamingSource)
    ws = SilentWs()
    check = source._check_alive
    for _ in range(4):
        await trio.sleep(15)
        await check(ws)  # type: ignore[arg-type]
    assert ws.pings == 1  # at 45 s
    await trio.sleep(1)
    with pytest.raises(SourceError, match=r"^kalshi: stream silent for 60 s$"):
        await check(ws)  # type: ignore[arg-type]


async def test_a_subaccount_restricts_settlements_too(fake: KalshiFake, make: Factory) -> None:
    """OpenAPI 3.31.0: positions default to subaccount 0, fills and settlements to all of them."""
    await make(subaccount=2, stream=False).poll()
    lists = {s.endpoint: s.query for s in fake.seen
             if s.endpoint in ("/portfolio/positions", "/portfolio/fills", "/portfolio/settlements")}
    assert {endpoint: query.get("subaccount") for endpoint, query in lists.items()} == {
        "/portfolio/positions": "2", "/portfolio/fills": "2", "/portfolio/settlements": "2"}
