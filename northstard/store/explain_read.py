"""What ``explain`` reads from SQLite (blocking; a read-only connection).

Held positions. A position ``E:N`` is held when ``E`` is the database's
epoch, N is at or after the start of the record log (``record_log.log_from``)
and the document at N can be rebuilt: from the newest stored snapshot at or
before N (or the empty document at 0) plus the stored deltas after it, with
no gap. The writer keeps deltas and snapshots for ``storage.keep_deltas_days``:
older positions answer 410 ``position_gone``. All of it is on disk, so it
holds across restarts.

Bounds: rebuilding a document reads at most ``snapshot_every`` deltas (the
snapshot interval); at most ``MAX_KEYS`` changed records per request (more:
400 ``range_too_large``), each read by its key index.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from northstard.core.contributions import Figures, add_into, figures, formatted, subtract
from northstard.core.explain import Item, KeyChange, explain_items, grouped, limited, rendered
from northstard.core.mergepatch import Doc, apply_patch
from northstard.core.position import Position as StreamPosition
from northstard.core.records import Position, Price, Record, record_from_json
from northstard.core.statement import boundaries, row
from northstard.errors import RequestError
from northstard.store.record_log import log_from, version_at
from northstard.store.record_pages import revenue_basis

__all__ = ["MAX_KEYS", "database_epoch", "doc_at", "explain", "position_at_ms", "statement"]

MAX_KEYS = 50_000
MAX_DELTAS = 10_000  # deltas replayed to rebuild one document, whatever snapshot_every says


class Gone(RequestError):
    def __init__(self, detail: str) -> None:
        super().__init__("position_gone", detail, status=410)


def database_epoch(conn: sqlite3.Connection) -> str:
    return str(conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])


def _current(conn: sqlite3.Connection) -> tuple[int, Doc]:
    row = conn.execute("SELECT seq, doc FROM current WHERE id = 1").fetchone()
    return (row[0], json.loads(row[1])) if row is not None else (0, {})


def position_at_ms(conn: sqlite3.Connection, ms: int) -> int:
    """The position of the last change at or before ``ms`` (Gone if it is no longer held)."""
    epoch = database_epoch(conn)
    row = conn.execute("SELECT ts_ms FROM deltas WHERE epoch = ? AND ts_ms <= ?"
                       " ORDER BY ts_ms DESC LIMIT 1", (epoch, ms)).fetchone()
    if row is not None:
        seq = conn.execute("SELECT max(seq) FROM deltas WHERE epoch = ? AND ts_ms = ?",
                           (epoch, row[0])).fetchone()[0]
        return int(seq)
    first = conn.execute("SELECT min(seq) FROM deltas WHERE epoch = ?", (epoch,)).fetchone()[0]
    if first in (None, 1) and log_from(conn) == 0:
        return 0  # before the first change of this database
    raise Gone("that time is older than the stored changes (storage.keep_deltas_days)")


def doc_at(conn: sqlite3.Connection, seq: int) -> Doc:
    """The document at position ``seq`` (Gone if it cannot be rebuilt)."""
    current_seq, current = _current(conn)
    if seq > current_seq:
        raise RequestError("bad_parameter", f"position {seq} is ahead of the current {current_seq}")
    if seq == current_seq:
        return current
    epoch = database_epoch(conn)
    row = conn.execute("SELECT seq, doc FROM snapshots WHERE epoch = ? AND seq <= ?"
                       " ORDER BY seq DESC LIMIT 1", (epoch, seq)).fetchone()
    base, doc = (row[0], json.loads(row[1])) if row is not None else (0, {})
    if seq - base > MAX_DELTAS:
        raise Gone(f"no stored snapshot near position {seq}")
    patches = conn.execute("SELECT seq, patch FROM deltas WHERE epoch = ? AND seq > ? AND seq <= ?"
                           " ORDER BY seq", (epoch, base, seq)).fetchall()
    if len(patches) != seq - base:
        raise Gone(f"position {seq} is older than the stored changes (storage.keep_deltas_days)")
    for _, patch in patches:
        doc = apply_patch(doc, json.loads(patch))
    return doc


def _check_held(conn: sqlite3.Connection, name: str, position: StreamPosition) -> None:
    if position.epoch != database_epoch(conn):
        raise Gone(f"{name}: epoch {position.epoch} is not this database's")
    start = log_from(conn)
    if position.seq < start:
        raise Gone(f"{name}: the record log starts at position {start}")


def _changes(conn: sqlite3.Connection, start: int, end: int) -> list[KeyChange]:
    """Every key whose record changed in (start, end], with its versions at both ends.

    Two range reads, no lookup per key: a version current at ``end`` and stored
    after ``start`` is a key's end version; a version current at ``start`` and
    ended by ``end`` is its start version (a key changes only by a new version
    or a retraction, both of which end the version before).
    """
    stored = conn.execute("SELECT count(*) FROM rec_log WHERE seq > ? AND seq <= ?",
                          (start, end)).fetchone()[0]  # an index-only count: refuse before reading
    if stored > MAX_KEYS:
        raise RequestError("range_too_large", f"from: {stored} record versions were stored in the "
                           f"range, more than {MAX_KEYS}; ask a shorter one")
    after = conn.execute(
        "SELECT source, kind, id, body FROM rec_log WHERE seq > ? AND seq <= ?"
        " AND (ended_seq IS NULL OR ended_seq > ?) LIMIT ?", (start, end, end, MAX_KEYS + 1))
    before = conn.execute(
        "SELECT source, kind, id, body FROM rec_log WHERE ended_seq > ? AND ended_seq <= ?"
        " AND seq <= ? LIMIT ?", (start, end, start, MAX_KEYS + 1))
    ends: dict[tuple[str, str, str], list[Record | None]] = {}
    for side, rows in ((1, after), (0, before)):
        for source, kind, record_id, body in rows:
            ends.setdefault((source, kind, record_id), [None, None])[side] = record_from_json(body)
            if len(ends) > MAX_KEYS:
                raise RequestError("range_too_large", f"from: more than {MAX_KEYS} records changed "
                                   "in the range; ask a shorter one")
    return [KeyChange(*key, old, new) for key, (old, new) in sorted(ends.items())]


def _market_positions(conn: sqlite3.Connection, source: str, ticker: str, seq: int) -> list[Position]:
    rows = conn.execute(
        "SELECT body FROM rec_log WHERE ticker = ? AND source = ? AND kind = 'position'"
        " AND seq <= ? AND (ended_seq IS NULL OR ended_seq > ?)",
        (ticker, source, seq, seq)).fetchall()
    found = [record_from_json(body) for (body,) in rows]
    return [p for p in found if isinstance(p, Position)]


def _price(conn: sqlite3.Connection, source: str, ticker: str, seq: int) -> Price | None:
    found = version_at(conn, (source, "price", ticker), seq)
    return found if isinstance(found, Price) else None


@dataclass(frozen=True)
class Ends:
    start: int
    end: int
    before: Doc
    after: Doc


def _items_between(conn: sqlite3.Connection, ends: Ends) -> list[Item]:
    changes = _changes(conn, ends.start, ends.end)
    moved = {(c.source, c.id) for c in changes if c.kind == "price"}
    markets = set(moved)
    for change in changes:
        for record in (change.before, change.after):
            if isinstance(record, Position):
                markets.add((change.source, record.ticker))
    prices = {m: (_price(conn, *m, ends.start), _price(conn, *m, ends.end)) for m in sorted(markets)}
    positions = {m: _market_positions(conn, *m, ends.end) for m in sorted(moved)}
    return explain_items(changes, positions, prices, revenue_basis(conn))


def _position_doc(position: StreamPosition, doc: Doc) -> dict[str, object]:
    return {"position": f"{position.epoch}:{position.seq}", "as_of": doc.get("as_of")}


def explain(conn: sqlite3.Connection, start: StreamPosition, end: StreamPosition | None,
            limit: int) -> dict[str, object]:
    """The explain answer between two positions (``end`` None: the current one)."""
    _check_held(conn, "from", start)
    if end is None:
        end = StreamPosition(start.epoch, _current(conn)[0])
    _check_held(conn, "to", end)
    if end.seq < start.seq:
        raise RequestError("bad_parameter", "to: before from")
    ends = Ends(start.seq, end.seq, doc_at(conn, start.seq), doc_at(conn, end.seq))
    difference = subtract(figures(ends.after), figures(ends.before))
    items = _items_between(conn, ends)
    _add_unexplained(items, difference)
    return {
        "from": _position_doc(start, ends.before), "to": _position_doc(end, ends.after),
        "difference": formatted(difference),
        "items": [rendered(item) for item in limited(items, limit)],
        "groups": {name: {value: formatted(sums) for value, sums in values.items()}
                   for name, values in grouped(items).items()},
    }


def _add_unexplained(items: list[Item], difference: Figures) -> None:
    """Keep the sums exact even if the log missed something: the rest is one visible item.

    Does not happen with a log written by this writer (the tests prove the sums
    without it); a database edited by hand could need it.
    """
    total: Figures = {}
    for item in items:
        add_into(total, item.contributions)
    rest = subtract(difference, total)
    if rest:
        items.append(Item("", "unexplained", "", "not in the record log", rest))



def statement(conn: sqlite3.Connection, period: str, start: date, end: date) -> dict[str, Any]:
    """One row per period, from the documents at the boundaries (see ``statement``).

    Reads one document per boundary (``MAX_ROWS`` + 1 at most, each rebuilt from
    its snapshot and at most ``snapshot_every`` deltas); Gone when a boundary is
    older than the stored changes.
    """
    try:
        days = boundaries(period, start, end)
    except ValueError as exc:
        raise RequestError("bad_parameter", str(exc)) from None
    basis = revenue_basis(conn)
    at = [figures(doc_at(conn, position_at_ms(conn, _ms(day) - 1))) for day in days]
    rows = [row(days[i], days[i + 1], at[i], at[i + 1], basis) for i in range(len(days) - 1)]
    currency = _current(conn)[1].get("currency", "USD")
    return {"period": period, "currency": currency, "rows": rows}


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
