"""The record log: every version of every record, and the change that stored and ended it.

``rec_<kind>`` holds only the current version of each record; ``rec_log``
keeps each version with the sequence number of the change that stored it
(``seq``) and of the one that replaced or retracted it (``ended_seq``,
``ended`` = "replaced" | "retracted"). The version of a key current at a
position N is the one with ``seq <= N`` and no end at or before N: that is
what ``explain`` and the records API read. The writer adds the rows in the
same transaction as the records (``change_statements``), from what the engine says of
each key the change changed (``Change.keys``).

Columns for the records API's filters and order: ``time_ms`` (the record's
own time: its ``ts``, or when it was stored for positions and prices, which
have none), ``agent`` ("unattributed" when the record names none, as the
document's agents do), ``model`` (costs), ``ticker`` (trading records; a
price's id). One index per lead filter, each ending in the page order
``(time_ms, source, kind, id, seq)``, so a page is one index range read. The
``ticker`` and ``model`` indexes hold only the rows that have one (migration
8): a filter ``ticker = ?`` never matches the others, and a cost (most rows)
then costs no ``ticker`` entry, a trading record no ``model`` entry.

Migration 3 copies the current records in once (one scan of an existing
database) at the position the database was at (``meta.log_from``): explain
answers from that position on.

Growth: one row per stored version (a record re-sent unchanged is not a new
version: the engine only passes on what changed). The log is not pruned
with the deltas: it is the record history an accountant exports.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from northstard.core.pnl import UNATTRIBUTED
from northstard.core.records import (
    RECORD_KINDS,
    Record,
    Wire,
    record_from_json,
    record_to_json,
    record_wire,
    wire_index,
)

__all__ = ["LEADS", "KeyOp", "change_statements", "log_from", "migration_3", "migration_6", "migration_7",
           "migration_8", "wire_columns"]

# one key a change changed, as the writer's process gets it: (source, kind, id, whether it had a
# version before, its new version in wire form, or None: retracted)
KeyOp = tuple[str, str, str, bool, Wire | None]

LEADS = ("ticker", "model", "agent", "kind", "source")  # filter columns with an index, most selective first
ORDER = "time_ms, source, kind, id, seq"


def migration_3(conn: sqlite3.Connection) -> None:
    """The log table and its indexes; the current records copied in (one scan, once)."""
    conn.execute(
        "CREATE TABLE rec_log (seq INTEGER NOT NULL, n INTEGER NOT NULL, source TEXT NOT NULL,"
        " kind TEXT NOT NULL, id TEXT NOT NULL, time_ms INTEGER NOT NULL,"
        " stored_ms INTEGER NOT NULL, body TEXT NOT NULL, agent TEXT, model TEXT, ticker TEXT,"
        " ended_seq INTEGER, ended_ms INTEGER, ended TEXT, PRIMARY KEY (seq, n))"
    )
    conn.execute(f"CREATE INDEX rec_log_time ON rec_log ({ORDER})")
    for lead in LEADS:  # the lead column, then the page order (the lead is fixed in it)
        conn.execute(f"CREATE INDEX rec_log_{lead} ON rec_log ({lead}, {_after(lead)})")
    conn.execute("CREATE INDEX rec_log_key ON rec_log (source, kind, id, seq)")
    conn.execute("CREATE INDEX rec_log_ended ON rec_log (ended_seq) WHERE ended_seq IS NOT NULL")
    row = conn.execute("SELECT seq FROM current WHERE id = 1").fetchone()
    start = row[0] if row is not None else 0
    if start:  # an existing database: the log covers what comes after it (absent: 0), and
        # explain needs the document there: kept as a snapshot row (retention applies to it)
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('log_from', ?)", (str(start),))
        conn.execute("INSERT OR IGNORE INTO snapshots (epoch, seq, ts_ms, doc)"
                     " SELECT epoch, seq, ts_ms, doc FROM current WHERE id = 1")
    n = 0
    for kind in RECORD_KINDS:
        for source, body, updated_ms in conn.execute(
            f"SELECT source, body, updated_ms FROM rec_{kind}"
        ).fetchall():
            _insert(conn, start, n, source, record_from_json(body), updated_ms)
            n += 1


def log_from(conn: sqlite3.Connection) -> int:
    """The first position the log covers (0 for a database created with it)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'log_from'").fetchone()
    return int(row[0]) if row is not None else 0


def wire_columns(wire: Wire, stored_ms: int) -> tuple[int, str, str | None, str | None]:
    """(time_ms, agent, model, ticker) of a record in its wire form, as the log indexes them."""
    ts, agent, model, ticker = _column_places(wire[0])
    text = wire[ts] if ts is not None else None
    time_ms = _ms_of(text) if text is not None else stored_ms
    return (time_ms, (wire[agent] if agent is not None else None) or UNATTRIBUTED,
            wire[model] if model is not None else None,
            (wire[ticker] if ticker is not None else None) or None)


@functools.cache
def _column_places(kind: str) -> tuple[int | None, int | None, int | None, int | None]:
    """Where a ``kind`` record's time, agent, model (costs) and ticker (a price's: its id)
    are in its wire form (a few kinds: one entry each)."""
    return (wire_index(kind, "ts"), wire_index(kind, "agent"),
            wire_index(kind, "model") if kind == "cost" else None,
            wire_index(kind, "id" if kind == "price" else "ticker"))


_last_time: list[tuple[str, int]] = []  # one entry: the records of a reading share a time


def _ms_of(text: str) -> int:
    """A record time's JSON text (``records._time_text``: UTC, ISO 8601) as ms since the epoch."""
    last = _last_time[-1] if _last_time else None
    if last is not None and last[0] == text:
        return last[1]
    ms = int(datetime.fromisoformat(text).timestamp() * 1000)
    _last_time[:] = [(text, ms)]
    return ms


def _row(seq: int, n: int, source: str, wire: Wire, stored_ms: int,
         body: str) -> tuple[object, ...]:
    time_ms, agent, model, ticker = wire_columns(wire, stored_ms)
    return (seq, n, source, wire[0], wire[_ID], time_ms, stored_ms, body, agent, model, ticker)


_ID = 1  # every record's first field is its id (``records._Base``)
_INSERT = ("INSERT OR REPLACE INTO rec_log (seq, n, source, kind, id, time_ms, stored_ms, body,"
           " agent, model, ticker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_END = ("UPDATE rec_log SET ended_seq = ?, ended_ms = ?, ended = ? WHERE rowid = (SELECT rowid"
        " FROM rec_log WHERE source = ? AND kind = ? AND id = ? ORDER BY seq DESC LIMIT 1)"
        " AND ended_seq IS NULL")  # a key's open version, if any, is its newest


def _insert(conn: sqlite3.Connection, seq: int, n: int, source: str, record: Record,
            stored_ms: int) -> None:
    conn.execute(_INSERT, _row(seq, n, source, record_wire(record), stored_ms,
                               record_to_json(record)))


def migration_6(conn: sqlite3.Connection) -> None:
    """Once an index of the open version of each key (``rec_log_current``); migration 7 drops
    it, so a database that has not yet built it does not."""


def migration_7(conn: sqlite3.Connection) -> None:
    """No index of the open versions: ``_END`` finds a key's open version as its newest
    version (one probe at the end of the key's range of ``rec_log_key``, however many
    versions it has), and every version no longer costs an entry that its end removes."""
    conn.execute("DROP INDEX IF EXISTS rec_log_current")


PARTIAL_LEADS = ("ticker", "model")  # lead filters most rows leave empty (NULL)


def migration_8(conn: sqlite3.Connection) -> None:
    """The ``ticker`` and ``model`` indexes hold only the rows that have one (a filter on
    either is an equality, which no NULL matches): a version costs one index entry fewer
    (measured: 5 % of the writer's instructions, 6 % of the file). Rebuilds the two
    indexes once (one scan of the log)."""
    for lead in PARTIAL_LEADS:
        conn.execute(f"DROP INDEX IF EXISTS rec_log_{lead}")
        conn.execute(f"CREATE INDEX rec_log_{lead} ON rec_log ({lead}, {_after(lead)})"
                     f" WHERE {lead} IS NOT NULL")


def _after(lead: str) -> str:
    """The page order with ``lead`` left out (it is fixed in its index's range)."""
    return ", ".join(c for c in ORDER.split(", ") if c != lead)


def change_statements(seq: int, now_ms: int, keys: Sequence[KeyOp],
                      bodies: Sequence[str | None]) -> list[tuple[str, list[tuple[object, ...]]]]:
    """The statements that log the change at ``seq``: end the versions its keys replace or
    retract, then add the new ones.

    ``keys`` has one entry per key the change changed (the documents around it are the only
    positions a reader can ask about), as ``store/batch`` sends it: a key that had no version
    before ends nothing. ``bodies``: each key's new version as stored, None when retracted.
    """
    ends: list[tuple[object, ...]] = [
        (seq, now_ms, "replaced" if wire is not None else "retracted", source, kind, id_)
        for source, kind, id_, before, wire in keys if before]
    rows = [_row(seq, n, key[0], key[4], now_ms, body)
            for n, (key, body) in enumerate(zip(keys, bodies, strict=True))
            if key[4] is not None and body is not None]
    return [(sql, values) for sql, values in ((_END, ends), (_INSERT, rows)) if values]


def version_at(conn: sqlite3.Connection, key: Sequence[str], seq: int) -> Record | None:
    """The version of ``(source, kind, id)`` current at position ``seq``, or None."""
    row = conn.execute(
        "SELECT body, ended_seq FROM rec_log WHERE source = ? AND kind = ? AND id = ? AND seq <= ?"
        " ORDER BY seq DESC LIMIT 1", (*key, seq),
    ).fetchone()
    if row is None or (row[1] is not None and row[1] <= seq):
        return None
    return record_from_json(row[0])
