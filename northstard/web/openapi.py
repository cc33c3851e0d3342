"""The OpenAPI 3.1 description of the REST routes (served at /openapi.json)."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["openapi_spec"]

_ERROR = {
    "description": "Bad parameter",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_POSITION = {"type": "string", "pattern": "^[^:]+:[0-9]{1,18}$"}
_SINCE = {
    "name": "since", "in": "query", "schema": _POSITION,
    "description": "resume position EPOCH:SEQ",
}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _get(summary: str, responses: dict[str, Any], params: list[Any] | None = None) -> Any:
    return {"get": {"summary": summary, "parameters": params or [], "responses": responses}}


_INSTANT = {
    "type": "string",
    "description": "ISO 8601 (UTC when no zone is given) or epoch milliseconds",
    "anyOf": [
        {"pattern": "^[0-9]{1,15}$"},
        {"format": "date-time"},
    ],
}


_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "an API token (`northstard token new`)"},
    "session": {"type": "apiKey", "in": "cookie", "name": "northstard_session",
                "description": "the browser session set by POST /login or a ?token= link"},
}
_UNAUTHORIZED = _json("no accepted token (WWW-Authenticate: Bearer)", {"$ref": "#/components/schemas/Error"})


def _with_auth(spec: dict[str, Any], open_paths: tuple[str, ...], cookie_name: str) -> None:
    """Tokens configured: every operation needs one, except the open paths."""
    schemes = copy.deepcopy(_SECURITY_SCHEMES)
    schemes["session"]["name"] = cookie_name
    spec["components"]["securitySchemes"] = schemes
    spec["security"] = [{"bearer": []}, {"session": []}]
    for path, item in spec["paths"].items():
        if path in open_paths:
            item["get"]["security"] = []
        else:
            item["get"]["responses"]["401"] = _UNAUTHORIZED


def openapi_spec(longpoll_max_s: float, auth: bool = False, open_paths: tuple[str, ...] = (),
                 cookie_name: str = "northstard_session") -> dict[str, Any]:
    """The description, with the limits (and the auth) this daemon is configured with."""
    spec: dict[str, Any] = copy.deepcopy(_OPENAPI)
    changes = spec["paths"]["/api/pnl/changes"]["get"]["parameters"]
    changes[1]["schema"]["maximum"] = longpoll_max_s
    if auth:
        _with_auth(spec, open_paths, cookie_name)
    return spec


_OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "northstard", "version": "1", "description": "Real-time P&L daemon"},
    "paths": {
        "/api/pnl/current": _get(
            "The current snapshot message (ETag EPOCH:SEQ; If-None-Match gives 304)",
            {"200": _json("snapshot", {"$ref": "#/components/schemas/Snapshot"}),
             "304": {"description": "Not modified"},
             "503": _json("no snapshot yet", {"$ref": "#/components/schemas/Error"})},
            [{"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
        ),
        "/api/pnl/changes": _get(
            "The merged change since a position (long-poll with wait)",
            {"200": _json("delta, snapshot or unchanged"), "400": _ERROR},
            [{**_SINCE, "required": True},
             {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0}}],
        ),
        "/api/pnl/history": _get(
            "History buckets (open/close/min/max of net, trading, revenue, costs)",
            {"200": _json("buckets"), "400": _ERROR},
            [{"name": "from", "in": "query", "schema": _INSTANT},
             {"name": "to", "in": "query", "schema": _INSTANT},
             {"name": "resolution", "in": "query",
              "schema": {"type": "string", "enum": ["1m", "5m", "1h", "1d"]}}],
        ),
        "/api/pnl/breakdown": _get("Trading, revenue, costs and agents of the current snapshot",
                                   {"200": _json("breakdown")}),
        "/api/sources": _get("Every source: status, as-of, breaker, poll figures",
                             {"200": _json("sources")}),
        "/api/cache/stats": _get("Cache hits and misses", {"200": _json("stats")}),
        "/api/health": _get("Liveness and per-actor state",
                            {"200": _json("healthy"), "503": _json("a core actor is down")}),
        "/api/pnl/stream": _get(
            "Server-sent events: snapshot, then deltas (Last-Event-ID resumes)",
            {"200": {"description": "text/event-stream"}, "400": _ERROR},
            [_SINCE, {"name": "Last-Event-ID", "in": "header", "schema": _POSITION}],
        ),
        "/metrics": _get("Prometheus metrics", {"200": {"description": "text/plain"}}),
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "detail"],
                "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
            },
            "Snapshot": {
                "type": "object",
                "required": ["type", "epoch", "seq", "ts", "data"],
                "properties": {
                    "type": {"const": "snapshot"},
                    "epoch": {"type": "string"},
                    "seq": {"type": "integer"},
                    "ts": {"type": "integer"},
                    "data": {"type": "object"},
                },
            },
        }
    },
}
