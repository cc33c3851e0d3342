"""The SQLite store: schema, migrations and the reads the edges need.

The writer actor owns the one read-write connection (``open_writer``); every
reader opens its own read-only connection (``open_reader``). The schema is
built by numbered migrations tracked in ``PRAGMA user_version``.

    meta        key/value: the stream's epoch
    rec_<kind>  one table per record kind, keyed by (source, id): the record's JSON
    deltas      every published change: (epoch, seq) -> merge patch
    snapshots   a full document every N changes and at shutdown
    current     the last published document (one row)
    buckets     history buckets: (resolution, start_ms) -> OHLC JSON
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .buckets import RESOLUTIONS, Bucket
from .errors import StoreError
from .mergepatch import Doc
from .records import KINDS, Record, record_from_json

__all__ = [
    "RECORD_KINDS",
    "Persisted",
    "load_persisted",
    "open_reader",
    "open_writer",
    "read_buckets",
    "read_deltas",
]

RECORD_KINDS = tuple(k for k in KINDS if k != "retract")


def _migration_1() -> list[str]:
    statements = [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE deltas (epoch TEXT NOT NULL, seq INTEGER NOT NULL, prev INTEGER NOT NULL,"
        " ts_ms INTEGER NOT NULL, patch TEXT NOT NULL, PRIMARY KEY (epoch, seq))",
        "CREATE INDEX deltas_ts ON deltas (ts_ms)",
        "CREATE TABLE snapshots (epoch TEXT NOT NULL, seq INTEGER NOT NULL,"
        " ts_ms INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (epoch, seq))",
        "CREATE TABLE current (id INTEGER PRIMARY KEY CHECK (id = 1), epoch TEXT NOT NULL,"
        " seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL, doc TEXT NOT NULL)",
        "CREATE TABLE buckets (resolution TEXT NOT NULL, start_ms INTEGER NOT NULL,"
        " body TEXT NOT NULL, PRIMARY KEY (resolution, start_ms)) WITHOUT ROWID",
    ]
    for kind in RECORD_KINDS:
        statements.append(
            f"CREATE TABLE rec_{kind} (source TEXT NOT NULL, id TEXT NOT NULL,"
            " body TEXT NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY (source, id))"
            " WITHOUT ROWID"
        )
    return statements


MIGRATIONS: list[list[str]] = [_migration_1()]


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(f"database schema {version} is newer than this northstard ({len(MIGRATIONS)})")
    for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
        with conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    with conn:
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (_new_epoch(),)
        )


def _new_epoch() -> str:
    return f"{int(time.time()):x}{secrets.token_hex(3)}"


def open_writer(path: Path, synchronous: str = "full") -> sqlite3.Connection:
    """The read-write connection: WAL, migrated, for use from one worker thread at a time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.isolation_level = "DEFERRED"
        _migrate(conn)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    return conn


def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection (the edges' reads never take the writer's lock)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path} read-only: {exc}") from exc
    return conn


@dataclass(frozen=True)
class Persisted:
    """What a restart continues from."""

    epoch: str
    seq: int
    doc: Doc | None
    records: list[tuple[str, Record]]
    open_buckets: dict[str, Bucket]


def _records(conn: sqlite3.Connection) -> Iterator[tuple[str, Record]]:
    for kind in RECORD_KINDS:
        for source, body in conn.execute(f"SELECT source, body FROM rec_{kind}"):
            yield source, record_from_json(body)


def load_persisted(path: Path) -> Persisted:
    """Read the epoch, the last document, every record and the open buckets."""
    try:
        with closing(open_reader(path)) as conn:
            epoch = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
            row = conn.execute("SELECT epoch, seq, doc FROM current WHERE id = 1").fetchone()
            seq, doc = (0, None)
            if row is not None and row[0] == epoch:
                seq, doc = row[1], json.loads(row[2])
            buckets = {}
            for resolution in RESOLUTIONS:
                found = conn.execute(
                    "SELECT start_ms, body FROM buckets WHERE resolution = ?"
                    " ORDER BY start_ms DESC LIMIT 1",
                    (resolution,),
                ).fetchone()
                if found:
                    buckets[resolution] = Bucket.from_body(resolution, found[0], found[1])
            return Persisted(epoch, seq, doc, list(_records(conn)), buckets)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def read_buckets(
    conn: sqlite3.Connection, resolution: str, from_ms: int, to_ms: int
) -> list[dict[str, Any]]:
    """Buckets of one resolution whose start lies in [from_ms, to_ms)."""
    rows = conn.execute(
        "SELECT start_ms, body FROM buckets WHERE resolution = ? AND start_ms >= ?"
        " AND start_ms < ? ORDER BY start_ms",
        (resolution, from_ms, to_ms),
    )
    return [{"start_ms": start, **json.loads(body)} for start, body in rows]


def read_deltas(conn: sqlite3.Connection, epoch: str, after: int) -> list[tuple[int, int, Doc]]:
    """Persisted deltas of ``epoch`` with seq > ``after``, in order."""
    rows = conn.execute(
        "SELECT seq, prev, patch FROM deltas WHERE epoch = ? AND seq > ? ORDER BY seq",
        (epoch, after),
    )
    return [(seq, prev, json.loads(patch)) for seq, prev, patch in rows]
