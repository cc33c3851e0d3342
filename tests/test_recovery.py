"""Recovery from the cold aggregates and the hot records gives what a full replay gives.

A real SQLite file, the real engine steps (``Book.ingest``, ``next_change``) and the
real writer transaction (``write_batch``); the reference is the replay of every stored
record into a fresh Book, as recovery worked before the aggregates (and a Book without
a store that saw the same history).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from northstard.actors.engine import EngineState, next_change, recover
from northstard.actors.writer import WriterSettings, WriterState, write_batch
from northstard.config import SourceSection
from northstard.core.buckets import BucketSet
from northstard.core.change import Change
from northstard.core.mergepatch import Doc
from northstard.core.pnl import Book
from northstard.core.records import Cost, Invoice, Position, Price, Record, record_to_json
from northstard.errors import StoreError
from northstard.store.sqlite import (
    MIGRATIONS,
    SqliteRecords,
    iter_records,
    load_persisted,
    open_reader,
    open_writer,
)

from unit_helpers import T0, record_strategy, without

D = Decimal
SOURCES = ("kalshi", "stripe")


def section(name: str) -> SourceSection:
    return SourceSection(name=name, plugin=name, enabled=True, interval_s=1.0, timeout_s=5.0,
                         stale_after_s=3600.0, failure_threshold=3, cooldown_s=30.0, options={})


SECTIONS = [section(name) for name in SOURCES]


def full_replay(db: Path, now: datetime) -> Doc:
    """Recovery as it was: every stored record into a fresh Book, then the last document."""
    persisted = load_persisted(db)
    book = Book()
    for s in SECTIONS:
        book.add_source(s.name, s.plugin, s.stale_after_s)
    by_source: dict[str, list[Record]] = {}
    with closing(open_reader(db)) as conn:
        for source, record in iter_records(conn):
            by_source.setdefault(source, []).append(record)
    for source, records in by_source.items():
        if source not in book.sources:
            book.add_source(source, "not configured", 0.0)
        book.ingest(source, records)
    if persisted.doc is not None:
        book.restore(persisted.doc, now)
    return book.document(now)


@dataclass
class Desk:
    """The engine's steps on a store-backed Book, and the writer's transactions on ``db``."""

    db: Path
    cache_size: int = 2
    write_every: int = 1
    now: datetime = T0
    pending: list[Change] = field(default_factory=list)
    stores: list[SqliteRecords] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conn = open_writer(self.db, "normal")
        self.writer = WriterState(buckets=BucketSet())
        self.settings = WriterSettings(path=self.db, synchronous="normal")
        self.state = self.recover()

    def recover(self) -> EngineState:
        store = SqliteRecords(self.db)
        self.stores.append(store)
        state = recover(load_persisted(self.db), SECTIONS, now=self.now, store=store)
        state.book.cache_size = self.cache_size
        return state

    def reading(self, source: str, records: Sequence[Record], complete: Sequence[str] = ()) -> Change:
        return self.change([(source, records, complete)])

    def change(self, readings: Sequence[tuple[str, Sequence[Record], Sequence[str]]]) -> Change:
        """Several readings in one change, as the engine merges the readings waiting for it."""
        self.now += timedelta(seconds=1)
        book = self.state.book
        changed: list[tuple[str, Record]] = []
        for source, records, complete in readings:
            changed.extend((source, r) for r in book.ingest(source, records, complete))
            book.source_ok(source, self.now, self.now)
        change = next_change(self.state, changed, self.now)
        self.pending.append(change)
        if len(self.pending) >= self.write_every:
            self.flush()
        return change

    def flush(self) -> None:
        if self.pending:
            write_batch(self.conn, self.pending, self.writer, self.settings)
            self.pending = []
        self.state.book.saved(self.state.seq)

    def restart(self) -> None:
        self.flush()
        self.state = self.recover()

    def play(self, steps: Sequence[Any]) -> dict[int, dict[str, Any]]:
        """Each step a reading, a list of readings (one change) or ``"restart"``, all written:
        the published documents by seq (0: empty)."""
        docs: dict[int, dict[str, Any]] = {0: {}}
        for step in steps:
            if step == "restart":
                self.restart()
                continue
            change = self.change(step) if isinstance(step, list) else self.reading(*step)
            docs[change.seq] = change.doc
        self.flush()
        return docs

    def close(self) -> None:
        self.conn.close()
        for store in self.stores:
            store.close()


IDS = st.sampled_from(["a", "b", "c", "d"])
TICKERS = st.sampled_from(["T1", "T2"])
MONEY = st.sampled_from([D("0"), D("1.25"), D("-3.5"), D("10.001"), D("7")])
RECORDS = record_strategy(ids=IDS, tickers=TICKERS, agents=st.sampled_from([None, "x", "y"]),
                          names=st.sampled_from(["ai", "infra"]), money=MONEY,
                          quotes=st.sampled_from([D("0.25"), D("0.5"), D("0.9")]))
COUNTS = st.sampled_from([D(0), D(0), D(2), D(-3)])
POSITIONS = st.builds(Position, id=IDS, ticker=TICKERS, count=COUNTS, cost_basis=MONEY,
                      realized_pnl=MONEY, fees=MONEY, mark=st.sampled_from(["bid", "mid", "last"]))
READING = st.tuples(
    st.sampled_from(SOURCES),
    st.lists(RECORDS | POSITIONS, max_size=6),
    st.sampled_from([(), (), (), ("position",), ("cost", "invoice"), ("price",)]),
)
STEP = READING | st.just("restart")
MONEY_KEYS = ("net_pnl", "trading", "revenue", "costs", "agents", "gross_margin_pct")


def money(doc: Doc) -> dict[str, Any]:
    return {key: doc.get(key) for key in MONEY_KEYS}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=25), cache_size=st.sampled_from([0, 2, 100]),
       write_every=st.sampled_from([1, 3]))
def test_recovery_gives_the_document_of_a_full_replay(
    tmp_path_factory: Any, steps: list[Any], cache_size: int, write_every: int
) -> None:
    db = tmp_path_factory.mktemp("history") / "northstard.db"
    desk = Desk(db, cache_size=cache_size, write_every=write_every)
    reference = EngineState(book=Book(), epoch=desk.state.epoch, seq=0, doc=None)
    for s in SECTIONS:
        reference.book.add_source(s.name, s.plugin, s.stale_after_s)
    try:
        for step in steps:
            if step == "restart":
                desk.restart()
                now = desk.now
                assert desk.state.book.document(now) == full_replay(db, now)
                continue
            source, records, complete = step
            change = desk.reading(source, records, complete)
            reference.book.ingest(source, records, complete)
            reference.book.source_ok(source, desk.now, desk.now)
            expected = next_change(reference, [], desk.now)
            # the store-backed Book publishes what a Book holding every record publishes
            assert money(change.doc) == money(expected.doc)
        desk.restart()
        assert desk.state.book.document(desk.now) == full_replay(db, desk.now)
        assert money(desk.state.book.document(desk.now)) == money(reference.book.document(desk.now))
    finally:
        desk.close()


def cost(i: int, amount: str = "1.25", **extra: Any) -> Cost:
    return Cost(id=f"c-{i}", amount=D(amount), category="ai", model="claude-haiku-4", ts=T0,
                **extra)


def test_reingesting_an_old_cold_record_after_a_restart_changes_nothing(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("stripe", [cost(1), cost(2, "2.50"),
                                Invoice(id="in-1", total=D("100"), paid=D(0), status="open", ts=T0)])
        desk.restart()
        book = desk.state.book
        assert book.records == {}  # nothing cold is loaded
        assert book.total("costs", "total") == D("3.75")
        again = desk.reading("stripe", [cost(1), cost(2, "2.50")])
        assert again.records == () and again.totals == ()
        assert book.total("costs", "total") == D("3.75")
        # a revised old record replaces its stored contribution exactly
        revised = desk.reading("stripe", [cost(2, "2.40"),
                                          Invoice(id="in-1", total=D("100"), paid=D("100"),
                                                  status="paid", ts=T0)])
        assert [r.id for _, r in revised.records] == ["c-2", "in-1"]
        assert book.total("costs", "total") == D("3.65")
        assert book.total("revenue", "collected") == D("100")
        assert dict(revised.totals)[("costs", "total")] == D("3.65")
        desk.restart()
        assert desk.state.book.total("costs", "total") == D("3.65")
        assert desk.state.book.document(desk.now) == full_replay(desk.db, desk.now)
    finally:
        desk.close()


def test_a_source_resending_its_rows_is_answered_from_the_bounded_cache(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db", cache_size=10)
    try:
        rows = [cost(i) for i in range(10)]
        desk.reading("stripe", rows)
        desk.restart()
        store = desk.stores[-1]
        desk.reading("stripe", rows)
        asked = store.queries
        assert asked == 1  # one query for the whole reading
        for _ in range(3):
            desk.reading("stripe", rows)
        assert store.queries == asked  # the same rows again: from memory
        desk.reading("stripe", [cost(i) for i in range(10, 30)])
        assert len(desk.state.book._cache) <= 10
    finally:
        desk.close()


def test_unsaved_records_stay_in_memory_until_committed(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db", write_every=1000)  # the writer is behind (or disk is full)
    try:
        desk.reading("stripe", [cost(1), cost(2)])
        desk.reading("stripe", [cost(1, "9")])
        book = desk.state.book
        book.saved(0)  # nothing committed: SQLite does not have them yet
        assert {key[2] for key in book.records} == {"c-1", "c-2"}
        assert book.total("costs", "total") == D("10.25")
        desk.flush()
        assert book.records == {}
        desk.reading("stripe", [cost(1, "9")])  # looked up in SQLite now: the same
        assert book.total("costs", "total") == D("10.25")
    finally:
        desk.close()


def test_a_closed_position_leaves_memory_and_its_price_with_it(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        price = Price(id="T", yes_bid=D("0.4"), yes_ask=D("0.5"))
        opened = Position(id="p", ticker="T", count=D(10), cost_basis=D("3"))
        desk.reading("kalshi", [opened, price])
        assert set(desk.state.book.records) == {("kalshi", "position", "p"), ("kalshi", "price", "T")}
        desk.restart()
        assert desk.state.book.total("trading", "unrealized") == D("1.0")
        desk.reading("kalshi", [Position(id="p", ticker="T", count=D(0), cost_basis=D(0),
                                         realized_pnl=D("1.5"))])
        assert desk.state.book.records == {}
        desk.restart()
        assert desk.state.book.records == {}
        assert desk.state.book.total("trading", "realized") == D("1.5")
        # reopening brings the stored price back to mark it
        desk.reading("kalshi", [opened])
        assert desk.state.book.total("trading", "unrealized") == D("1.0")
        assert desk.state.book.document(desk.now) == full_replay(desk.db, desk.now) | {
            "sources": desk.state.book.document(desk.now)["sources"]}
    finally:
        desk.close()


def test_start_up_reads_nothing_that_grows_with_history(tmp_path: Path) -> None:
    loaded = []
    for n in (20, 400):
        desk = Desk(tmp_path / f"{n}.db")
        try:
            for i in range(0, n, 20):
                desk.reading("stripe", [cost(j, agent=f"agent-{j % 3}") for j in range(i, i + 20)])
            desk.reading("kalshi", [Position(id="p", ticker="T", count=D(1), cost_basis=D(1)),
                                    Price(id="T", yes_bid=D("0.5"))])
            desk.flush()
            persisted = load_persisted(desk.db)
            loaded.append((len(persisted.records), len(persisted.totals), persisted.sources))
            desk.restart()
            assert desk.stores[-1].queries == 0  # recovery asked the store nothing
            assert len(desk.state.book.records) == 2
            assert desk.state.book.total("costs", "total") == D("1.25") * n
        finally:
            desk.close()
    assert loaded[0] == loaded[1] == (2, loaded[0][1], frozenset(SOURCES))


def _schema_1_database(db: Path, records: Sequence[tuple[str, Record]], doc: Doc) -> None:
    """A database as the previous northstard left it: schema 1, every record, a document."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        MIGRATIONS[0](conn)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', 'old')")
        for source, record in records:
            conn.execute(f"INSERT INTO rec_{record.kind} (source, id, body, updated_ms)"
                         " VALUES (?, ?, ?, 0)", (source, record.id, record_to_json(record)))
        conn.execute("INSERT INTO current (id, epoch, seq, ts_ms, doc) VALUES (1, 'old', 7, 0, ?)",
                     (json.dumps(doc),))


def test_an_old_database_is_migrated_at_open_and_recovers_the_same_document(tmp_path: Path) -> None:
    records: list[tuple[str, Record]] = [
        ("stripe", cost(1, agent="a")), ("stripe", cost(2, "4.10", estimated=True)),
        ("stripe", Invoice(id="in", total=D("50"), paid=D("20"), status="open", ts=T0)),
        ("kalshi", Position(id="open", ticker="T", count=D(-4), cost_basis=D("1.2"), mark="mid")),
        ("kalshi", Position(id="shut", ticker="U", count=D(0), cost_basis=D(0), realized_pnl=D("3"))),
        ("kalshi", Price(id="T", no_bid=D("0.5"), no_ask=D("0.7"))),
        ("kalshi", Price(id="U", yes_bid=D("0.1"))),
        ("gone", cost(9, "1")),  # a source no longer configured
    ]
    reference = Book()
    for source, record in records:
        reference.add_source(source, source, 60.0)
        reference.ingest(source, [record])
    doc = reference.document(T0)
    db = tmp_path / "old.db"
    _schema_1_database(db, records, doc)
    open_writer(db, "normal").close()  # the migration runs by itself
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT id FROM rec_position WHERE hot = 1").fetchall() == [("open",)]
    persisted = load_persisted(db)
    assert sorted(r.id for _, r in persisted.records) == ["T", "open"]
    assert persisted.sources == {"stripe", "kalshi", "gone"}
    with closing(SqliteRecords(db)) as store:
        state = recover(persisted, SECTIONS, now=T0, store=store)
        assert state.book.document(T0) == full_replay(db, T0)
        assert without(state.book.document(T0), ("sources",)) == without(doc, ("sources",))
    open_writer(db, "normal").close()  # a second open migrates nothing


def test_a_failing_store_read_leaves_the_book_as_it_was(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("stripe", [cost(1), cost(2)])
        desk.restart()
        desk.reading("stripe", [cost(1), cost(2)])  # now in the cache: no lookup needed
        book = desk.state.book
        before = book.document(desk.now)
        desk.stores[-1].conn.close()  # every read of the store now fails
        with pytest.raises(StoreError):  # the stored ids of "cost" cannot be read
            book.ingest("stripe", [cost(1, "5")], complete_kinds=("cost",))
        assert book.document(desk.now) == before
        assert book.records == {} and book.take_cold_totals() == {}
    finally:
        desk.close()


async def test_the_daemon_lets_saved_cold_records_go_and_still_ingests_them_exactly(
    start_daemon: Any,
) -> None:
    from trio_websocket import open_websocket_url

    from clients import Follower, ws_url
    from scripted import FEEDS

    daemon = await start_daemon({"stripe": {"plugin": "scripted"}})
    follower = Follower()
    batches = [[cost(i * 20 + j, agent="a") for j in range(20)] for i in range(5)]

    async with open_websocket_url(ws_url(daemon.url)) as ws:

        async def until_costs(total: str) -> None:
            while follower.doc.get("costs", {}).get("total") != total:
                follower.apply(json.loads(await ws.get_message()))

        follower.apply(json.loads(await ws.get_message()))
        for batch in batches:
            await FEEDS["stripe"].push(batch)
        await until_costs("125.00")  # seen by a client: committed
        await FEEDS["stripe"].push([cost(1000, "0.01")])
        await until_costs("125.01")
        book = daemon.engine.book
        assert set(book.records) <= {("stripe", "cost", "c-1000")}  # the saved 100 are gone
        # re-sent old rows are looked up in SQLite: nothing changes; a revised one counts exactly
        await FEEDS["stripe"].push([*batches[0], cost(1001, "0.01")])
        await until_costs("125.02")
        await FEEDS["stripe"].push([cost(5, "2.25", agent="a")])
        await until_costs("126.02")
    assert follower.doc["agents"]["a"]["costs"] == "126.00"
