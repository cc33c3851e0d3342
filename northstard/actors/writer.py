"""The writer actor: the only read-write SQLite connection.

Changes from the engine are written in batches: one transaction per batch,
flushed when ``batch_max`` changes wait or ``batch_deadline_ms`` has passed
since the first, whichever comes first. Only after the transaction commits
are the changes passed on (to the hub and the cache): what a client sees is
on disk. The SQLite work runs in a worker thread.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
import trio

from northstard.config import default
from northstard.core.buckets import BucketSet, components
from northstard.core.change import Change
from northstard.core.records import Position, record_to_json
from northstard.store import record_log, rollup
from northstard.store.sqlite import open_writer, path_text

__all__ = ["WriterSettings", "WriterState", "run_writer", "write_batch"]

log = structlog.get_logger("northstard.writer")

DAY_MS = 86_400_000
RETENTION_EVERY_S = 600.0
RETENTION_CHUNK = 5000
RETRY_S = 2.0
UNSAVED = "~unsaved"


@dataclass(frozen=True)
class WriterSettings:
    path: Path
    synchronous: str = default("storage", "synchronous", str)
    batch_max: int = default("storage", "batch_max", int)
    batch_deadline_s: float = default("storage", "batch_deadline_ms", float) / 1000
    snapshot_every: int = default("storage", "snapshot_every", int)
    keep_deltas_days: float = default("storage", "keep_deltas_days", float)
    keep_buckets_days: float = default("storage", "keep_buckets_days", float)


@dataclass
class WriterState:
    """Kept across restarts of the writer: the batch not yet committed, the open buckets."""

    buckets: BucketSet
    pending: list[Change] = field(default_factory=list)
    committed_seq: int = 0
    batches: int = 0
    last_batch_size: int = 0
    last_batch_s: float = 0.0
    last_retention: float = 0.0
    last_change: Change | None = None
    published_seq: int = 0
    degraded: str | None = None
    rollup: rollup.RunningTotals = field(default_factory=rollup.RunningTotals)


Row = tuple[str, str, str, int] | tuple[str, str, str, int, int]


def _add_records(
    conn: sqlite3.Connection, change: Change, now_ms: int, rows: dict[str, list[Row]]
) -> list[str | None]:
    """Queue the change's upserts per kind in ``rows`` (a whole batch's); a retraction first
    writes what is queued, then deletes its row, so every key ends as the last change left it.
    Returns each key's stored body (None: retracted), for the record log."""
    bodies: list[str | None] = []
    for key in change.keys:
        record = key.after
        if record is None:
            _flush_rows(conn, rows)
            conn.execute(f"DELETE FROM rec_{key.kind} WHERE source = ? AND id = ?",
                         (key.source, key.id))
            bodies.append(None)
            continue
        body = record_to_json(record)
        bodies.append(body)
        row: Row = (key.source, key.id, body, now_ms)
        if isinstance(record, Position):
            row = (*row, int(record.count != 0))
        rows.setdefault(key.kind, []).append(row)
    return bodies


def _flush_rows(conn: sqlite3.Connection, rows: dict[str, list[Row]]) -> None:
    for kind, values in rows.items():
        if kind == "position":
            sql = ("INSERT INTO rec_position (source, id, body, updated_ms, hot)"
                   " VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, id) DO UPDATE SET"
                   " body = excluded.body, updated_ms = excluded.updated_ms, hot = excluded.hot")
        else:
            sql = (f"INSERT INTO rec_{kind} (source, id, body, updated_ms) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT (source, id) DO UPDATE SET body = excluded.body,"
                   " updated_ms = excluded.updated_ms")
        conn.executemany(sql, values)
    rows.clear()


def write_batch(
    conn: sqlite3.Connection, batch: Sequence[Change], state: WriterState, settings: WriterSettings
) -> None:
    """One transaction: the batch's records (one executemany per kind), the cold aggregates
    its changes carry (the last value of each path), its deltas, due snapshots, the current
    document, the buckets it touched, the record log (``record_log``) and the explain
    rollup (``rollup``)."""
    now_ms = int(time.time() * 1000)
    try:
        with conn:
            _write(conn, batch, state, settings, now_ms)
    except BaseException:
        state.rollup.forget()  # it may hold totals of the batch that did not commit
        raise


def _write(conn: sqlite3.Connection, batch: Sequence[Change], state: WriterState,
           settings: WriterSettings, now_ms: int) -> None:
    touched = {}
    rows: dict[str, list[Row]] = {}
    totals: dict[tuple[str, ...], Decimal] = {}
    deltas = []
    for change in batch:
        bodies = _add_records(conn, change, now_ms, rows)
        record_log.write_change(conn, change, now_ms, bodies)
        state.rollup.add(conn, change.seq, change.groups)
        totals.update(change.totals)
        deltas.append((change.epoch, change.seq, change.prev, change.ts_ms, change.patch_json))
        if change.seq % settings.snapshot_every == 0:
            _write_snapshot(conn, change)
        for bucket in state.buckets.add(change.ts_ms, components(change.doc)):
            touched[bucket.resolution, bucket.start_ms] = bucket
    _flush_rows(conn, rows)
    state.rollup.flush(conn)
    conn.executemany("INSERT OR REPLACE INTO totals (path, amount) VALUES (?, ?)",
                     [(path_text(path), str(amount)) for path, amount in totals.items()])
    conn.executemany(
        "INSERT OR REPLACE INTO deltas (epoch, seq, prev, ts_ms, patch) VALUES (?, ?, ?, ?, ?)",
        deltas,
    )
    last = batch[-1]
    conn.execute(
        "INSERT OR REPLACE INTO current (id, epoch, seq, ts_ms, doc) VALUES (1, ?, ?, ?, ?)",
        (last.epoch, last.seq, last.ts_ms, last.doc_json),
    )
    conn.executemany(
        "INSERT OR REPLACE INTO buckets (resolution, start_ms, body) VALUES (?, ?, ?)",
        [(b.resolution, b.start_ms, b.body()) for b in touched.values()],
    )


def _write_snapshot(conn: sqlite3.Connection, change: Change) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO snapshots (epoch, seq, ts_ms, doc) VALUES (?, ?, ?, ?)",
        (change.epoch, change.seq, change.ts_ms, change.doc_json),
    )


def _snapshot_now(conn: sqlite3.Connection, change: Change) -> None:
    with conn:
        _write_snapshot(conn, change)


def _checkpoint(conn: sqlite3.Connection) -> None:
    """At shutdown: everything into the main file, the WAL emptied, so the file alone is
    the whole database (other connections, such as the engine's reader, may still be open)."""
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error as exc:
        log.warning("checkpoint at shutdown failed", error=f"{type(exc).__name__}: {exc}")


def _retention(conn: sqlite3.Connection, settings: WriterSettings) -> int:
    """Delete one bounded chunk of expired rows; returns how many went."""
    now_ms = int(time.time() * 1000)
    removed = 0
    with conn:
        if settings.keep_deltas_days > 0:
            cutoff = now_ms - int(settings.keep_deltas_days * DAY_MS)
            for table in ("deltas", "snapshots"):
                removed += conn.execute(
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"
                    " WHERE ts_ms < ? LIMIT ?)",
                    (cutoff, RETENTION_CHUNK),
                ).rowcount
        if settings.keep_buckets_days > 0:
            cutoff = now_ms - int(settings.keep_buckets_days * DAY_MS)
            removed += conn.execute(
                "DELETE FROM buckets WHERE start_ms < ?", (cutoff,)
            ).rowcount
    return removed


async def _next_batch(
    receive: trio.MemoryReceiveChannel[Change], settings: WriterSettings, patience: float
) -> list[Change] | None:
    """The next batch: waits (up to ``patience``) for a first change, then gathers until
    full or the deadline. ``[]`` when patience ran out; None at the end of the input."""
    batch: list[Change] = []
    with trio.move_on_after(patience):
        try:
            batch.append(await receive.receive())
        except trio.EndOfChannel:
            return None
    if not batch:
        return batch
    with trio.move_on_after(settings.batch_deadline_s):
        while len(batch) < settings.batch_max:
            try:
                batch.append(await receive.receive())
            except trio.EndOfChannel:
                break
    return batch


async def _publish(
    outputs: Sequence[trio.MemorySendChannel[Change]], changes: Sequence[Change]
) -> None:
    for output in outputs:
        for change in changes:
            await output.send(change)


async def _commit(
    conn: sqlite3.Connection, state: WriterState, settings: WriterSettings,
    outputs: Sequence[trio.MemorySendChannel[Change]], observe: Any,
) -> bool:
    """Write every pending change in one transaction, then pass on what is not yet out.

    When SQLite fails (disk full, read-only), the store goes degraded: nothing
    is dropped — the changes stay pending and are retried — and the stream
    stays alive: they are passed on under the epoch ``<epoch>~unsaved``, so no
    client can ever resume from a position that is not on disk.
    """
    batch = state.pending
    started = time.perf_counter()
    try:
        await trio.to_thread.run_sync(write_batch, conn, batch, state, settings)
    except sqlite3.Error as exc:
        await _degraded(state, outputs, f"{type(exc).__name__}: {exc}")
        return False
    if state.degraded is not None:
        log.warning("store recovered: persisting again", saved=len(batch))
        state.degraded = None
    state.last_batch_s = time.perf_counter() - started
    state.last_batch_size = len(batch)
    state.batches += 1
    state.committed_seq = batch[-1].seq
    state.last_change = batch[-1]
    state.pending = []
    observe(len(batch), state.last_batch_s)
    fresh = [c for c in batch if c.seq > state.published_seq]
    state.published_seq = batch[-1].seq
    await _publish(outputs, fresh)
    return True


async def _degraded(
    state: WriterState, outputs: Sequence[trio.MemorySendChannel[Change]], reason: str
) -> None:
    if state.degraded is None:
        log.error("store degraded: cannot persist; changes kept in memory and retried",
                  error=reason, pending=len(state.pending))
    state.degraded = reason
    fresh = [
        replace(c, epoch=f"{c.epoch}{UNSAVED}") for c in state.pending if c.seq > state.published_seq
    ]
    if fresh:
        state.published_seq = fresh[-1].seq
        await _publish(outputs, fresh)


async def run_writer(
    settings: WriterSettings,
    state: WriterState,
    receive: trio.MemoryReceiveChannel[Change],
    outputs: Sequence[trio.MemorySendChannel[Change]],
    observe: object = lambda size, seconds: None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write changes until the input closes; then flush, close SQLite and close the outputs."""
    conn = await trio.to_thread.run_sync(open_writer, settings.path, settings.synchronous)
    try:
        task_status.started()
        if state.pending:  # changes left by a crashed run of this actor, or not yet saved
            await _commit(conn, state, settings, outputs, observe)
        while True:
            patience = RETRY_S if state.degraded is not None else math.inf
            batch = await _next_batch(receive, settings, patience)
            if batch is None:
                break
            state.pending.extend(batch)
            if state.pending and await _commit(conn, state, settings, outputs, observe):
                await _maybe_retention(conn, state, settings)
        if state.pending and not await _commit(conn, state, settings, outputs, observe):
            log.critical("changes not persisted at shutdown", lost=len(state.pending),
                         first_seq=state.pending[0].seq, error=state.degraded)
        if state.last_change is not None and state.degraded is None:
            await trio.to_thread.run_sync(_snapshot_now, conn, state.last_change)
        if state.degraded is None:
            await trio.to_thread.run_sync(_checkpoint, conn)
        log.info("writer flushed", seq=state.committed_seq)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(conn.close)
    for output in outputs:
        await output.aclose()


async def _maybe_retention(
    conn: sqlite3.Connection, state: WriterState, settings: WriterSettings
) -> None:
    now = trio.current_time()
    if now - state.last_retention < RETENTION_EVERY_S and state.last_retention:
        return
    state.last_retention = now
    removed = await trio.to_thread.run_sync(_retention, conn, settings)
    if removed >= RETENTION_CHUNK:
        state.last_retention = 0.0  # more to go: another chunk after the next batch
    if removed:
        log.info("retention", removed=removed)
