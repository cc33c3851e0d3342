"""The SQLite store: schema, migrations and the reads the edges need.

The writer actor owns the one read-write connection (``open_writer``); every
reader opens its own read-only connection (``open_reader``). The schema is
built by numbered migrations tracked in ``PRAGMA user_version``.

    meta        key/value: the stream's epoch
    rec_<kind>  one table per record kind, keyed by (source, id): the record's JSON
                (rec_position also flags open positions: ``hot``, indexed)
    totals      the cold aggregates: path -> decimal string (see pnl, "Hot and cold"),
                written in the same transaction as the records that changed them
    deltas      every published change: (epoch, seq) -> merge patch
    snapshots   a full document every N changes and at shutdown
    current     the last published document (one row)
    buckets     history buckets: (resolution, start_ms) -> OHLC JSON
    rec_log     every version of every record, with the change that stored and ended it
                (see record_log)
    rollup_group, rollup   per explain group key, the running sum of each change's
                contribution (see rollup)
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from northstard.core.buckets import RESOLUTIONS, Bucket
from northstard.core.mergepatch import Doc
from northstard.core.money import ZERO
from northstard.core.pnl import contribution, exact, is_hot
from northstard.core.records import RECORD_KINDS, Position, Price, Record, record_from_json
from northstard.errors import StoreError
from northstard.store import record_log, rollup

__all__ = [
    "RECORD_KINDS",
    "Persisted",
    "SqliteRecords",
    "iter_records",
    "load_persisted",
    "open_reader",
    "open_writer",
    "path_from_text",
    "path_text",
    "read_buckets",
    "read_deltas",
]



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


def _run_migration_1(conn: sqlite3.Connection) -> None:
    for statement in _migration_1():
        conn.execute(statement)


def path_text(path: Sequence[str]) -> str:
    """How a totals path is keyed in the ``totals`` table (a JSON array)."""
    return json.dumps(list(path), separators=(",", ":"), ensure_ascii=False)


def path_from_text(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


@exact  # sums past 28 digits stay exact, as in the engine
def _migration_2(conn: sqlite3.Connection) -> None:
    """Hot flags and the cold aggregates: one full scan of an existing database, once."""
    conn.execute("ALTER TABLE rec_position ADD COLUMN hot INTEGER NOT NULL DEFAULT 0")
    conn.execute("CREATE INDEX rec_position_hot ON rec_position (hot) WHERE hot = 1")
    conn.execute(
        "CREATE TABLE totals (path TEXT PRIMARY KEY, amount TEXT NOT NULL) WITHOUT ROWID"
    )
    sums: dict[tuple[str, ...], Decimal] = {}
    hot: list[tuple[str, str]] = []
    for source, record in iter_records(conn):
        if is_hot(record):
            hot.append((source, record.id))
        elif not isinstance(record, Price):
            for path, amount in contribution(record).items():
                sums[path] = sums.get(path, ZERO) + amount
    conn.executemany("UPDATE rec_position SET hot = 1 WHERE source = ? AND id = ?", hot)
    conn.executemany(
        "INSERT INTO totals (path, amount) VALUES (?, ?)",
        [(path_text(path), str(amount)) for path, amount in sums.items()],
    )


def _migration_4(conn: sqlite3.Connection) -> None:
    """Alerts: each rule's state, the transitions (history) and the notification outbox."""
    conn.execute(
        "CREATE TABLE alert_state (rule TEXT PRIMARY KEY, status TEXT NOT NULL,"
        " since_ms INTEGER NOT NULL, body TEXT NOT NULL) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE TABLE alert_events (id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL,"
        " event TEXT NOT NULL, severity TEXT NOT NULL, ts_ms INTEGER NOT NULL, epoch TEXT NOT NULL,"
        " seq INTEGER NOT NULL, body TEXT NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE alert_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER NOT NULL,"
        " notifier TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL,"
        " last_error TEXT, dead INTEGER NOT NULL DEFAULT 0)"
    )
    conn.execute("CREATE INDEX alert_outbox_next ON alert_outbox (dead, next_ms)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _run_migration_1, _migration_2, record_log.migration_3, _migration_4, rollup.migration_5,
    record_log.migration_6, record_log.migration_7, record_log.migration_8,
]


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(f"database schema {version} is newer than this northstard ({len(MIGRATIONS)})")
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        with conn:
            conn.execute("BEGIN IMMEDIATE")  # the whole migration or nothing
            migration(conn)
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
    """What a restart continues from: nothing in it grows with the stored history.

    ``records`` are the hot ones (open positions and their markets' prices),
    ``totals`` the cold aggregates, ``sources`` every source with stored records.
    """

    epoch: str
    seq: int
    doc: Doc | None
    records: list[tuple[str, Record]]
    open_buckets: dict[str, Bucket]
    totals: dict[tuple[str, ...], Decimal] = field(default_factory=dict)
    sources: frozenset[str] = frozenset()


def iter_records(conn: sqlite3.Connection) -> Iterator[tuple[str, Record]]:
    """Every stored record (a full scan: the migration and the tests, never the start-up)."""
    for kind in RECORD_KINDS:
        for source, body in conn.execute(f"SELECT source, body FROM rec_{kind}"):
            yield source, record_from_json(body)


def _hot_records(conn: sqlite3.Connection) -> list[tuple[str, Record]]:
    """Open positions (through the partial index) and the prices of their markets."""
    positions = [
        (source, record_from_json(body))
        for source, body in conn.execute("SELECT source, body FROM rec_position WHERE hot = 1")
    ]
    markets = sorted({(s, p.ticker) for s, p in positions if isinstance(p, Position)})
    prices = []
    for source, ticker in markets:
        row = conn.execute(
            "SELECT body FROM rec_price WHERE source = ? AND id = ?", (source, ticker)
        ).fetchone()
        if row is not None:
            prices.append((source, record_from_json(row[0])))
    return prices + positions


def _stored_sources(conn: sqlite3.Connection) -> frozenset[str]:
    """Sources with stored records: one index step per source and kind, not a scan."""
    found: set[str] = set()
    for kind in RECORD_KINDS:
        row = conn.execute(f"SELECT min(source) FROM rec_{kind}").fetchone()
        while row is not None and row[0] is not None:
            found.add(row[0])
            row = conn.execute(
                f"SELECT min(source) FROM rec_{kind} WHERE source > ?", (row[0],)
            ).fetchone()
    return frozenset(found)


def _totals(conn: sqlite3.Connection) -> dict[tuple[str, ...], Decimal]:
    return {path_from_text(p): Decimal(a) for p, a in conn.execute("SELECT path, amount FROM totals")}


def load_persisted(path: Path) -> Persisted:
    """Read the epoch, the last document, the hot records, the cold totals and the open buckets."""
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
            return Persisted(epoch, seq, doc, _hot_records(conn), buckets, _totals(conn),
                             _stored_sources(conn))
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


class SqliteRecords:
    """The records SQLite holds, read through its own read-only connection (``pnl.StoredRecords``).

    Lookups by primary key, ``CHUNK`` ids per query; ``ids`` reads the index of
    one (source, kind). Reads see committed data only: the Book keeps what is
    not committed yet in memory.
    """

    CHUNK = 500

    def __init__(self, path: Path) -> None:
        self.conn = open_reader(path)
        self.queries = 0

    def __repr__(self) -> str:
        return f"<SqliteRecords queries={self.queries}>"

    def get(self, source: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        if kind not in RECORD_KINDS:
            return {}
        found: dict[str, Record] = {}
        for chunk in _chunks(ids, self.CHUNK):
            marks = ",".join("?" * len(chunk))
            self.queries += 1
            rows = self._read(
                f"SELECT id, body FROM rec_{kind} WHERE source = ? AND id IN ({marks})",
                (source, *chunk),
            )
            found.update((i, record_from_json(body)) for i, body in rows)
        return found

    def get_many(
        self, source: str, wanted: Mapping[str, Sequence[str]]
    ) -> dict[tuple[str, str], Record]:
        """``get`` for several kinds in one query (one read transaction).

        The ids of each kind travel as one JSON array (``json_each``), so the
        SQL text depends only on the kinds asked and SQLite's statement cache
        keeps it prepared. The engine asks once per reading.
        """
        kinds = sorted(kind for kind, ids in wanted.items() if ids and kind in RECORD_KINDS)
        if not kinds:
            return {}
        sql = " UNION ALL ".join(
            f"SELECT '{kind}', id, body FROM rec_{kind}"
            f" WHERE source = ?1 AND id IN (SELECT value FROM json_each(?{n}))"
            for n, kind in enumerate(kinds, start=2)
        )
        params = [source, *(json.dumps(list(wanted[kind])) for kind in kinds)]
        self.queries += 1
        rows = self._read(sql, params)
        return {(kind, i): record_from_json(body) for kind, i, body in rows}

    def ids(self, source: str, kind: str) -> set[str]:
        if kind not in RECORD_KINDS:
            return set()
        self.queries += 1
        return {i for (i,) in self._read(f"SELECT id FROM rec_{kind} WHERE source = ?", (source,))}

    def _read(self, sql: str, params: Sequence[object]) -> list[Any]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read stored records: {exc}") from exc

    def close(self) -> None:
        self.conn.close()


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

