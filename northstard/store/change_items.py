"""The per-record items of a change between two positions, read from the record log (blocking).

Used by ``explain`` for short ranges and by migration 5 to fill the rollup of
an existing database (the writer has each change's sums from the engine).
Reads two range reads over the versions stored or ended in the range, then
one price lookup per market involved and the positions of each market whose
price moved.

Bound: what it reads is the versions stored or ended in the range
(``versions_touched``, an index-only count, tells how many before reading):
``explain`` calls it for ranges of at most ``explain_read.RECORD_ITEMS_MAX``
of them and answers longer ones from the rollup; migration 5 for one change.
"""

from __future__ import annotations

import sqlite3

from northstard.core.explain import Item, explain_items
from northstard.core.pnl import RevenueBasis
from northstard.core.records import KeyChange, Position, Price, Record, record_from_json
from northstard.store.record_log import version_at

__all__ = ["OPEN_POSITIONS", "items_between", "versions_touched"]

# one range of the partial index rec_log_open_position
OPEN_POSITIONS = ("SELECT body FROM rec_log INDEXED BY rec_log_open_position WHERE ticker = ?"
                  " AND source = ? AND kind = 'position' AND ended_seq IS NULL")


def versions_touched(conn: sqlite3.Connection, start: int, end: int) -> int:
    """How many record versions were stored or ended in (start, end]: two index-only counts,
    at least the number of keys that changed."""
    stored = conn.execute("SELECT count(*) FROM rec_log WHERE seq > ? AND seq <= ?",
                          (start, end)).fetchone()[0]
    ended = conn.execute("SELECT count(*) FROM rec_log WHERE ended_seq > ? AND ended_seq <= ?",
                         (start, end)).fetchone()[0]
    return int(stored) + int(ended)


def _changes(conn: sqlite3.Connection, start: int, end: int) -> list[KeyChange]:
    """Every key whose record changed in (start, end], with its versions at both ends.

    Two range reads, no lookup per key: a version current at ``end`` and stored
    after ``start`` is a key's end version; a version current at ``start`` and
    ended by ``end`` is its start version (a key changes only by a new version
    or a retraction, both of which end the version before).
    """
    after = conn.execute(
        "SELECT source, kind, id, body FROM rec_log WHERE seq > ? AND seq <= ?"
        " AND (ended_seq IS NULL OR ended_seq > ?)", (start, end, end))
    before = conn.execute(
        "SELECT source, kind, id, body FROM rec_log WHERE ended_seq > ? AND ended_seq <= ?"
        " AND seq <= ?", (start, end, start))
    ends: dict[tuple[str, str, str], list[Record | None]] = {}
    for side, rows in ((1, after), (0, before)):
        for source, kind, record_id, body in rows:
            ends.setdefault((source, kind, record_id), [None, None])[side] = record_from_json(body)
    return [KeyChange(*key, old, new) for key, (old, new) in sorted(ends.items())]


def _market_positions(conn: sqlite3.Connection, source: str, ticker: str, seq: int,
                      latest: bool) -> list[Position]:
    """The positions in a market at ``seq``. At the newest position (``latest``) they are its
    open versions, one partial-index range (``rec_log_open_position``); before it, every
    version of the market's positions is visited (the ticker index)."""
    if latest:
        rows = conn.execute(OPEN_POSITIONS, (ticker, source)).fetchall()
    else:
        rows = conn.execute(
            "SELECT body FROM rec_log WHERE ticker = ? AND source = ? AND kind = 'position'"
            " AND seq <= ? AND (ended_seq IS NULL OR ended_seq > ?)",
            (ticker, source, seq, seq)).fetchall()
    found = [record_from_json(body) for (body,) in rows]
    return [p for p in found if isinstance(p, Position)]


def _price(conn: sqlite3.Connection, source: str, ticker: str, seq: int) -> Price | None:
    found = version_at(conn, (source, "price", ticker), seq)
    return found if isinstance(found, Price) else None


def items_between(conn: sqlite3.Connection, start: int, end: int, basis: RevenueBasis,
                  *, latest: bool = False) -> list[Item]:
    """The items of the change from position ``start`` to ``end`` (``core.explain``);
    ``latest``: ``end`` is the newest position in the log (nothing stored after it)."""
    changes = _changes(conn, start, end)
    moved = {(c.source, c.id) for c in changes if c.kind == "price"}
    markets = set(moved)
    for change in changes:
        for record in (change.before, change.after):
            if isinstance(record, Position):
                markets.add((change.source, record.ticker))
    prices = {m: (_price(conn, *m, start), _price(conn, *m, end)) for m in sorted(markets)}
    positions = {m: _market_positions(conn, *m, end, latest) for m in sorted(moved)}
    return explain_items(changes, positions, prices, basis)
