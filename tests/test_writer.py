"""The writer actor and the SQLite store, on a real file under tmp_path."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing

from northstard.actors.engine import EngineState, next_change
from northstard.actors.writer import WriterSettings, WriterState, run_writer
from northstard.core.buckets import RESOLUTIONS, BucketSet, bucket_start
from northstard.core.change import Change
from northstard.core.mergepatch import apply_patch
from northstard.core.pnl import Book
from northstard.core.records import Cost, Invoice, Position, Price, Record, Retract, Settlement
from northstard.errors import StoreError
from northstard.store.sqlite import (
    MIGRATIONS,
    RECORD_KINDS,
    load_persisted,
    open_reader,
    open_writer,
    path_text,
    read_buckets,
    read_deltas,
)

from unit_helpers import T0

D = Decimal


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that only jumps once every task has waited 10 ms for real (SQLite threads)."""
    return trio.testing.MockClock(autojump_threshold=0.01)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "northstard.db"


def epoch_of(path: Path) -> str:
    open_writer(path, "normal").close()
    return load_persisted(path).epoch


class Engine:
    """Builds realistic changes the way the engine does: a Book, ``next_change``."""

    def __init__(self, epoch: str, start: datetime = T0) -> None:
        book = Book()
        book.add_source("shop", "shop", 60.0)
        book.add_source("kalshi", "kalshi", 60.0)
        self.state = EngineState(book=book, epoch=epoch, seq=0, doc=None)
        self.now = start

    def change(self, source: str = "shop", *records: Record, step_s: float = 20.0) -> Change:
        self.now += timedelta(seconds=step_s)
        changed = self.state.book.ingest(source, records)
        self.state.book.source_ok(source, self.now, self.now)
        return next_change(self.state, [(source, r) for r in changed], self.now)


def cost(i: int, amount: str = "1.25") -> Cost:
    return Cost(id=f"c-{i}", amount=D(amount), category="ai", model="claude-haiku-4", ts=T0)


def settings_for(path: Path, **overrides: object) -> WriterSettings:
    options: dict[str, object] = {"synchronous": "normal", "batch_deadline_s": 0.005}
    options.update(overrides)
    return WriterSettings(path=path, **options)  # type: ignore[arg-type]


async def write_all(settings: WriterSettings, state: WriterState, changes: Sequence[Change],
                    outputs: int = 1) -> list[list[Change]]:
    """Queue every change, close the input, run the writer to its end; returns what it passed on."""
    send, receive = trio.open_memory_channel[Change](len(changes) + 1)
    pairs = [trio.open_memory_channel[Change](math.inf) for _ in range(outputs)]
    async with send:
        for change in changes:
            send.send_nowait(change)
    await run_writer(settings, state, receive, [s for s, _ in pairs])
    out = []
    for _, output in pairs:
        async with output:
            out.append([change async for change in output])
    return out


def rows(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with closing(open_reader(path)) as conn:
        return list(conn.execute(sql, args))


# -- the store ---------------------------------------------------------------


def test_open_writer_builds_the_schema(db: Path) -> None:
    with closing(open_writer(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    expected = {"meta", "deltas", "snapshots", "current", "buckets", "totals", "rec_log"} | {
        f"rec_{k}" for k in RECORD_KINDS
    } | {"alert_state", "alert_events", "alert_outbox", "sqlite_sequence"}  # migration 3: alerts
    expected |= {"rollup_group", "rollup"}  # the explain rollup (store.rollup)
    assert tables == expected
    assert "rec_retract" not in tables
    with closing(open_reader(db)) as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_keeps_the_epoch(db: Path) -> None:
    first = epoch_of(db)
    assert first == epoch_of(db)
    assert len(first) >= 8
    other = epoch_of(db.with_name("other.db"))
    assert other != first


def test_open_reader_cannot_write(db: Path) -> None:
    epoch_of(db)
    with closing(open_reader(db)) as reader, pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    assert rows(db, "SELECT count(*) FROM meta") == [(1,)]


def test_open_reader_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        load_persisted(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_a_newer_schema_is_refused(db: Path) -> None:
    with closing(open_writer(db)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer"):
        open_writer(db)


def test_a_fresh_store_has_nothing_to_continue_from(db: Path) -> None:
    epoch = epoch_of(db)
    persisted = load_persisted(db)
    assert (persisted.epoch, persisted.seq, persisted.doc) == (epoch, 0, None)
    assert persisted.records == [] and persisted.open_buckets == {}


# -- the writer ----------------------------------------------------------------


async def test_a_batch_is_committed(db: Path, clock: trio.testing.MockClock) -> None:
    engine = Engine(epoch_of(db))
    changes = [
        engine.change("shop"),  # the first snapshot
        engine.change("shop", Invoice(id="in-1", total=D("1800"), paid=D("1250"), status="open",
                                      ts=T0, agent="atlas"), cost(1)),
        engine.change("kalshi", Position(id="p", ticker="T", count=D(10), cost_basis=D("4")),
                      Price(id="T", yes_bid=D("0.45"))),
        engine.change("kalshi", Settlement(id="s", ticker="U", revenue=D("15.00"), cost=D("11.10"),
                                           fee=D("0.2021"), result="yes", ts=T0)),
    ]
    state = WriterState(buckets=BucketSet())
    [out] = await write_all(settings_for(db), state, changes)
    assert [c.seq for c in out] == [1, 2, 3, 4]
    assert state.committed_seq == 4

    epoch = engine.state.epoch
    with closing(open_reader(db)) as reader:
        deltas = read_deltas(reader, epoch, 0)
        found_buckets = {r: read_buckets(reader, r, 0, changes[-1].ts_ms + 1) for r in RESOLUTIONS}
    assert [(seq, prev) for seq, prev, _ in deltas] == [(1, 0), (2, 1), (3, 2), (4, 3)]
    assert [patch for _, _, patch in deltas] == [c.patch for c in changes]
    # the deltas rebuild the last document from nothing
    rebuilt: dict[str, object] = {}
    for _, _, patch in deltas:
        rebuilt = apply_patch(rebuilt, patch)
    assert rebuilt == changes[-1].doc

    [(cur_epoch, cur_seq, doc)] = rows(db, "SELECT epoch, seq, doc FROM current")
    assert (cur_epoch, cur_seq) == (epoch, 4)
    assert json.loads(str(doc)) == changes[-1].doc
    assert json.loads(str(doc))["net_pnl"] == "1802.9479"  # 1800 - 1.25 + 0.50 + 3.6979

    bodies = dict(rows(db, "SELECT id, body FROM rec_invoice WHERE source = 'shop'"))
    assert json.loads(str(bodies["in-1"]))["total"] == "1800.00"
    assert rows(db, "SELECT source, id FROM rec_cost") == [("shop", "c-1")]
    assert rows(db, "SELECT source, id FROM rec_position") == [("kalshi", "p")]
    assert rows(db, "SELECT source, id FROM rec_price") == [("kalshi", "T")]
    assert rows(db, "SELECT source, id FROM rec_settlement") == [("kalshi", "s")]

    buckets = rows(db, "SELECT resolution, start_ms, body FROM buckets")
    assert {r for r, _, _ in buckets} == set(RESOLUTIONS)
    last_ms = changes[-1].ts_ms
    for resolution in RESOLUTIONS:
        found = found_buckets[resolution]
        assert found, resolution
        assert found[-1]["start_ms"] == bucket_start(last_ms, resolution)
        assert found[-1]["net"]["close"] == "1802.9479"
    # at shutdown the last document is kept as a snapshot row
    assert rows(db, "SELECT seq FROM snapshots") == [(4,)]


async def test_changes_are_passed_on_only_after_commit_and_in_order(
    db: Path, clock: trio.testing.MockClock
) -> None:
    engine = Engine(epoch_of(db))
    send, receive = trio.open_memory_channel[Change](0)
    hub_send, hub_receive = trio.open_memory_channel[Change](0)
    cache_send, cache_receive = trio.open_memory_channel[Change](0)
    seen: dict[str, list[int]] = {"hub": [], "cache": []}
    reader = open_reader(db)

    async def consume(name: str, channel: trio.MemoryReceiveChannel[Change]) -> None:
        async with channel:
            async for change in channel:
                # already on disk, with its delta and the current document
                committed = reader.execute(
                    "SELECT count(*) FROM deltas WHERE epoch = ? AND seq = ?",
                    (change.epoch, change.seq)).fetchone()[0]
                current = reader.execute("SELECT seq FROM current").fetchone()[0]
                assert committed == 1 and current >= change.seq, (name, change.seq)
                seen[name].append(change.seq)

    settings = settings_for(db, batch_max=3, batch_deadline_s=0.05)
    with closing(reader):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume, "hub", hub_receive)
            nursery.start_soon(consume, "cache", cache_receive)
            await nursery.start(run_writer, settings, WriterState(buckets=BucketSet()), receive,
                                [hub_send, cache_send])
            async with send:
                for i in range(10):
                    await send.send(engine.change("shop", cost(i)))
    assert seen["hub"] == seen["cache"] == list(range(1, 11))


async def test_a_single_change_is_flushed_by_the_deadline(
    db: Path, clock: trio.testing.MockClock
) -> None:
    engine = Engine(epoch_of(db))
    send, receive = trio.open_memory_channel[Change](10)
    out_send, out_receive = trio.open_memory_channel[Change](10)
    state = WriterState(buckets=BucketSet())
    async with trio.open_nursery() as nursery:
        await nursery.start(run_writer, settings_for(db, batch_deadline_s=2.0), state, receive,
                            [out_send])
        start = trio.current_time()
        await send.send(engine.change("shop", cost(1)))
        first = await out_receive.receive()  # no more changes come: the deadline flushes it
        assert first.seq == 1
        assert trio.current_time() - start == pytest.approx(2.0)
        assert state.batches == 1
        await send.aclose()
    assert [c.seq async for c in out_receive] == []


async def test_batching(db: Path, clock: trio.testing.MockClock) -> None:
    engine = Engine(epoch_of(db))
    changes = [engine.change("shop", cost(i)) for i in range(12)]
    sizes: list[int] = []
    state = WriterState(buckets=BucketSet())
    send, receive = trio.open_memory_channel[Change](12)
    out_send, out_receive = trio.open_memory_channel[Change](math.inf)
    async with send:
        for change in changes:
            send.send_nowait(change)
    await run_writer(settings_for(db, batch_max=5), state, receive, [out_send],
                     lambda size, seconds: sizes.append(size))
    assert state.batches <= 3
    assert state.batches == len(sizes)
    assert max(sizes) <= 5 and sum(sizes) == 12
    assert state.last_batch_size == sizes[-1]
    assert [c.seq async for c in out_receive] == list(range(1, 13))
    assert rows(db, "SELECT count(*) FROM deltas") == [(12,)]
    assert rows(db, "SELECT count(*) FROM rec_cost") == [(12,)]


async def test_snapshot_every(db: Path, clock: trio.testing.MockClock) -> None:
    engine = Engine(epoch_of(db))
    changes = [engine.change("shop", cost(i)) for i in range(7)]
    await write_all(settings_for(db, snapshot_every=3), WriterState(buckets=BucketSet()), changes)
    assert rows(db, "SELECT seq FROM snapshots ORDER BY seq") == [(3,), (6,), (7,)]
    [(doc,)] = rows(db, "SELECT doc FROM snapshots WHERE seq = 6")
    assert json.loads(str(doc)) == changes[5].doc


async def test_retract_deletes_the_record_row(db: Path, clock: trio.testing.MockClock) -> None:
    engine = Engine(epoch_of(db))
    send, receive = trio.open_memory_channel[Change](10)
    out_send, out_receive = trio.open_memory_channel[Change](10)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_writer, settings_for(db), WriterState(buckets=BucketSet()), receive,
                            [out_send])
        async with send:
            await send.send(engine.change("shop", cost(1), cost(2)))
            await out_receive.receive()
            assert rows(db, "SELECT id FROM rec_cost ORDER BY id") == [("c-1",), ("c-2",)]
            retract = engine.change("shop", Retract(id="c-1", target_kind="cost"))
            assert [type(r) for _, r in retract.records] == [Retract]
            await send.send(retract)
            await out_receive.receive()
            assert rows(db, "SELECT id FROM rec_cost") == [("c-2",)]
            # the same id from another source is another record
            await send.send(engine.change("kalshi", cost(2)))
            await send.send(engine.change("kalshi", Retract(id="c-2", target_kind="cost")))
            await out_receive.receive()
            await out_receive.receive()
    assert rows(db, "SELECT source, id FROM rec_cost") == [("shop", "c-2")]


async def test_one_batch_leaves_every_key_as_its_last_change_did(
    db: Path, clock: trio.testing.MockClock
) -> None:
    """Upserts go out per kind per batch: a retract between them still lands in order, and
    each cold aggregate is stored with the value of the batch's last change."""
    engine = Engine(epoch_of(db))
    changes = [
        engine.change("shop", cost(1), cost(2)),
        engine.change("shop", Retract(id="c-1", target_kind="cost"), cost(3, "2.50")),
        engine.change("shop", cost(1, "4.00"), Retract(id="c-3", target_kind="cost")),
        engine.change("shop", cost(2, "0.75")),
    ]
    sizes: list[int] = []
    state = WriterState(buckets=BucketSet())
    send, receive = trio.open_memory_channel[Change](len(changes))
    async with send:
        for change in changes:
            send.send_nowait(change)
    await run_writer(settings_for(db, batch_max=10), state, receive, [], lambda size, _: sizes.append(size))
    assert sizes == [4]  # one transaction
    assert rows(db, "SELECT id, json_extract(body, '$.amount') FROM rec_cost ORDER BY id") == [
        ("c-1", "4.00"), ("c-2", "0.75")]
    assert rows(db, "SELECT amount FROM totals WHERE path = ?", path_text(("costs", "total"))) == [("4.75",)]
    assert rows(db, "SELECT seq FROM deltas ORDER BY seq") == [(1,), (2,), (3,), (4,)]
    assert engine.state.book.total("costs", "total") == D("4.75")


async def test_load_persisted_continues_where_the_writer_stopped(
    db: Path, clock: trio.testing.MockClock
) -> None:
    engine = Engine(epoch_of(db))
    changes = [
        engine.change("shop", Invoice(id="in-1", total=D("99"), paid=D(0), status="open", ts=T0)),
        engine.change("kalshi", Position(id="p", ticker="T", count=D(-3), cost_basis=D("1.2"),
                                         mark="mid"), Price(id="T", no_bid=D("0.5"), no_ask=D("0.6"))),
        engine.change("shop", cost(1, "7.77"), cost(2)),
        engine.change("shop", Retract(id="c-2", target_kind="cost"),
                      Invoice(id="in-1", total=D("99"), paid=D("99"), status="paid", ts=T0)),
    ]
    state = WriterState(buckets=BucketSet())
    await write_all(settings_for(db, batch_max=2), state, changes)
    persisted = load_persisted(db)
    assert persisted.epoch == engine.state.epoch
    assert persisted.seq == 4
    assert persisted.doc == changes[-1].doc == engine.state.doc
    # start-up reads the hot records only: the open position and its market's price
    hot = {(key[0], record) for key, record in engine.state.book.records.items()
           if key[1] in ("position", "price")}
    assert len(persisted.records) == len(hot) == 2
    assert set(persisted.records) == hot
    assert persisted.sources == {"shop", "kalshi"}
    assert set(persisted.open_buckets) == set(RESOLUTIONS)
    assert persisted.open_buckets == state.buckets.open
    # the cold aggregates plus the hot records render the same amounts
    fresh = Book()
    fresh.resume(persisted.totals, persisted.records)
    assert fresh.net() == engine.state.book.net()
    assert fresh.total("costs", "total") == D("7.77")


async def test_load_persisted_ignores_a_document_of_another_epoch(
    db: Path, clock: trio.testing.MockClock
) -> None:
    engine = Engine("some-other-epoch")
    await write_all(settings_for(db), WriterState(buckets=BucketSet()), [engine.change("shop", cost(1))])
    persisted = load_persisted(db)
    assert persisted.epoch != "some-other-epoch"
    assert (persisted.seq, persisted.doc) == (0, None)
    assert persisted.totals[("costs", "total")] == D("1.25")  # records are not tied to an epoch


async def test_the_writer_closes_its_outputs_and_the_connection(
    db: Path, clock: trio.testing.MockClock
) -> None:
    engine = Engine(epoch_of(db))
    out_send, out_receive = trio.open_memory_channel[Change](10)
    send, receive = trio.open_memory_channel[Change](10)
    await send.aclose()
    await run_writer(settings_for(db), WriterState(buckets=BucketSet()), receive, [out_send])
    with pytest.raises(trio.EndOfChannel):
        await out_receive.receive()
    assert rows(db, "SELECT count(*) FROM snapshots") == [(0,)]  # nothing written, nothing kept
    # the file is free again: another writer can open it at once
    state = WriterState(buckets=BucketSet())
    await write_all(settings_for(db), state, [engine.change("shop")])
    assert state.committed_seq == 1


async def test_a_pending_batch_is_committed_first_after_a_restart(
    db: Path, clock: trio.testing.MockClock
) -> None:
    engine = Engine(epoch_of(db))
    left = [engine.change("shop", cost(1)), engine.change("shop", cost(2))]
    state = WriterState(buckets=BucketSet(), pending=list(left))
    [out] = await write_all(settings_for(db), state, [engine.change("shop", cost(3))])
    assert [c.seq for c in out] == [1, 2, 3]
    assert state.batches == 2
    assert rows(db, "SELECT seq FROM deltas ORDER BY seq") == [(1,), (2,), (3,)]


async def test_retention_deletes_old_deltas_and_snapshots(db: Path, clock: trio.testing.MockClock) -> None:
    old = Engine(epoch_of(db), start=datetime(2020, 1, 1, tzinfo=UTC))
    changes = [old.change("shop", cost(i)) for i in range(4)]
    settings = settings_for(db, snapshot_every=2, keep_deltas_days=1.0, keep_buckets_days=1.0)
    await write_all(settings, WriterState(buckets=BucketSet()), changes)
    assert rows(db, "SELECT count(*) FROM deltas") == [(0,)]
    assert rows(db, "SELECT seq FROM snapshots") == [(4,)]  # the shutdown snapshot came after
    assert rows(db, "SELECT count(*) FROM buckets") == [(0,)]
    assert rows(db, "SELECT seq FROM current") == [(4,)]  # the state itself is never expired
    assert rows(db, "SELECT count(*) FROM rec_cost") == [(4,)]


async def test_retention_zero_keeps_everything(db: Path, clock: trio.testing.MockClock) -> None:
    old = Engine(epoch_of(db), start=datetime(2020, 1, 1, tzinfo=UTC))
    changes = [old.change("shop", cost(i)) for i in range(3)]
    settings = settings_for(db, keep_deltas_days=0.0, keep_buckets_days=0.0)
    await write_all(settings, WriterState(buckets=BucketSet()), changes)
    assert rows(db, "SELECT count(*) FROM deltas") == [(3,)]
    assert rows(db, "SELECT count(DISTINCT resolution) FROM buckets") == [(4,)]


async def test_a_clean_stop_leaves_the_whole_database_in_its_file(
    db: Path, clock: trio.testing.MockClock
) -> None:
    engine = Engine(epoch_of(db))
    with closing(open_reader(db)) as reader:  # the engine's reader outlives the writer
        reader.execute("SELECT count(*) FROM meta").fetchall()
        await write_all(settings_for(db), WriterState(buckets=BucketSet()),
                        [engine.change("shop", cost(i)) for i in range(20)])
        wal = db.with_name(db.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
    assert rows(db, "SELECT count(*) FROM rec_cost") == [(20,)]
