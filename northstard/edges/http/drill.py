"""Drill-down routes: the records behind the figures, explain, statements.

Every read runs on its own read-only SQLite connection in a worker thread
(never on the event loop), and each is bounded: see ``record_pages``,
``explain`` and ``statement`` for the rows a request may visit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from datetime import date
from typing import TypeVar

import trio
from quart import Quart, Response, jsonify, request

from northstard.actors.hub import Position, parse_position
from northstard.core.change import dumps
from northstard.core.statement import PERIODS, csv_text
from northstard.edges.http.context import WebContext
from northstard.errors import RequestError
from northstard.policy.params import parse_instant
from northstard.store.explain_read import database_epoch, explain, position_at_ms, statement
from northstard.store.record_pages import MAX_LIMIT, RecordQuery, decode_cursor, encode_cursor, read_page
from northstard.store.sqlite import RECORD_KINDS, open_reader

__all__ = ["add_drill_routes", "parse_limit", "read_db"]

_T = TypeVar("_T")


def parse_limit(args: Mapping[str, str], default: int, most: int) -> int:
    text = args.get("limit")
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= most:
        raise RequestError("bad_parameter", f"limit: expected an integer from 1 to {most}")
    return int(text)


def _text(args: Mapping[str, str], name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if not value or len(value) > 200:
        raise RequestError("bad_parameter", f"{name}: expected 1 to 200 characters")
    return value


def records_query(args: Mapping[str, str]) -> RecordQuery:
    """The records page a request asks for; RequestError (400) naming a bad parameter."""
    kind = _text(args, "kind")
    if kind is not None and kind not in RECORD_KINDS:
        raise RequestError("bad_parameter", f"kind: one of {', '.join(RECORD_KINDS)}")
    status = args.get("status", "current")
    if status not in ("current", "all"):
        raise RequestError("bad_parameter", "status: current or all")
    from_ms = parse_instant("from_time", args["from_time"]) if "from_time" in args else None
    to_ms = parse_instant("to_time", args["to_time"]) if "to_time" in args else None
    cursor = args.get("cursor")
    return RecordQuery(
        source=_text(args, "source"), kind=kind, agent=_text(args, "agent"),
        model=_text(args, "model"), ticker=_text(args, "ticker"), from_ms=from_ms, to_ms=to_ms,
        status=status, after=decode_cursor(cursor) if cursor else None,
        limit=parse_limit(args, 100, MAX_LIMIT),
    )


async def read_db(ctx: WebContext, read: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``read`` on a fresh read-only connection in a worker thread."""

    def run() -> _T:
        with closing(open_reader(ctx.db_path)) as conn:
            return read(conn)

    return await trio.to_thread.run_sync(run)


def records_body(conn: sqlite3.Connection, query: RecordQuery) -> dict[str, object]:
    page = read_page(conn, query)
    body: dict[str, object] = {"records": page.records}
    if page.next_cursor is not None:
        body["next_cursor"] = encode_cursor(page.next_cursor)
    return body


def _position(args: Mapping[str, str], name: str) -> Position | None:
    text = args.get(name)
    if text is None:
        return None
    try:
        return parse_position(text)
    except ValueError:
        raise RequestError("bad_parameter", f"{name}: expected EPOCH:SEQ") from None


def explain_request(args: Mapping[str, str]) -> Callable[[sqlite3.Connection], dict[str, object]]:
    """The explain a request asks for, as a read of the database (400 naming a bad parameter)."""
    start, end = _position(args, "from"), _position(args, "to")
    start_ms = parse_instant("from_time", args["from_time"]) if "from_time" in args else None
    end_ms = parse_instant("to_time", args["to_time"]) if "to_time" in args else None
    if (start is None) == (start_ms is None):
        raise RequestError("bad_parameter", "from: give exactly one of from=EPOCH:SEQ and from_time")
    if end is not None and end_ms is not None:
        raise RequestError("bad_parameter", "to: give at most one of to=EPOCH:SEQ and to_time")
    limit = parse_limit(args, 100, MAX_LIMIT)

    def read(conn: sqlite3.Connection) -> dict[str, object]:
        epoch = start.epoch if start is not None else database_epoch(conn)
        first = start or Position(epoch, position_at_ms(conn, start_ms or 0))
        last = end if end_ms is None else Position(epoch, position_at_ms(conn, end_ms))
        return explain(conn, first, last, limit)

    return read


def _gone(exc: RequestError) -> Response:
    body = {"error": exc.error, "detail": exc.detail, "message": exc.detail}
    return Response(dumps(body), status=exc.status, mimetype="application/json")


def _day(args: Mapping[str, str], name: str) -> date:
    text = args.get(name)
    if text is None:
        raise RequestError("bad_parameter", f"{name}: required (YYYY-MM-DD)")
    try:
        if len(text) != len("YYYY-MM-DD"):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise RequestError("bad_parameter", f"{name}: expected YYYY-MM-DD") from None


def statement_request(args: Mapping[str, str], accept: str) -> tuple[str, date, date, bool]:
    """(period, from, to, as CSV) of a statement request (400 naming a bad parameter)."""
    period = args.get("period", "month")
    if period not in PERIODS:
        raise RequestError("bad_parameter", f"period: one of {', '.join(PERIODS)}")
    fmt = args.get("format")
    if fmt not in (None, "json", "csv"):
        raise RequestError("bad_parameter", "format: json or csv")
    as_csv = fmt == "csv" or (fmt is None and "text/csv" in accept)
    return period, _day(args, "from"), _day(args, "to"), as_csv


def add_drill_routes(app: Quart, ctx: WebContext) -> None:
    @app.route("/api/pnl/statement")
    async def statement_route() -> Response:
        period, start, end, as_csv = statement_request(request.args, request.headers.get("Accept", ""))
        try:
            body = await read_db(ctx, lambda conn: statement(conn, period, start, end))
        except RequestError as exc:
            if exc.status == 410:
                return _gone(exc)
            raise
        if as_csv:
            name = f"statement-{period}-{start}-{end}.csv"
            return Response(csv_text(body["rows"]), mimetype="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return jsonify(body)

    @app.route("/api/pnl/explain")
    async def explain_route() -> Response:
        read = explain_request(request.args)
        try:
            return jsonify(await read_db(ctx, read))
        except RequestError as exc:
            if exc.status == 410:
                return _gone(exc)
            raise

    @app.route("/api/records")
    async def records() -> Response:
        query = records_query(request.args)
        return jsonify(await read_db(ctx, lambda conn: records_body(conn, query)))
