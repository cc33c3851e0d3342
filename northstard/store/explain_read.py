"""What ``explain`` reads from SQLite (blocking; a read-only connection).

Held positions. A position ``E:N`` is held when ``E`` is the database's
epoch, N is at or after the start of the record log (``record_log.log_from``)
and the document at N can be rebuilt: from the newest stored snapshot at or
before N (or the empty document at 0) plus the stored deltas after it, with
no gap. The writer keeps deltas and snapshots for ``storage.keep_deltas_days``:
older positions answer 410 ``position_gone``. All of it is on disk, so it
holds across restarts.

Bounds: rebuilding a document reads at most ``snapshot_every`` deltas (the
snapshot interval). A range in which at most ``RECORD_ITEMS_MAX`` versions were
stored or ended (index-only counts) is answered record by record, reading those versions;
a longer one, of any length, from the rollup (``rollup``): two index seeks per
group key changed in the range, one item per group key. The answer holds at
most ``limit`` items plus one "other".
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from northstard.core.contributions import Figures, add_into, figures, formatted, subtract
from northstard.core.explain import Item, group_item, grouped, limited, rendered
from northstard.core.mergepatch import Doc, apply_patch
from northstard.core.position import Position as StreamPosition
from northstard.core.statement import boundaries, row
from northstard.errors import RequestError
from northstard.store.change_items import items_between, versions_touched
from northstard.store.record_log import log_from
from northstard.store.record_pages import revenue_basis
from northstard.store.rollup import group_sums

__all__ = ["RECORD_ITEMS_MAX", "database_epoch", "doc_at", "explain", "position_at_ms", "statement"]

RECORD_ITEMS_MAX = 2_000  # versions stored or ended in a range answered record by record; more: by group
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


@dataclass(frozen=True)
class Ends:
    start: int
    end: int
    before: Doc
    after: Doc


def _items(conn: sqlite3.Connection, start: int, end: int,
           record_items_max: int) -> tuple[str, list[Item]]:
    """Per-record items for a short range, one item per group key from the rollup otherwise."""
    if versions_touched(conn, start, end) <= record_items_max:
        latest = end == _current(conn)[0]
        return "record", items_between(conn, start, end, revenue_basis(conn), latest=latest)
    return "group", [group_item(key, sums) for key, sums in sorted(group_sums(conn, start, end).items())]


def _position_doc(position: StreamPosition, doc: Doc) -> dict[str, object]:
    return {"position": f"{position.epoch}:{position.seq}", "as_of": doc.get("as_of")}


@contextmanager
def _one_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Every read inside sees the same committed state (one WAL read transaction), so the
    documents, the log and the rollup agree even while the writer commits."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.rollback()


def explain(conn: sqlite3.Connection, start: StreamPosition, end: StreamPosition | None,
            limit: int, *, record_items_max: int = RECORD_ITEMS_MAX) -> dict[str, Any]:
    """The explain answer between two positions (``end`` None: the current one).

    ``items_by`` says what an item is: one record (``record``: ranges of at most
    ``record_items_max`` versions stored or ended) or every record of one group key
    (``group``: longer ranges, from the rollup)."""
    with _one_snapshot(conn):
        return _explain(conn, start, end, limit, record_items_max)


def _explain(conn: sqlite3.Connection, start: StreamPosition, end: StreamPosition | None,
             limit: int, record_items_max: int) -> dict[str, Any]:
    _check_held(conn, "from", start)
    if end is None:
        end = StreamPosition(start.epoch, _current(conn)[0])
    _check_held(conn, "to", end)
    if end.seq < start.seq:
        raise RequestError("bad_parameter", "to: before from")
    ends = Ends(start.seq, end.seq, doc_at(conn, start.seq), doc_at(conn, end.seq))
    difference = subtract(figures(ends.after), figures(ends.before))
    items_by, items = _items(conn, ends.start, ends.end, record_items_max)
    _add_unexplained(items, difference)
    return {
        "from": _position_doc(start, ends.before), "to": _position_doc(end, ends.after),
        "difference": formatted(difference), "items_by": items_by,
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
