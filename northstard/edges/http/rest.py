"""REST routes: current, history, breakdown, sources, cache stats, health, metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from contextlib import closing
from typing import Any

import trio
from quart import Quart, Response, jsonify, request

from northstard.actors.cache import SizedChunk, chunk_bytes, chunk_starts, chunk_width
from northstard.core.backplane.settings import served_by_core
from northstard.core.buckets import history_range
from northstard.core.times import iso_from_ms
from northstard.edges.http.context import WebContext
from northstard.edges.http.guard import OPENABLE
from northstard.edges.http.openapi import openapi_spec
from northstard.errors import RequestError
from northstard.policy.params import parse_instant
from northstard.status.backplane import EdgeStatus
from northstard.store.sqlite import open_reader, read_buckets

__all__ = ["add_rest_routes"]


def _history_range(args: Mapping[str, str]) -> tuple[str, int, int]:
    to_ms = parse_instant("to", args["to"]) if "to" in args else None
    from_ms = parse_instant("from", args["from"]) if "from" in args else None
    try:
        return history_range(args.get("resolution"), from_ms, to_ms, int(time.time() * 1000))
    except ValueError as exc:
        raise RequestError("bad_parameter", str(exc)) from None


def _fragment(row: dict[str, Any]) -> bytes:
    """One bucket as the history answer sends it (compact JSON)."""
    return json.dumps({"start": iso_from_ms(row["start_ms"]), **row}, separators=(",", ":")).encode()


def _read_chunks(ctx: WebContext, resolution: str, starts: tuple[int, ...]) -> dict[int, SizedChunk]:
    """Blocking: the rows of these whole chunks (one query from the first to the last), sized."""
    width = chunk_width(resolution)
    found: dict[int, list[tuple[int, bytes]]] = {start: [] for start in starts}
    with closing(open_reader(ctx.db_path)) as conn:
        rows = read_buckets(conn, resolution, starts[0], starts[-1] + width)
    for row in rows:
        start_ms = row["start_ms"]
        into = found.get(start_ms - start_ms % width)
        if into is not None:
            into.append((start_ms, _fragment(row)))
    chunks = {start: tuple(rows_of) for start, rows_of in found.items()}
    return {start: (chunk, chunk_bytes(chunk)) for start, chunk in chunks.items()}


async def _history_body(ctx: WebContext, resolution: str, from_ms: int, to_ms: int) -> bytes:
    """The answer: cached final chunks, the rest read from SQLite (then cached if final).

    At most MAX_BUCKETS buckets are sent (370-520 bytes each, by the length of
    the amounts: at most ~2.6 MB) and MAX_BUCKETS + 2 chunks' rows are read.
    """
    plan = await ctx.cache.history_plan(resolution, from_ms, to_ms)
    chunks = dict(plan.cached)
    if plan.read:
        read = await trio.to_thread.run_sync(_read_chunks, ctx, resolution, plan.read)
        await ctx.cache.history_fill(plan, read)
        chunks.update((start, chunk) for start, (chunk, _) in read.items())
    rows = [fragment for start in chunk_starts(resolution, from_ms, to_ms)
            for start_ms, fragment in chunks[start] if from_ms <= start_ms < to_ms]
    head = json.dumps({"resolution": resolution, "from": iso_from_ms(from_ms), "to": iso_from_ms(to_ms)},
                      separators=(",", ":"))
    return head[:-1].encode() + b',"buckets":[' + b",".join(rows) + b"]}"


def _source_entry(ctx: WebContext, name: str) -> dict[str, object]:
    doc = ctx.hub.doc.get("sources", {}).get(name, {})
    entry: dict[str, object] = {"name": name, **doc}
    section = ctx.sections.get(name)
    if section is not None:
        entry.update(interval_s=section.interval_s, enabled=section.enabled)
    stats = ctx.sources.get(name)
    if stats is not None:
        entry.update(
            breaker=stats.breaker.state,
            polls=stats.polls,
            errors=stats.errors,
            last_latency_ms=round(stats.last_latency_s * 1000, 3),
            streaming=stats.streaming,
        )
    return entry


def _health(ctx: WebContext) -> tuple[dict[str, object], int]:
    """``/api/health``: 200 while the daemon serves ("ok" or "degraded"), 503 when failing."""
    now = ctx.status()
    healthy = now.healthy and not ctx.hub.closed
    states = {name: s.get("status") for name, s in ctx.hub.doc.get("sources", {}).items()}
    store, backup, grpc = now.store_error, dict(now.backup), dict(now.grpc)
    fine = (all(v == "ok" for v in states.values()) and store is None
            and backup["status"] != "failing" and grpc["status"] != "failing")
    status = "ok" if healthy and fine else "degraded"
    body: dict[str, object] = {
        "store": {"status": "degraded", "error": store} if store else {"status": "ok"},
        "backup": backup,
        "grpc": grpc,
        "status": status if healthy else "failing",
        "epoch": ctx.hub.epoch,
        "seq": ctx.hub.seq,
        "uptime_s": round(time.monotonic() - ctx.started_at, 3),
        "actors": {n: dict(doc) for n, doc in now.actors.items()},
        "sources": states,
        "clients": dict(ctx.hub.clients),
    }
    if ctx.backplane is not None:
        body["backplane"] = ctx.backplane.document()
    return body, (200 if healthy else 503)


def _refresh_metrics(ctx: WebContext) -> None:
    """Set the gauges ``/metrics`` reads at request time (the counters move as things happen)."""
    for transport in ("ws", "sse", "poll"):
        ctx.metrics.clients.labels(transport).set(ctx.hub.clients[transport])
    ctx.metrics.seq.set(ctx.hub.seq)
    now = ctx.status()
    ctx.metrics.store_degraded.set(1 if now.store_error else 0)
    ctx.metrics.unsaved.set(now.unsaved)
    for name, up in now.sources_up.items():
        ctx.metrics.source_up.labels(name).set(1 if up else 0)


def add_rest_routes(app: Quart, ctx: WebContext) -> None:
    @app.route("/api/pnl/current")
    async def current() -> Response:
        snapshot = await ctx.cache.current()
        if snapshot is None:
            raise RequestError("not_ready", "no snapshot yet", status=503)
        headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
        tags = [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]
        if snapshot.etag in tags or "*" in tags:
            return Response("", status=304, headers=headers)
        return Response(snapshot.message, mimetype="application/json", headers=headers)

    @app.route("/api/pnl/history")
    async def history() -> Response:
        resolution, from_ms, to_ms = _history_range(request.args)
        if isinstance(ctx.backplane, EdgeStatus):  # an edge has no database
            raise RequestError("served_by_core", served_by_core(ctx.backplane.core_url), status=503)
        body = await _history_body(ctx, resolution, from_ms, to_ms)
        return Response(body, mimetype="application/json")

    @app.route("/api/pnl/breakdown")
    async def breakdown() -> Response:
        doc = ctx.hub.doc
        keys = ("as_of", "currency", "net_pnl", "trading", "revenue", "costs", "agents",
                "gross_margin_pct", "change")
        body = {"epoch": ctx.hub.epoch, "seq": ctx.hub.seq, **{k: doc[k] for k in keys if k in doc}}
        return jsonify(body)

    @app.route("/api/sources")
    async def sources() -> Response:
        names = sorted(set(ctx.sections) | set(ctx.hub.doc.get("sources", {})))
        return jsonify({"sources": [_source_entry(ctx, name) for name in names]})

    @app.route("/api/cache/stats")
    async def cache_stats() -> Response:
        return jsonify(await ctx.cache.stats())

    @app.route("/api/health")
    async def health() -> Response:
        body, status = _health(ctx)
        return jsonify(body), status  # type: ignore[return-value]

    @app.route("/metrics")
    async def metrics() -> Response:
        _refresh_metrics(ctx)
        return Response(ctx.metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.route("/openapi.json")
    async def openapi() -> Response:
        open_paths = tuple(p for p, what in OPENABLE.items() if ctx.auth.is_open(what))
        return jsonify(openapi_spec(ctx.server.longpoll_max_s, ctx.auth.enabled, open_paths,
                                    ctx.auth.cookie_name))
