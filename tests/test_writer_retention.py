"""A large retention runs in bounded chunks between the writer's commits, never stalling them."""

from __future__ import annotations

import math
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import trio

from northstard.actors.engine import EngineState, next_change
from northstard.actors.writer import RETENTION_CHUNK, WriterSettings, WriterState, run_writer
from northstard.core.buckets import BucketSet
from northstard.core.change import Change
from northstard.core.pnl import Book
from northstard.core.records import Cost
from northstard.store.sqlite import load_persisted, open_reader, open_writer

OLD_MS = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000)


def seed_old_deltas(db: Path, count: int) -> str:
    """``count`` deltas of a year-old epoch, all past retention; returns the live epoch."""
    with closing(open_writer(db, "normal")) as conn, conn:
        conn.executemany(
            "INSERT INTO deltas (epoch, seq, prev, ts_ms, patch) VALUES ('old', ?, ?, ?, '{}')",
            [(seq, seq - 1, OLD_MS + seq) for seq in range(1, count + 1)],
        )
    return load_persisted(db).epoch


def old_left(db: Path) -> int:
    with closing(open_reader(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM deltas WHERE epoch = 'old'").fetchone()[0])


def changes(epoch: str, count: int) -> list[Change]:
    book = Book()
    book.add_source("shop", "shop", 60.0)
    state = EngineState(book=book, epoch=epoch, seq=0, doc=None)
    now, out = datetime.now(UTC), []
    for i in range(count):
        now += timedelta(seconds=1)
        cost = Cost(id=f"c-{i}", amount=Decimal("1.25"), category="ai", model="m", ts=now)
        state.book.source_ok("shop", now, now)
        out.append(next_change(state, [("shop", r) for r in state.book.ingest("shop", [cost])], now))
    return out


async def test_the_writer_commits_between_chunks_of_a_large_retention(tmp_path: Path) -> None:
    db = tmp_path / "northstard.db"
    chunks = 4
    epoch = seed_old_deltas(db, chunks * RETENTION_CHUNK)
    settings = WriterSettings(path=db, synchronous="normal", batch_deadline_s=0.001, keep_deltas_days=1.0)
    send, receive = trio.open_memory_channel[Change](0)
    out_send, out_receive = trio.open_memory_channel[Change](math.inf)
    left_at_commit = []
    async with trio.open_nursery() as nursery:
        await nursery.start(run_writer, settings, WriterState(buckets=BucketSet()), receive, [out_send])
        async with send:
            for change in changes(epoch, chunks + 2):
                await send.send(change)
                committed = await out_receive.receive()  # passed on only once on disk
                assert committed.seq == change.seq
                left_at_commit.append(await trio.to_thread.run_sync(old_left, db))
    # before change k commits, the writer has run k - 1 chunks (one after each commit), and at
    # most one more since: the old rows go a chunk at a time while every change commits at once
    for k, left in enumerate(left_at_commit, start=1):
        most = max(chunks - (k - 1), 0) * RETENTION_CHUNK
        assert max(most - RETENTION_CHUNK, 0) <= left <= most, (k, left_at_commit)
    assert left_at_commit[0] >= (chunks - 1) * RETENTION_CHUNK  # the first change did not wait
    assert await trio.to_thread.run_sync(old_left, db) == 0
    assert load_persisted(db).seq == chunks + 2
