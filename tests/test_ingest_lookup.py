"""The engine's per-reading look-up of stored records, and its re-marking of open positions.

A real SQLite file written by the real writer transaction (``write_batch``); the
Book under test reads it through ``SqliteRecords`` as in the daemon.
"""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from northstard.actors.engine import next_change, recover
from northstard.actors.writer import WriterSettings, WriterState, write_batch
from northstard.core.buckets import BucketSet
from northstard.core.pnl import Book
from northstard.core.records import Cost, Invoice, Position, Price, Record
from northstard.store.sqlite import SqliteRecords, load_persisted, open_writer

from unit_helpers import T0

D = Decimal
# ids a JSON array carries only escaped (quote, backslash, control, non-ASCII, a line separator)
HOSTILE_IDS = ['q"uote', "back\\slash", "tab\tnew\nline", "ünï\u2028cødé", "emoji \U0001f600", "]", ""]


def cost(record_id: str, amount: str = "1.25") -> Cost:
    return Cost(id=record_id, amount=D(amount), category="ai", ts=T0)


def store_records(db: Path, source: str, records: list[Record]) -> None:
    """Write ``records`` through the engine's steps and the writer's transaction."""
    state = recover(load_persisted(db), [], now=T0)
    state.book.add_source(source, source, 3600.0)
    changed = state.book.ingest(source, records)
    change = next_change(state, [(source, r) for r in changed], T0 + timedelta(seconds=1))
    with closing(open_writer(db, "normal")) as conn:
        write_batch(conn, [change], WriterState(buckets=BucketSet()),
                    WriterSettings(path=db, synchronous="normal"))


def test_one_query_answers_every_kind_of_a_reading(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    open_writer(db, "normal").close()
    ids = [f"c{n}{text}" for n, text in enumerate(HOSTILE_IDS)]
    invoice = Invoice(id='inv "1"', total=D("10"), paid=D("0"), status="open", ts=T0)
    store_records(db, "stripe", [*(cost(i) for i in ids), invoice])
    store_records(db, "other", [cost(ids[0], "99")])
    with closing(SqliteRecords(db)) as store:
        found = store.get_many("stripe", {
            "cost": [*ids, "missing"], "invoice": [invoice.id, "nope"], "fill": ["x"],
            "no such kind": ["y"], "price": [],
        })
        assert store.queries == 1
        assert found == {**{("cost", i): cost(i) for i in ids}, ("invoice", invoice.id): invoice}
        assert store.get_many("stripe", {"price": [], "no such kind": ["y"]}) == {}
        assert store.queries == 1  # nothing to ask: no query


def test_a_reading_of_stored_records_asks_the_store_once(tmp_path: Path) -> None:
    """Re-sent stored records of several kinds, no longer in memory: one query, and nothing changes."""
    db = tmp_path / "n.db"
    open_writer(db, "normal").close()
    invoice = Invoice(id="i1", total=D("10"), paid=D("4"), status="open", ts=T0)
    records: list[Record] = [cost("a"), cost("b", "2.50"), invoice]
    store_records(db, "stripe", records)
    with closing(SqliteRecords(db)) as store:
        state = recover(load_persisted(db), [], now=T0, store=store)
        state.book.add_source("stripe", "stripe", 3600.0)
        before = state.book.document(T0)
        assert state.book.ingest("stripe", [*records, cost("c")]) == [cost("c")]
        assert store.queries == 1
        after = state.book.document(T0)
        assert D(after["costs"]["total"]) == D(before["costs"]["total"]) + D("1.25")
        assert after["revenue"] == before["revenue"]


def test_positions_are_marked_at_the_last_price_of_the_reading() -> None:
    """A reading that moves a position and its price (twice, in any order) marks it once, at the
    end, exactly as records ingested one at a time; one that closes it leaves nothing unrealized."""
    def price(bid: str) -> Price:
        return Price(id="T", yes_bid=D(bid), yes_ask=D(bid) + D("0.01"))

    def position(count: str) -> Position:
        return Position(id="p", ticker="T", count=D(count), cost_basis=D("1.00"))

    reading: list[Record] = [price("0.30"), position("5"), price("0.40"), position("4"), price("0.45")]
    together, one_by_one = Book(), Book()
    together.ingest("k", reading)
    for record in reading:
        one_by_one.ingest("k", [record])
    assert together.document(T0) == one_by_one.document(T0)
    assert together.total("trading", "unrealized") == D("4") * D("0.45") - D("1.00")
    together.ingest("k", [position("3"), price("0.50"), position("0")])
    assert together.total("trading", "unrealized") == -D("1.00")  # closed: value 0 - cost basis
    one_by_one.ingest("k", [position("0")])
    assert together.document(T0) == one_by_one.document(T0)
