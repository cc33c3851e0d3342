"""``GET /api/alerts``: the current alerts, a page of history, the dead letters; long-poll with ``after``.

    GET /api/alerts?limit=50&before=ID        current + history page (newest first) + dead letters
    GET /api/alerts?after=ID&wait=S           also ``events``: what came after ID (waits up to S)

Each page is one indexed query of at most ``MAX_LIMIT`` rows.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import trio
from quart import Quart, Response, jsonify, request

from northstard.edges.http.context import WebContext
from northstard.errors import RequestError
from northstard.policy.params import parse_wait
from northstard.store import alertstore
from northstard.store.sqlite import open_reader

__all__ = ["ALERTS_PATH", "ALERTS_SCHEMAS", "add_alert_routes"]

MAX_LIMIT = 200
DEAD_SHOWN = 50


def _id_arg(name: str, default: int | None) -> int | None:
    text = request.args.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise RequestError("bad_parameter", f"{name}: expected an alert event id (digits)")
    return int(text)


def _read(ctx: WebContext, before: int | None, limit: int) -> tuple[list[Any], list[Any], int]:
    with closing(open_reader(ctx.db_path)) as conn:
        return (alertstore.history(conn, before, limit), alertstore.dead_letters(conn, DEAD_SHOWN),
                alertstore.outbox_size(conn))


def add_alert_routes(app: Quart, ctx: WebContext) -> None:
    @app.route("/api/alerts")
    async def alerts() -> Response:
        feed = ctx.alerts
        if feed is None:
            raise RequestError("not_found", "alerts are off", 404)
        limit = _id_arg("limit", 50) or 1
        if limit > MAX_LIMIT:
            raise RequestError("bad_parameter", f"limit: at most {MAX_LIMIT}")
        before = _id_arg("before", None)
        after = _id_arg("after", None)
        wait = parse_wait(request.args, ctx.server.longpoll_max_s)  # checked even unused
        body: dict[str, object] = {}
        if after is not None:
            with trio.move_on_after(wait):
                await feed.wait_after(after)
            body["events"] = feed.after(after)
        history, dead, outbox = await trio.to_thread.run_sync(_read, ctx, before, limit)
        body.update({
            "current": sorted(feed.current.values(), key=lambda b: b["id"]),
            "last_id": feed.last_id,
            "history": history,
            "next_before": history[-1]["id"] if len(history) == limit else None,
            "dead_letters": dead,
            "outbox": outbox,
        })
        return jsonify(body)


_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "alert": {"type": "string"},
        "event": {"type": "string", "enum": ["pending", "firing", "resolved", "cleared"]},
        "severity": {"type": "string", "enum": ["info", "warning", "critical"]},
        "kind": {"type": "string"}, "ts": {"type": "integer"}, "epoch": {"type": "string"},
        "seq": {"type": "integer"}, "value": {"type": "string"}, "threshold": {"type": "string"},
        "text": {"type": "string"}, "description": {"type": "string"},
        "explain": {"type": "string", "description": "the explain link of the change that moved it"},
    },
    "required": ["id", "alert", "event", "severity", "ts", "epoch", "seq", "text", "explain"],
}
_DEAD = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "notifier": {"type": "string"},
                   "attempts": {"type": "integer"}, "error": {"type": ["string", "null"]},
                   "event": {"$ref": "#/components/schemas/AlertEvent"}},
    "required": ["id", "notifier", "attempts", "event"],
}
ALERTS_SCHEMAS: dict[str, object] = {
    "AlertEvent": _EVENT,
    "Alerts": {
        "type": "object",
        "properties": {
            "current": {"type": "array", "items": {"$ref": "#/components/schemas/AlertEvent"}},
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/AlertEvent"}},
            "history": {"type": "array", "items": {"$ref": "#/components/schemas/AlertEvent"}},
            "next_before": {"type": ["integer", "null"]},
            "last_id": {"type": "integer"},
            "dead_letters": {"type": "array", "items": _DEAD},
            "outbox": {"type": "integer", "minimum": 0, "description": "notifications waiting"},
        },
        "required": ["current", "history", "next_before", "last_id", "dead_letters", "outbox"],
    },
}
_ID = {"type": "string", "pattern": "^[0-9]{1,18}$"}
ALERTS_PATH: dict[str, Any] = {"get": {
    "summary": "Current alerts, history (newest first, paginated with before), dead letters; "
               "long-poll new events with after and wait",
    "parameters": [
        {"name": "limit", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{1,3}$"}},
        {"name": "before", "in": "query", "schema": _ID},
        {"name": "after", "in": "query", "schema": _ID},
        {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0}},
    ],
    "responses": {
        "200": {"description": "alerts", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Alerts"}}}},
        "400": {"description": "Bad parameter", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}},
    },
}}
