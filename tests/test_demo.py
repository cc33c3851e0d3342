"""The built-in demo source: a seeded, pure simulation behind the plugin contract."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing

import northstard_plugins.demo as demo
from northstard.actors.source import Source, SourceStats, run_source
from northstard.config import SourceSection, load_config
from northstard.core.breaker import Breaker
from northstard.core.pnl import Book, contribution, mark_value
from northstard.core.records import (
    Balance,
    Cost,
    Fill,
    Invoice,
    Position,
    Price,
    Reading,
    Record,
    Refund,
    Settlement,
    record_from_json,
    record_to_json,
)
from northstard.errors import ConfigError
from northstard.plugins import Plugins, make_plugins
from northstard_plugins.demo import DemoSource, Settings, Simulator
from northstard_plugins.demo.changelog import ChangeLog
from northstard_plugins.demo.market import fee_bp
from northstard_plugins.demo.sim import COMPLETE_KINDS

START = datetime(2025, 12, 19, 15, 0, tzinfo=UTC)
STEPS = (0.5, 1.0, 7.25, 60.0, 0.75, 300.0, 1.0)
CENT_DIGITS = -4  # prices carry at most 4 decimals


def plugins() -> Plugins:
    return make_plugins(entry_points=False, extra=[demo], blocked=())


def section(**options: Any) -> SourceSection:
    environ = {f"NORTHSTARD_SOURCES__DEMO__{k.upper()}": repr(v) for k, v in options.items()}
    config = load_config(None, plugins().source_types(), environ=environ)
    return config.sources[0]


def sim(seed: int = 7, start: datetime = START, **options: Any) -> Simulator:
    return Simulator(Settings(seed=seed, **options), start)


def run(simulator: Simulator, steps: tuple[float, ...] = STEPS) -> list[tuple[Record, ...]]:
    readings = [simulator.collect()]
    for seconds in steps:
        simulator.step(seconds)
        readings.append(simulator.collect())
    return readings


def hours(simulator: Simulator, count: float, step: float = 30.0) -> Iterator[tuple[Record, ...]]:
    yield simulator.collect()
    for _ in range(int(count * 3600 / step)):
        simulator.step(step)
        yield simulator.collect()


# -- the plugin seam ---------------------------------------------------------


def test_the_demo_type_is_declared_with_defaults_for_every_key() -> None:
    source_type = plugins().source_types()["demo"]
    names = {f.name for f in source_type.fields}
    assert {"seed", "agents", "speed", "markets"} <= names
    assert source_type.default_interval_s == 1.0
    assert all(not f.required and not f.secret for f in source_type.fields)
    options = section().options
    assert options["seed"] == 0 and options["markets"] == 6 and options["speed"] == 1.0
    assert options["agents"] == ["atlas", "beacon", "cinder"]


def test_a_fresh_plugin_manager_creates_the_source() -> None:
    source = plugins().create_source(section(seed=7, markets=3, agents=["ann", "bob"]))
    assert isinstance(source, Source)
    assert isinstance(source, DemoSource)
    assert source.settings.seed == 7 and source.settings.agents == ("ann", "bob")
    assert len(source.sim.desk.markets) == 3
    assert "seed=7" in repr(source)


def test_other_plugins_are_left_to_other_plugins() -> None:
    assert demo.create_source(plugin="kalshi", name="kalshi", config={}) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("markets", 0), ("markets", 51), ("speed", 0.0), ("agents", []), ("agents", ["a", "a"]),
     ("seed", "x")],
)
def test_impossible_options_are_refused_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"sources.demo.{key}"):
        section(**{key: value})


def test_seed_zero_draws_a_seed_and_others_are_kept() -> None:
    assert Settings(seed=0).resolved(lambda n: bytes(n - 1) + b"\x05").seed == 5
    assert Settings(seed=9).resolved().seed == 9
    first, second = DemoSource("d", Settings()), DemoSource("d", Settings())
    assert first.settings.seed != 0 and first.settings.seed != second.settings.seed
    with pytest.raises(ValueError, match="seed 0"):
        Simulator(Settings(seed=0), START)


# -- determinism ---------------------------------------------------------------


def test_the_same_seed_replays_the_same_business() -> None:
    assert run(sim(7)) == run(sim(7))


def test_different_seeds_give_different_businesses() -> None:
    first, second = run(sim(7)), run(sim(8))
    assert first[0] != second[0] and first[-1] != second[-1]


def test_fractions_of_a_second_carry_over() -> None:
    pieces, whole = sim(), sim()
    for _ in range(8):
        pieces.step(0.25)
    whole.step(2.0)
    assert pieces.tick == whole.tick == 2
    assert pieces.collect() == whole.collect()


def test_a_huge_step_catches_up_a_bounded_amount() -> None:
    simulator = sim()
    assert simulator.step(10 * 86400) == 900
    with pytest.raises(ValueError):
        simulator.step(-1.0)


# -- the records ---------------------------------------------------------------


def check_money(record: Record) -> None:
    for item in dataclasses.fields(record):
        value = getattr(record, item.name)
        assert not isinstance(value, float), (record, item.name)
        if isinstance(value, datetime):
            assert value.tzinfo is UTC, (record, item.name)
        if "Decimal" in str(item.type) and value is not None:
            assert isinstance(value, Decimal) and value.is_finite(), (record, item.name)


def check_price(price: Price) -> None:
    quotes = (price.yes_bid, price.yes_ask, price.no_bid, price.no_ask)
    assert all(q is not None for q in quotes)
    yes_bid, yes_ask, no_bid, no_ask = (q for q in quotes if q is not None)
    assert Decimal("0.01") <= yes_bid < yes_ask <= Decimal("0.99")
    assert no_bid == 1 - yes_ask and no_ask == 1 - yes_bid
    for quote in (*quotes, price.last):
        if quote is not None:
            exponent = quote.as_tuple().exponent
            assert isinstance(exponent, int) and exponent >= CENT_DIGITS


def check_record(record: Record, agents: tuple[str, ...]) -> None:
    check_money(record)
    assert record_from_json(record_to_json(record)) == record
    if not isinstance(record, Price | Balance):
        assert record.agent in agents, record
    match record:
        case Price():
            check_price(record)
        case Position():
            assert record.count == record.count.to_integral_value()
            assert record.cost_basis >= 0 and record.fees >= 0
            assert record.count != 0 or record.cost_basis == 0
        case Fill():
            assert record.count > 0 and record.fee > 0
            assert Decimal("0.01") <= record.price <= Decimal("0.99")
        case Settlement():
            assert record.result in ("yes", "no") and record.revenue >= 0 and record.cost > 0
        case Cost():
            assert record.amount > 0 and record.category in ("ai", "infrastructure")
            assert (record.model is not None) == (record.category == "ai")
        case Invoice():
            assert record.total > 0
            assert record.paid == (record.total if record.status == "paid" else 0)
        case Refund():
            assert record.amount > 0


def test_every_record_is_valid() -> None:
    simulator = sim(3)
    agents = simulator.settings.agents
    checked: set[Record] = set()
    for records in hours(simulator, 2.0, step=60.0):
        keys = [(r.kind, r.id) for r in records]
        assert len(keys) == len(set(keys)), "one record twice in a reading"
        for record in set(records) - checked:
            check_record(record, agents)
            checked.add(record)
    kinds = {record.kind for record in checked}
    assert kinds >= {"price", "position", "balance", "fill", "settlement", "cost", "invoice"}


def test_the_change_log_keeps_only_the_latest_version() -> None:
    log = ChangeLog(keep_s=60)
    opened = Invoice(id="in_1", total=Decimal(5), paid=Decimal(0), status="open", ts=START)
    paid = dataclasses.replace(opened, paid=Decimal(5), status="paid")
    log.add(0, opened)
    assert log.take(0) == [opened]
    log.add(1, paid)
    assert log.take(1) == [paid] and log.take(2) == [paid]  # new, then re-sent as recent
    assert log.take(100) == [] and not log.entries


def test_records_only_move_forward() -> None:
    """Events never change; invoices only get paid; costs only grow, then close for good."""
    seen: dict[tuple[str, str], Record] = {}
    settled: set[str] = set()
    for records in hours(sim(5), 3.0, step=15.0):
        for record in records:
            old = seen.get((record.kind, record.id))
            seen[record.kind, record.id] = record
            match record:
                case Fill() | Settlement() | Refund():
                    assert old in (None, record)
                    if isinstance(record, Settlement):
                        settled.add(record.ticker)
                case Invoice() if isinstance(old, Invoice):
                    assert old.status == record.status or old.status == "open"
                case Cost() if isinstance(old, Cost):
                    assert old.estimated or old == record
                    assert record.amount >= old.amount or not record.estimated
                case Position() if record.ticker in settled:
                    assert record.count == 0 and record.cost_basis == 0
    assert settled


def test_readings_stay_bounded() -> None:
    simulator = sim(4, markets=50, agents=[f"agent{i}" for i in range(10)])
    for records in hours(simulator, 1.0, step=60.0):
        assert len(records) <= 2 * 50 + 1 + 4 * 10 + 300


def test_ai_spend_grows_under_one_id_and_closes_at_midnight() -> None:
    simulator = sim(2, start=datetime(2025, 12, 19, 23, 58, tzinfo=UTC))
    key = "ai:2025-12-19:claude-opus-4:atlas"

    def costs() -> dict[str, Cost]:
        return {r.id: r for r in simulator.collect() if isinstance(r, Cost)}

    before = costs()[key]
    simulator.step(60)
    during = costs()[key]
    assert before.estimated and during.estimated and during.amount > before.amount
    simulator.step(120)
    after = costs()
    assert not after[key].estimated and after[key].ts == datetime(2025, 12, 19, tzinfo=UTC)
    today = [c for c in after.values() if c.id.startswith("ai:2025-12-20:")]
    assert today and all(c.estimated and c.cost_type == "tokens" for c in today)
    assert {c.model for c in today} == {"claude-opus-4", "claude-sonnet-4", "claude-haiku-4"}


def test_invoices_are_paid_in_full_and_some_refunded() -> None:
    status: dict[str, list[str]] = {}
    for records in hours(sim(6), 6.0, step=300.0):
        for record in records:
            if isinstance(record, Invoice) and record.status not in status.get(record.id, []):
                status.setdefault(record.id, []).append(record.status)
    assert ["open", "paid"] in status.values()
    refunds = [
        r for seed in range(1, 6)
        for r in sim(seed, history_s=7 * 86400.0).collect() if isinstance(r, Refund)
    ]
    assert refunds


def test_fees_follow_kalshi() -> None:
    assert fee_bp(15, 7_400) == 2_021  # 15 YES at $0.74: $0.2021, as in the API docs
    assert fee_bp(15, 7_400, maker=True) == 506
    assert fee_bp(1, 100) == 7


# -- into the P&L book -------------------------------------------------------------


def feed(simulator: Simulator, count: float, step: float = 30.0) -> Book:
    book = Book()
    for records in hours(simulator, count, step):
        book.ingest("demo", records, COMPLETE_KINDS)
    return book


def test_the_book_gets_a_plausible_business() -> None:
    book = feed(sim(11), 3.0)
    doc = book.document(datetime.now(UTC))
    assert book.net().is_finite()
    assert book.revenue() > 0 and book.total("costs", "total") > 0
    assert book.total("costs", "estimated") > 0
    assert Decimal(doc["gross_margin_pct"]) > 0
    assert set(doc["costs"]["by_model"]) == {"claude-opus-4", "claude-sonnet-4", "claude-haiku-4"}
    assert len(doc["agents"]) >= 3


def test_settlements_realize_revenue_minus_cost_minus_fee() -> None:
    book = feed(sim(12), 2.0)
    settlements = [r for r in book.records.values() if isinstance(r, Settlement)]
    assert settlements
    for settlement in settlements:
        pnl = settlement.revenue - settlement.cost - settlement.fee
        assert contribution(settlement)["trading", "realized"] == pnl
        final = book.records["demo", "position", settlement.ticker]
        assert isinstance(final, Position) and final.count == 0 and final.cost_basis == 0


def trading_by_cash(simulator: Simulator, book: Book) -> Decimal:
    """What trading made by the cash: cash gained plus open positions marked at the bid."""
    records = book.records
    balance = records["demo", "balance", "trading-cash"]
    assert isinstance(balance, Balance)
    marked = Decimal(0)
    for market in simulator.desk.markets:
        position = records.get(("demo", "position", market.ticker))
        price = records.get(("demo", "price", market.ticker))
        if isinstance(position, Position) and isinstance(price, Price):
            marked += mark_value(position, price) or 0
    return balance.cash - simulator.settings.cash + marked


@pytest.mark.parametrize(("seed", "step", "count"), [(13, 7.0, 1.0), (14, 300.0, 5.0)])
def test_trading_pnl_is_cash_gained_plus_open_positions_marked(
    seed: int, step: float, count: float
) -> None:
    simulator = sim(seed, markets=12)
    book = Book()
    for records in hours(simulator, count, step):
        book.ingest("demo", records, COMPLETE_KINDS)
        assert book.trading() == trading_by_cash(simulator, book)
    assert any(isinstance(r, Settlement) for r in book.records.values())


def test_only_open_markets_keep_their_quotes() -> None:
    simulator = sim(15)
    book = feed(simulator, 2.0)
    quoted = {key[2] for key in book.records if key[1] == "price"}
    assert quoted == {market.ticker for market in simulator.desk.markets}
    positions = {key[2] for key in book.records if key[1] == "position"}
    assert len(positions) > len(quoted)  # settled markets keep their last position


# -- the source under trio ---------------------------------------------------------


async def test_a_poll_advances_by_the_mock_clock_times_speed(
    mock_clock: trio.testing.MockClock,
) -> None:
    source = plugins().create_source(section(seed=7, speed=10.0))
    assert isinstance(source, DemoSource)
    first = await source.poll()
    assert (await source.poll()).records == first.records  # no time passed: nothing moved
    mock_clock.jump(3.0)
    second = await source.poll()
    assert source.sim.tick == 30
    assert isinstance(first, Reading) and first.complete and first.source == "demo"
    # the first reading of a run replaces whatever a previous run left; later ones only quotes/cash
    assert set(first.complete_kinds) >= {"position", "fill", "invoice", "cost", "price"}
    assert second.complete_kinds == ("price", "balance")
    moved = datetime.fromisoformat(second.notes["business_time"])
    assert moved - datetime.fromisoformat(first.notes["business_time"]) == timedelta(seconds=30)
    assert first.records != second.records and second.as_of.tzinfo is UTC
    await source.aclose()


async def test_the_source_actor_drives_the_demo(autojump_clock: trio.testing.MockClock) -> None:
    config = section(seed=7, speed=2.0)
    source = plugins().create_source(config)
    send, receive = trio.open_memory_channel[Any](0)
    stats = SourceStats(Breaker(config.failure_threshold, config.cooldown_s))
    times: list[datetime] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(run_source, config, source, send, stats)
        async for reading in receive:
            times.append(datetime.fromisoformat(reading.notes["business_time"]))
            if len(times) == 4:
                nursery.cancel_scope.cancel()
                break
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(seconds=2)] * 3
    assert stats.errors == 0 and stats.polls >= 4



class _Jumping:
    """A demo source whose every poll first moves the mock clock on a minute."""

    def __init__(self, source: DemoSource, clock: trio.testing.MockClock) -> None:
        self.source = source
        self.clock = clock

    async def poll(self) -> Reading:
        self.clock.jump(60.0)
        return await self.source.poll()

    async def aclose(self) -> None:
        await self.source.aclose()


async def test_the_demo_keeps_the_public_source_contract(
    mock_clock: trio.testing.MockClock,
) -> None:
    testing = pytest.importorskip("northstard.testing")
    source = DemoSource("demo", Settings(seed=21, speed=3.0), start=START)
    readings = await testing.check_source_contract(lambda: _Jumping(source, mock_clock), polls=15)
    assert source.sim.tick == 14 * 180
    assert any(isinstance(r, Settlement) for reading in readings for r in reading.records)
