"""The writer's transaction: what a batch of changes writes, and writing it.

``prepare`` (no I/O) turns a batch of changes into a ``Job``: the statements
of the transaction in order, each with its rows (plain str/int/None values),
and each change's contributions per explain group key for the rollup. ``run``
writes a job in one transaction. The two halves run in different processes in
the daemon (``writer_process``): the job is what crosses between them, so it
holds no record objects, only the text SQLite stores.

What a batch writes: each key's current version (one ``executemany`` per
kind, a retraction first writing what is queued, then deleting its row, so
every key ends as the batch's last change left it), the record log
(``record_log``), the cold aggregates (the last value of each path), the
deltas, due snapshots, the current document, the history buckets it touched
and the explain rollup (``rollup``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from northstard.core.buckets import BucketSet, components
from northstard.core.change import Change
from northstard.core.contributions import Figures, internal_figures
from northstard.core.explain import GroupKey
from northstard.core.pnl import RevenueBasis
from northstard.core.records import record_wire, wire_index, wire_to_json
from northstard.store import record_log
from northstard.store.record_log import KeyOp
from northstard.store.rollup import RunningTotals, basis_of
from northstard.store.sqlite import path_text

__all__ = ["Job", "Rollup", "Statement", "prepare", "run", "snapshot_statement"]

Row = tuple[object, ...]
Statement = tuple[str, list[Row]]


# a change's rollup input as it crosses to the writer's process: its seq, the revenue basis of
# its document, then per group key its internal amounts as decimal text (``explain.change_groups``)
Rollup = tuple[int, RevenueBasis, list[tuple[GroupKey, tuple[tuple[tuple[str, ...], str], ...]]]]


@dataclass
class Job:
    """One transaction: each change's keys (its records and the record log, made into rows by
    ``run``), the other statements in order, and each change's rollup input. Only builtin
    values (str, int, None, tuples, lists): ``marshal`` carries it to the writer's process."""

    now_ms: int = 0
    changes: list[tuple[int, list[KeyOp]]] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    rollups: list[Rollup] = field(default_factory=list)

    def wire(self) -> tuple[int, list[tuple[int, list[KeyOp]]], list[Statement], list[Rollup]]:
        return self.now_ms, self.changes, self.statements, self.rollups

    def add(self, sql: str, rows: list[Row]) -> None:
        if rows:
            self.statements.append((sql, rows))


_UPSERT_POSITION = (
    "INSERT INTO rec_position (source, id, body, updated_ms, hot) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (source, id) DO UPDATE SET body = excluded.body,"
    " updated_ms = excluded.updated_ms, hot = excluded.hot")
_UPSERT = (
    "INSERT INTO rec_{} (source, id, body, updated_ms) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (source, id) DO UPDATE SET body = excluded.body,"
    " updated_ms = excluded.updated_ms")
_SNAPSHOT = "INSERT OR REPLACE INTO snapshots (epoch, seq, ts_ms, doc) VALUES (?, ?, ?, ?)"


def snapshot_statement(change: Change) -> Statement:
    return _SNAPSHOT, [(change.epoch, change.seq, change.ts_ms, change.doc_json)]


def prepare(batch: Sequence[Change], buckets: BucketSet, snapshot_every: int,
            now_ms: int) -> Job:
    """The job of ``batch`` (``buckets``, the open history buckets, take its documents in)."""
    job = Job(now_ms)
    totals: dict[tuple[str, ...], Decimal] = {}
    touched = {}
    for change in batch:
        job.changes.append((change.seq, [
            (key.source, key.kind, key.id, key.before is not None,
             record_wire(key.after) if key.after is not None else None) for key in change.keys]))
        job.rollups.append((change.seq, basis_of(change.doc), _rollup_text(change.groups)))
        totals.update(change.totals)
        if change.seq % snapshot_every == 0:
            job.statements.append(snapshot_statement(change))
        for bucket in buckets.add(change.ts_ms, components(change.doc)):
            touched[bucket.resolution, bucket.start_ms] = bucket
    job.add("INSERT OR REPLACE INTO totals (path, amount) VALUES (?, ?)",
            [(path_text(path), str(amount)) for path, amount in totals.items()])
    job.add("INSERT OR REPLACE INTO deltas (epoch, seq, prev, ts_ms, patch) VALUES (?, ?, ?, ?, ?)",
            [(c.epoch, c.seq, c.prev, c.ts_ms, c.patch_json) for c in batch])
    last = batch[-1]
    job.add("INSERT OR REPLACE INTO current (id, epoch, seq, ts_ms, doc) VALUES (1, ?, ?, ?, ?)",
            [(last.epoch, last.seq, last.ts_ms, last.doc_json)])
    job.add("INSERT OR REPLACE INTO buckets (resolution, start_ms, body) VALUES (?, ?, ?)",
            [(b.resolution, b.start_ms, b.body()) for b in touched.values()])
    return job


def _rollup_text(groups: Mapping[GroupKey, Mapping[tuple[str, ...], Decimal]]
                 ) -> list[tuple[GroupKey, tuple[tuple[tuple[str, ...], str], ...]]]:
    return [(key, tuple((path, str(amount)) for path, amount in figures.items()))
            for key, figures in groups.items()]


def _records(conn: sqlite3.Connection, keys: list[KeyOp], now_ms: int,
             upserts: dict[str, list[Row]]) -> list[str | None]:
    """Queue a change's upserts per kind in ``upserts`` (the whole batch's); a retraction
    first writes what is queued, then deletes its row, so every key ends as the batch's last
    change left it. Returns each key's stored body (None: retracted), for the record log."""
    bodies: list[str | None] = []
    for source, kind, id_, _, wire in keys:
        if wire is None:
            _flush_upserts(conn, upserts)
            conn.execute(f"DELETE FROM rec_{kind} WHERE source = ? AND id = ?", (source, id_))
            bodies.append(None)
            continue
        body = wire_to_json(wire)
        bodies.append(body)
        row: Row = (source, id_, body, now_ms)
        if kind == "position":
            row = (*row, int(Decimal(wire[_COUNT]) != 0))
        upserts.setdefault(kind, []).append(row)
    return bodies


def _place(kind: str, name: str) -> int:
    place = wire_index(kind, name)
    if place is None:
        raise LookupError(f"{kind} records have no field {name}")
    return place


_COUNT = _place("position", "count")  # where an open position's count is in its wire form


def _flush_upserts(conn: sqlite3.Connection, upserts: dict[str, list[Row]]) -> None:
    for kind, rows in upserts.items():
        conn.executemany(_UPSERT_POSITION if kind == "position" else _UPSERT.format(kind), rows)
    upserts.clear()


def _figures(basis: RevenueBasis,
             groups: list[tuple[GroupKey, tuple[tuple[tuple[str, ...], str], ...]]]
             ) -> dict[GroupKey, Figures]:
    """Each group's internal amounts as figures (``internal_figures``, with the basis
    ``rollup.basis_of`` read from the change's document), groups of none left out."""
    figures = {key: internal_figures({path: Decimal(amount) for path, amount in amounts}, basis)
               for key, amounts in groups}
    return {key: values for key, values in figures.items() if values}


def run(conn: sqlite3.Connection, job: Job, totals: RunningTotals) -> None:
    """Write ``job`` in one transaction. When it does not commit, ``totals`` forgets what it
    held (it may be ahead of the database), so a retry adds to what the database has."""
    try:
        with conn:
            upserts: dict[str, list[Row]] = {}
            for seq, keys in job.changes:
                bodies = _records(conn, keys, job.now_ms, upserts)
                for sql, rows in record_log.change_statements(seq, job.now_ms, keys, bodies):
                    conn.executemany(sql, rows)
            _flush_upserts(conn, upserts)
            for sql, rows in job.statements:
                conn.executemany(sql, rows)
            for seq, basis, groups in job.rollups:
                totals.add(conn, seq, _figures(basis, groups))
            totals.flush(conn)
    except BaseException:
        totals.forget()
        raise
