"""GetHistory and ListSources: the same answers as ``/api/pnl/history`` and ``/api/sources``.

``request_range`` applies ``buckets.history_range``, the rule REST applies;
``read_history`` runs in a worker thread on its own read-only SQLite connection. ``source_entries`` reads
trio-owned state, so it runs on the trio thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.actors.hub import Hub
from northstard.actors.source import SourceStats
from northstard.config import SourceSection
from northstard.core.buckets import history_range
from northstard.core.position import Position
from northstard.edges.grpc.convert import ms_from_timestamp, timestamp_from_iso, timestamp_from_ms
from northstard.errors import RequestError
from northstard.store.explain_read import database_epoch, explain, position_at_ms
from northstard.store.sqlite import open_reader, read_buckets

__all__ = ["explain_response", "history_response", "read_explain", "read_history", "request_range",
           "source_entries", "sources_response"]

SERIES = ("net", "trading", "revenue", "costs")


def request_range(request: pb.GetHistoryRequest, now_ms: int | None = None) -> tuple[str, int, int]:
    """(resolution, from_ms, to_ms) by the rule REST applies; ValueError names the bad field."""
    return history_range(
        request.resolution or None,
        ms_from_timestamp(request.from_time) if request.HasField("from_time") else None,
        ms_from_timestamp(request.to_time) if request.HasField("to_time") else None,
        int(time.time() * 1000) if now_ms is None else now_ms,
        names=("from_time", "to_time"),
    )


def read_history(db_path: Path, resolution: str, from_ms: int, to_ms: int) -> list[dict[str, object]]:
    """Blocking: the stored buckets (call it from a worker thread)."""
    with closing(open_reader(db_path)) as conn:
        return read_buckets(conn, resolution, from_ms, to_ms)


def _ohlc(values: Mapping[str, str]) -> pb.Ohlc:
    return pb.Ohlc(open=values["open"], close=values["close"], min=values["min"], max=values["max"])


def history_response(
    resolution: str, from_ms: int, to_ms: int, rows: list[dict[str, Any]]
) -> pb.GetHistoryResponse:
    response = pb.GetHistoryResponse(resolution=resolution, from_time=timestamp_from_ms(from_ms),
                                     to_time=timestamp_from_ms(to_ms))
    for row in rows:
        bucket = response.buckets.add(start=timestamp_from_ms(row["start_ms"]))
        for name in SERIES:
            if name in row:
                getattr(bucket, name).CopyFrom(_ohlc(row[name]))
    return response


def source_entries(
    hub: Hub, sections: Mapping[str, SourceSection], stats: Mapping[str, SourceStats]
) -> list[dict[str, object]]:
    """Every source as /api/sources describes it. Trio thread only: it reads the actors' state."""
    documented = hub.doc.get("sources", {})
    entries = []
    for name in sorted(set(sections) | set(documented)):
        entry: dict[str, object] = {"name": name, **documented.get(name, {})}
        section = sections.get(name)
        if section is not None:
            entry.update(interval_s=section.interval_s, enabled=section.enabled)
        figures = stats.get(name)
        if figures is not None:
            entry.update(breaker=figures.breaker.state, polls=figures.polls, errors=figures.errors,
                         last_latency_ms=round(figures.last_latency_s * 1000, 3),
                         streaming=figures.streaming)
        entries.append(entry)
    return entries


def sources_response(entries: list[dict[str, Any]]) -> pb.ListSourcesResponse:
    response = pb.ListSourcesResponse()
    for entry in entries:
        fields = {k: v for k, v in entry.items() if k != "as_of"}
        source = response.sources.add(**fields)
        if "as_of" in entry:
            source.as_of.CopyFrom(timestamp_from_iso(entry["as_of"]))
    return response


def _end(conn: Any, position: pb.StreamPosition | None, ms: int | None, epoch: str) -> Position | None:
    if position is not None:
        return Position(position.epoch, position.seq)
    return None if ms is None else Position(epoch, position_at_ms(conn, ms))


def read_explain(db_path: Path, request: pb.ExplainRequest) -> dict[str, object]:
    """Blocking: the explain answer /api/pnl/explain gives (RequestError as REST raises it)."""
    def ms(name: str) -> int | None:
        return ms_from_timestamp(getattr(request, name)) if request.HasField(name) else None

    with closing(open_reader(db_path)) as conn:
        epoch = database_epoch(conn)
        first = _end(conn, request.from_position if request.HasField("from_position") else None,
                     ms("from_time"), epoch)
        if first is None:
            raise RequestError("bad_parameter", "from_position: give it or from_time")
        last = _end(conn, request.to_position if request.HasField("to_position") else None,
                    ms("to_time"), epoch)
        return explain(conn, first, last, min(request.limit, 1000) or 100)


def explain_response(body: dict[str, Any]) -> pb.ExplainResponse:
    response = pb.ExplainResponse(
        from_end=pb.ExplainEnd(position=body["from"]["position"], as_of=body["from"]["as_of"] or ""),
        to_end=pb.ExplainEnd(position=body["to"]["position"], as_of=body["to"]["as_of"] or ""),
        difference=body["difference"],
        items_by=body["items_by"],
    )
    for item in body["items"]:
        named = {k: item[k] for k in ("agent", "model", "ticker") if item[k] is not None}
        response.items.add(source=item["source"], kind=item["kind"], id=item["id"],
                           label=item["label"], contributions=item["contributions"], **named)
    for name, values in body["groups"].items():
        group = response.groups[name]
        for value, sums in values.items():
            group.values[value].amounts.update(sums)
    return response
