"""Pages of the record log for ``GET /api/records`` and ``northstard export`` (blocking reads).

A page is one index range read in the order ``(time, source, kind, id, seq)``
from a cursor: the index is chosen by the most selective filter given
(``record_log.LEADS``), the other filters are checked on each row. The rows
visited per page are bounded by ``SCAN_BUDGET``: when it runs out before the
page is full, the page is shorter and ``next_cursor`` continues from the last
row visited, so no request scans more than that many rows whatever the filters.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from northstard.core.contributions import figure_contributions, formatted
from northstard.core.pnl import RevenueBasis
from northstard.core.records import Position, Price, Record, record_from_json
from northstard.core.times import iso_from_ms
from northstard.errors import RequestError
from northstard.store.record_log import LEADS, ORDER

__all__ = ["SCAN_BUDGET", "Page", "RecordQuery", "decode_cursor", "encode_cursor", "read_page",
           "revenue_basis"]

SCAN_BUDGET = 20_000  # log rows visited per page at most
MAX_LIMIT = 1000
Cursor = tuple[int, str, str, str, int]


@dataclass(frozen=True)
class RecordQuery:
    """What a records page asks for; equality filters are None when not given."""

    source: str | None = None
    kind: str | None = None
    agent: str | None = None
    model: str | None = None
    ticker: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    status: str = "current"  # "current" | "all"
    after: Cursor | None = None
    limit: int = 100


@dataclass
class Page:
    records: list[dict[str, object]] = field(default_factory=list)
    next_cursor: Cursor | None = None
    visited: int = 0


def encode_cursor(cursor: Cursor) -> str:
    text = json.dumps(list(cursor), separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The position a ``next_cursor`` names; a RequestError naming ``cursor`` if it is not one."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        time_ms, source, kind, record_id, seq = raw
        if not (isinstance(time_ms, int) and isinstance(seq, int)
                and all(isinstance(v, str) for v in (source, kind, record_id))):
            raise ValueError("types")
    except (ValueError, TypeError, UnicodeDecodeError):
        raise RequestError("bad_parameter", "cursor: not a cursor this API returned") from None
    return time_ms, source, kind, record_id, seq


def revenue_basis(conn: sqlite3.Connection) -> RevenueBasis:
    """The revenue basis of the last published document (the engine's setting)."""
    row = conn.execute("SELECT doc FROM current WHERE id = 1").fetchone()
    basis = json.loads(row[0]).get("revenue", {}).get("basis") if row is not None else None
    return "collected" if basis == "collected" else "invoiced"


def _sql(query: RecordQuery) -> tuple[str, list[object]]:
    lead = next((name for name in LEADS if getattr(query, name) is not None), None)
    where: list[str] = []
    params: list[object] = []
    if lead is not None:
        where.append(f"{lead} = ?")
        params.append(getattr(query, lead))
    if query.from_ms is not None:
        where.append("time_ms >= ?")
        params.append(query.from_ms)
    if query.to_ms is not None:
        where.append("time_ms < ?")
        params.append(query.to_ms)
    if query.after is not None:
        where.append(f"({ORDER}) > (?, ?, ?, ?, ?)")
        params.extend(query.after)
    clause = " WHERE " + " AND ".join(where) if where else ""
    sql = ("SELECT time_ms, source, kind, id, seq, stored_ms, body, agent, model, ticker,"
           f" ended_seq, ended_ms, ended FROM rec_log{clause} ORDER BY {ORDER}")
    return sql, params


def query_plan(conn: sqlite3.Connection, query: RecordQuery) -> str:
    """SQLite's plan for a page of ``query`` (the tests check it reads an index, never scans)."""
    sql, params = _sql(query)
    return " | ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def _matches(query: RecordQuery, row: tuple[object, ...]) -> bool:
    _, source, kind, _, _, _, _, agent, model, ticker, ended_seq, _, _ = row
    if query.status == "current" and ended_seq is not None:
        return False
    wanted = (query.source, query.kind, query.agent, query.model, query.ticker)
    return all(w is None or w == v for w, v in zip(wanted, (source, kind, agent, model, ticker),
                                                    strict=True))


def _rows(conn: sqlite3.Connection, query: RecordQuery) -> Iterator[tuple[object, ...]]:
    sql, params = _sql(query)
    cursor = conn.execute(sql, params)
    while batch := cursor.fetchmany(256):
        yield from batch


def read_page(conn: sqlite3.Connection, query: RecordQuery, budget: int = SCAN_BUDGET) -> Page:
    """One page: up to ``query.limit`` matching versions, at most ``budget`` rows visited."""
    page = Page()
    found: list[tuple[object, ...]] = []
    last: Cursor | None = None
    exhausted = True
    for row in _rows(conn, query):
        if page.visited >= budget:
            exhausted = False
            break
        page.visited += 1
        if _matches(query, row):
            if len(found) == query.limit:
                exhausted = False  # one more exists: the page before it is full
                last = _key(found[-1])
                break
            found.append(row)
        last = _key(row)
    if not exhausted:
        page.next_cursor = last
    basis = revenue_basis(conn)
    prices = _prices(conn, found)
    page.records = [_entry(row, prices, basis) for row in found]
    return page


def _key(row: tuple[Any, ...]) -> Cursor:
    return row[0], row[1], row[2], row[3], row[4]


def _prices(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], Price]:
    """The current price of each market a position on the page is in (one lookup per market)."""
    markets = {(row[1], row[9]) for row in rows if row[2] == "position" and row[9]}
    found: dict[tuple[str, str], Price] = {}
    for source, ticker in sorted(markets):
        hit = conn.execute("SELECT body FROM rec_price WHERE source = ? AND id = ?",
                           (source, ticker)).fetchone()
        if hit is not None:
            price = record_from_json(hit[0])
            if isinstance(price, Price):
                found[source, ticker] = price
    return found


def _entry(row: tuple[Any, ...], prices: dict[tuple[str, str], Price],
           basis: RevenueBasis) -> dict[str, Any]:
    time_ms, source, kind, record_id, seq, stored_ms, body, _, _, _, ended_seq, ended_ms, ended = row
    record = record_from_json(body)
    status = ended or "current"
    changes: list[dict[str, object]] = [{"at": iso_from_ms(stored_ms), "action": "stored", "seq": seq}]
    if ended is not None:
        changes.append({"at": iso_from_ms(ended_ms), "action": ended, "seq": ended_seq})
    contributions = {} if status == "retracted" else formatted(
        figure_contributions(record, _price_for(record, source, prices), basis))
    return {
        "source": source, "kind": kind, "id": record_id, "time": iso_from_ms(time_ms),
        "fields": _fields(body), "contributions": contributions, "status": status,
        "changes": changes,
    }


def _price_for(record: Record, source: str, prices: dict[tuple[str, str], Price]) -> Price | None:
    return prices.get((source, record.ticker)) if isinstance(record, Position) else None


def _fields(body: str) -> dict[str, object]:
    """The record's stored fields as the log holds them (amounts already decimal strings)."""
    fields: dict[str, object] = json.loads(body)
    fields.pop("kind", None)
    return fields
