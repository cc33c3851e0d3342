"""The OpenAPI paths and schemas of the drill-down routes (records, explain, statement).

Built from the helpers of ``openapi`` (passed in, so this module stays a leaf).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["drill_paths", "drill_schemas"]

_LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
_NAME = {"type": ["string", "null"]}
_DAY = {"type": "string", "format": "date", "description": "YYYY-MM-DD (UTC days)"}


def _statement(obj: Callable[..., dict[str, object]], money_map: dict[str, object]) -> dict[str, object]:
    money = money_map["additionalProperties"]
    day = {"type": "string", "format": "date"}
    amounts = ("trading_realized", "trading_unrealized", "trading_fees", "revenue_invoiced",
               "revenue_collected", "costs_total", "net")
    row = obj({"start": day, "end": day, **dict.fromkeys(amounts, money),
               "costs_by_category": money_map,
               "margin_pct": {"anyOf": [money, {"type": "null"}],
                              "description": "null while the period's revenue is not positive"}},
              ("start", "end", *amounts, "costs_by_category", "margin_pct"))
    return obj({"period": {"enum": ["day", "week", "month", "quarter"]},
                "currency": {"type": "string"},
                "rows": {"type": "array", "items": row, "maxItems": 366}},
               ("period", "currency", "rows"))


def drill_schemas(obj: Callable[..., dict[str, Any]], money_map: dict[str, Any],
                  time: dict[str, Any]) -> dict[str, Any]:
    change = obj({"at": time, "action": {"enum": ["stored", "replaced", "retracted"]},
                  "seq": {"type": "integer", "minimum": 0}}, ("at", "action"))
    record = obj({
        "source": {"type": "string"}, "kind": {"type": "string"}, "id": {"type": "string"},
        "time": time, "fields": {"type": "object"},
        "contributions": {**money_map, "description": "figure path -> this record's part of it"},
        "status": {"enum": ["current", "replaced", "retracted"]},
        "changes": {"type": "array", "items": change, "maxItems": 2},
    }, ("source", "kind", "id", "time", "fields", "contributions", "status", "changes"))
    position = obj({"position": {"type": "string"}, "as_of": {"type": ["string", "null"]}},
                   ("position", "as_of"))
    item = obj({"source": {"type": "string"}, "kind": {"type": "string"}, "id": {"type": "string"},
                "label": {"type": "string"}, "agent": _NAME, "model": _NAME, "ticker": _NAME,
                "contributions": money_map},
               ("source", "kind", "id", "label", "contributions"))
    groups = {"type": "object", "additionalProperties": money_map}
    return {
        "Records": obj({"records": {"type": "array", "items": record, "maxItems": 1000},
                        "next_cursor": {"type": "string"}}, ("records",)),
        "Explain": obj({"from": position, "to": position, "difference": money_map,
                        "items_by": {"enum": ["record", "group"], "description":
                                     "record: an item per changed record (ranges of at most "
                                     "2,000 versions stored or ended); group: an item per group key "
                                     "(source, kind, agent, model, ticker; id empty)"},
                        "items": {"type": "array", "items": item},
                        "groups": obj({name: groups for name in
                                       ("source", "kind", "agent", "model", "ticker")},
                                      ("source", "kind", "agent", "model", "ticker"))},
                       ("from", "to", "difference", "items_by", "items", "groups")),
        "Statement": _statement(obj, money_map),
        "Gone": obj({"error": {"const": "position_gone"}, "detail": {"type": "string"},
                     "message": {"type": "string"}}, ("error", "detail", "message")),
    }


def drill_paths(get: Callable[..., object], json: Callable[..., object], ref: Callable[[str], object],
                error: dict[str, Any], instant: dict[str, Any], position: dict[str, Any]
                ) -> dict[str, object]:
    def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": schema, "description": description}

    return {
        "/api/records": get(
            "Stored records (every version with status=all), each with its contribution to every "
            "figure; ordered by time, source, kind, id; cursor-paginated",
            {"200": json("a page of records", ref("Records")), "400": error},
            [query("source", _TEXT), query("kind", _TEXT), query("agent", _TEXT),
             query("model", _TEXT), query("ticker", _TEXT),
             query("from_time", instant, "the record's own time, inclusive"),
             query("to_time", instant, "exclusive"),
             query("status", {"enum": ["current", "all"]}),
             query("cursor", {"type": "string"}, "next_cursor of the page before"),
             query("limit", _LIMIT)],
        ),
        "/api/pnl/explain": get(
            "The records behind the change between two positions: items summing exactly to "
            "the difference of every figure",
            {"200": json("the explanation", ref("Explain")), "400": error,
             "410": json("a position no longer held (position_gone)", ref("Gone"))},
            [query("from", position), query("to", position), query("from_time", instant),
             query("to_time", instant), query("limit", _LIMIT)],
        ),
        "/api/pnl/statement": get(
            "One row per period (day, week, month, quarter) from the stored documents; "
            "format=csv or Accept: text/csv for a spreadsheet",
            {"200": {"description": "the statement",
                     "content": {"application/json": {"schema": ref("Statement")},
                                 "text/csv": {"schema": {"type": "string"}}}},
             "400": error,
             "410": json("a boundary older than the stored changes (position_gone)", ref("Gone"))},
            [{**query("from", _DAY), "required": True}, {**query("to", _DAY), "required": True},
             query("period", {"enum": ["day", "week", "month", "quarter"]}),
             query("format", {"enum": ["json", "csv"]})],
        ),
    }
