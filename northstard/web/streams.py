"""The streaming edges: WebSocket ``/ws``, SSE ``/api/pnl/stream``, long-poll ``/api/pnl/changes``.

All three read from the hub through a ``Subscription`` (a position, no queue)
and resume from ``EPOCH:SEQ`` without a gap.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import structlog
import trio
from quart import Quart, Response, request, websocket

from ..change import dumps
from ..errors import RequestError
from ..hub import HubClosed, Position, Subscription
from .context import WebContext
from .params import parse_since, parse_wait

__all__ = ["add_stream_routes"]

log = structlog.get_logger("northstard.web")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008


def _error(error: str, detail: str) -> str:
    return dumps({"type": "error", "error": error, "detail": detail})


def _client_message(raw: str | bytes) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raise RequestError("bad_message", "binary frames are not accepted; send JSON text")
    try:
        message = json.loads(raw)
    except ValueError:
        raise RequestError("bad_message", "not valid JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise RequestError("bad_message", 'expected a JSON object with a "type"')
    return message


def _resume_position(message: dict[str, Any]) -> Position | None:
    epoch, seq = message.get("epoch"), message.get("seq")
    if epoch is None and seq is None:
        return None
    if not isinstance(epoch, str) or isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise RequestError("bad_message", "resume needs a string epoch and an integer seq >= 0")
    return Position(epoch, seq)


async def _ws_reader(sub: Subscription) -> None:
    """Answer client frames: ping -> pong, resume -> reposition; others -> error."""
    while True:
        raw = await websocket.receive()
        try:
            message = _client_message(raw)
            kind = message["type"]
            if kind == "ping":
                reply: dict[str, Any] = {"type": "pong", "ts": int(time.time() * 1000)}
                if "id" in message:
                    reply["id"] = message["id"]
                await websocket.send(dumps(reply))
            elif kind == "resume":
                sub.resume(_resume_position(message))
            else:
                raise RequestError("unknown_type", f"unknown message type {kind[:40]!r}")
        except RequestError as exc:
            await websocket.send(_error(exc.error, exc.detail))


async def _ws_writer(ctx: WebContext, sub: Subscription) -> None:
    """Send what the client lacks whenever its socket takes more.

    A send blocks while the client does not read (Hypercorn writes with back
    pressure), so a stalled client holds one pending message and its position.
    """
    metrics = ctx.metrics.messages
    while True:
        message = await sub.next_message()
        await websocket.send(message.text)
        metrics.labels("ws", message.kind).inc()


async def _ws_session(ctx: WebContext, since: Position | None) -> None:
    with ctx.hub.subscribe("ws", since, ctx.max_rate_hz) as sub:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ws_reader, sub)
                await _ws_writer(ctx, sub)
        except* HubClosed:
            await websocket.close(CLOSE_GOING_AWAY, "server shutting down")


def _sse_event(kind: str, position: Position, text: str) -> bytes:
    return f"id: {position}\nevent: {kind}\ndata: {text}\n\n".encode()


async def _sse_body(ctx: WebContext, since: Position | None) -> AsyncIterator[bytes]:
    keepalive = float(ctx.server["sse_keepalive_s"])
    with ctx.hub.subscribe("sse", since, ctx.max_rate_hz) as sub:
        yield f"retry: {ctx.server['sse_retry_ms']}\n\n".encode()
        while True:
            message = None
            with trio.move_on_after(keepalive):
                try:
                    message = await sub.next_message()
                except HubClosed:
                    return
            if message is None:
                yield b": keep-alive\n\n"
                continue
            ctx.metrics.messages.labels("sse", message.kind).inc()
            yield _sse_event(message.kind, message.position, message.text)


def add_stream_routes(app: Quart, ctx: WebContext) -> None:
    @app.websocket("/ws")
    async def ws() -> None:
        try:
            since = parse_since(websocket.args)
        except RequestError as exc:
            await websocket.accept()
            await websocket.send(_error(exc.error, exc.detail))
            await websocket.close(CLOSE_POLICY, exc.detail)
            return
        await websocket.accept()
        await _ws_session(ctx, since)

    @app.route("/api/pnl/stream")
    async def sse() -> Response:
        since = parse_since(request.args, request.headers.get("Last-Event-ID"))
        response = Response(
            _sse_body(ctx, since),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        response.timeout = None
        return response

    @app.route("/api/pnl/changes")
    async def changes() -> Response:
        since = parse_since(request.args)
        if since is None:
            raise RequestError("bad_parameter", "since: required (EPOCH:SEQ)")
        wait = parse_wait(request.args, float(ctx.server["longpoll_max_s"]))
        with ctx.hub.subscribe("poll", since) as sub:
            message = None
            with trio.move_on_after(wait):
                with suppress(HubClosed):
                    message = sub.hub.catch_up(since) if wait == 0 else await sub.next_message()
        if message is None:
            position = ctx.hub.position
            text = dumps({"type": "unchanged", "epoch": position.epoch, "seq": position.seq})
        else:
            ctx.metrics.messages.labels("poll", message.kind).inc()
            text = message.text
        return Response(text, mimetype="application/json", headers={"Cache-Control": "no-store"})


