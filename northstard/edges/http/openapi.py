"""The OpenAPI 3.1 description of the REST routes (served at /openapi.json)."""

from __future__ import annotations

import copy
from typing import Any

from northstard.edges.http.alertsapi import ALERTS_PATH, ALERTS_SCHEMAS
from northstard.edges.http.openapi_drill import drill_paths, drill_schemas

__all__ = ["openapi_spec"]

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string",
                                                                             "pattern": "^[0-9]+$"}}}
_ERROR = {
    "description": "Bad parameter",
    "content": {"application/json": {"schema": _ref("Error")}},
}
_TOO_MANY = {
    "description": "over the client's request rate (rate_limited) or another per-client budget "
                   "(too_many_resumes, too_many_streams): retry after Retry-After",
    "headers": _RETRY_AFTER,
    "content": {"application/json": {"schema": _ref("Error")}},
}
_OTHER = {
    "description": "any other refusal (404 not_found, 405 method_not_allowed, 408, 431, 503 "
                   "server_busy at the connection cap): a JSON error",
    "content": {"application/json": {"schema": _ref("Error")}},
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


def _get(summary: str, responses: dict[str, object], params: list[object] | None = None) -> object:
    """One GET operation; every route can also answer 429 and the other refusals."""
    every = {**responses, "429": _TOO_MANY, "default": _OTHER}
    return {"get": {"summary": summary, "parameters": params or [], "responses": every}}


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
_UNAUTHORIZED = {
    **_json("no accepted token", _ref("Error")),
    "headers": {"WWW-Authenticate": {"description": 'Bearer (error="invalid_token" when one was sent)',
                                     "schema": {"type": "string"}}},
}


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
                 cookie_name: str = "northstard_session") -> dict[str, object]:
    """The description, with the limits (and the auth) this daemon is configured with."""
    spec: dict[str, Any] = copy.deepcopy(_OPENAPI)
    changes = spec["paths"]["/api/pnl/changes"]["get"]["parameters"]
    changes[1]["schema"]["maximum"] = longpoll_max_s
    if auth:
        _with_auth(spec, open_paths, cookie_name)
    return spec


_MONEY = {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2,}$",
          "description": "an exact decimal amount, at least two decimals"}
_TIME = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601 with milliseconds"}
_COUNT = {"type": "integer", "minimum": 0}
_MONEY_MAP = {"type": "object", "additionalProperties": _MONEY}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": extra}


def _money_obj(*keys: str) -> dict[str, object]:
    return _obj(dict.fromkeys(keys, _MONEY), keys)


_SOURCE_STATE = _obj({
    "plugin": {"type": "string"},
    "status": {"enum": ["ok", "stale", "degraded", "failing"]},
    "stale": {"type": "boolean"},
    "as_of": _TIME,
    "last_error": {"type": "string"},
}, ("plugin", "status", "stale"))
_DOCUMENT_PARTS: dict[str, object] = {
    "as_of": _TIME,
    "currency": {"type": "string"},
    "net_pnl": _MONEY,
    "trading": _money_obj("realized", "unrealized", "fees", "total", "balance"),
    "revenue": _obj({"invoiced": _MONEY, "collected": _MONEY,
                     "basis": {"enum": ["invoiced", "collected"]}}, ("invoiced", "collected", "basis")),
    "costs": _obj({"total": _MONEY, "estimated": _MONEY, "by_category": _MONEY_MAP, "by_model": _MONEY_MAP},
                  ("total", "estimated", "by_category", "by_model")),
    "gross_margin_pct": {**_MONEY, "description": "absent while revenue <= 0"},
    "change": _obj({"day": {"type": "string"}, "since_midnight": _MONEY, "since_previous": _MONEY},
                   ("day", "since_midnight", "since_previous")),
    "agents": {"type": "object", "additionalProperties": _money_obj("trading", "revenue", "costs", "net")},
}
_DOCUMENT_KEYS = ("as_of", "currency", "net_pnl", "trading", "revenue", "costs", "change", "agents")
_POSITION_FIELDS: dict[str, object] = {"epoch": {"type": "string"}, "seq": _COUNT}
_OHLC = _money_obj("open", "close", "min", "max")
_BUCKET = _obj({"start": _TIME, "start_ms": _COUNT, "net": _OHLC, "trading": _OHLC, "revenue": _OHLC,
                "costs": _OHLC}, ("start", "start_ms", "net", "trading", "revenue", "costs"))
_SOURCE_ENTRY = _obj({
    **_SOURCE_STATE["properties"],
    "name": {"type": "string"},
    "interval_s": {"type": "number"},
    "enabled": {"type": "boolean"},
    "breaker": {"enum": ["closed", "open", "half_open"]},
    "polls": _COUNT,
    "errors": _COUNT,
    "last_latency_ms": {"type": "number", "minimum": 0},
    "streaming": {"type": "boolean"},
}, ("name",))
_STATUS = {"type": "object", "required": ["status"], "properties": {
    "status": {"type": "string"}, "error": {"type": "string"}, "address": {"type": "string"},
    "failures": _COUNT, "last_success": _TIME}}

_SCHEMAS: dict[str, object] = {
    "Error": _obj({"error": {"type": "string"}, "detail": {"type": "string"}}, ("error", "detail")),
    "Document": _obj({**_DOCUMENT_PARTS,
                      "sources": {"type": "object", "additionalProperties": _SOURCE_STATE}},
                     (*_DOCUMENT_KEYS, "sources")),
    "Snapshot": _obj({"type": {"const": "snapshot"}, **_POSITION_FIELDS, "ts": _COUNT,
                      "data": _ref("Document")}, ("type", "epoch", "seq", "ts", "data")),
    "Delta": _obj({"type": {"const": "delta"}, **_POSITION_FIELDS, "prev": _COUNT, "ts": _COUNT,
                   "patch": {"type": "object", "description": "an RFC 7396 merge patch of the Document"}},
                  ("type", "epoch", "seq", "prev", "ts", "patch")),
    "Unchanged": _obj({"type": {"const": "unchanged"}, **_POSITION_FIELDS}, ("type", "epoch", "seq")),
    "Change": {"oneOf": [_ref("Snapshot"), _ref("Delta"), _ref("Unchanged")]},
    "History": _obj({"resolution": {"enum": ["1m", "5m", "1h", "1d"]}, "from": _TIME, "to": _TIME,
                     "buckets": {"type": "array", "items": _BUCKET, "maxItems": 5000}},
                    ("resolution", "from", "to", "buckets")),
    "Breakdown": _obj({**_POSITION_FIELDS, **_DOCUMENT_PARTS}, ("epoch", "seq", *_DOCUMENT_KEYS)),
    "Sources": _obj({"sources": {"type": "array", "items": _SOURCE_ENTRY}}, ("sources",)),
    "CacheStats": _obj({
        "hits": _COUNT, "misses": _COUNT,
        "hit_ratio": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "history_entries": _COUNT, "history_bytes": _COUNT, "history_max_bytes": _COUNT,
        "current": {"type": ["string", "null"], "description": "the current ETag"},
    }, ("hits", "misses", "hit_ratio", "history_entries", "history_bytes", "history_max_bytes",
        "current")),
    "Health": _obj({
        "status": {"enum": ["ok", "degraded", "failing"]},
        **_POSITION_FIELDS,
        "uptime_s": {"type": "number", "minimum": 0},
        "actors": {"type": "object", "additionalProperties": _obj(
            {"state": {"type": "string"}, "core": {"type": "boolean"}, "restarts": _COUNT,
             "last_error": {"type": "string"}}, ("state", "core", "restarts"))},
        "sources": {"type": "object", "additionalProperties": _SOURCE_STATE["properties"]["status"]},
        "clients": {"type": "object", "additionalProperties": _COUNT},
        "store": _STATUS, "backup": _STATUS, "grpc": _STATUS,
    }, ("status", "epoch", "seq", "uptime_s", "actors", "sources", "clients", "store", "backup", "grpc")),
}

_SCHEMAS.update(drill_schemas(_obj, _MONEY_MAP, _TIME))


_OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "northstard", "version": "1", "description": "Real-time P&L daemon"},
    "paths": {
        "/api/pnl/current": _get(
            "The current snapshot message (ETag EPOCH:SEQ; If-None-Match gives 304)",
            {"200": _json("snapshot", _ref("Snapshot")),
             "304": {"description": "Not modified"},
             "503": _json("no snapshot yet (not_ready)", _ref("Error"))},
            [{"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
        ),
        "/api/pnl/changes": _get(
            "The merged change since a position (long-poll with wait)",
            {"200": _json("delta, snapshot or unchanged", _ref("Change")), "400": _ERROR},
            [{**_SINCE, "required": True},
             {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0}}],
        ),
        "/api/pnl/history": _get(
            "History buckets (open/close/min/max of net, trading, revenue, costs)",
            {"200": _json("buckets", _ref("History")), "400": _ERROR},
            [{"name": "from", "in": "query", "schema": _INSTANT},
             {"name": "to", "in": "query", "schema": _INSTANT},
             {"name": "resolution", "in": "query",
              "schema": {"type": "string", "enum": ["1m", "5m", "1h", "1d"]}}],
        ),
        "/api/pnl/breakdown": _get("Trading, revenue, costs and agents of the current snapshot",
                                   {"200": _json("breakdown", _ref("Breakdown"))}),
        "/api/sources": _get("Every source: status, as-of, breaker, poll figures",
                             {"200": _json("sources", _ref("Sources"))}),
        "/api/cache/stats": _get("Cache hits and misses", {"200": _json("stats", _ref("CacheStats"))}),
        "/api/health": _get("Liveness and per-actor state",
                            {"200": _json("ok or degraded", _ref("Health")),
                             "503": _json("failing: a core actor is down", _ref("Health"))}),
        "/api/pnl/stream": _get(
            "Server-sent events: snapshot, then deltas (Last-Event-ID resumes)",
            {"200": {"description": "the stream",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}},
             "400": _ERROR},
            [_SINCE, {"name": "Last-Event-ID", "in": "header", "schema": _POSITION}],
        ),
        **drill_paths(_get, _json, _ref, _ERROR, _INSTANT, _POSITION),
        "/metrics": _get("Prometheus metrics",
                         {"200": {"description": "the Prometheus text format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}}),
    },
    "components": {"schemas": _SCHEMAS},
}
_SCHEMAS.update(ALERTS_SCHEMAS)
_OPENAPI["paths"]["/api/alerts"] = {"get": {
    **ALERTS_PATH["get"],
    "responses": {**ALERTS_PATH["get"]["responses"], "429": _TOO_MANY, "default": _OTHER},
}}
