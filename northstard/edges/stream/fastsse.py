"""The SSE edge ``/api/pnl/stream`` on raw sockets: one encoded chunk per event for everyone.

Same wire format as before: a ``retry:`` hint, then ``id: E:N`` /
``event: snapshot|delta`` / ``data: MESSAGE`` events, ``: keep-alive``
comments after a quiet ``sse_keepalive_s``; ``Last-Event-ID: E:N`` (or
``?since=E:N``) resumes, a malformed one is a JSON 400. The body is chunked
(HTTP/1.1), so the chunk header is part of the bytes encoded once per event;
an HTTP/1.0 client (nginx's default upstream protocol) is served by a second
broadcaster whose body simply ends at close. At shutdown the body ends with
its last chunk, and EventSource reconnects with ``Last-Event-ID``. Before the
stream: the ``authorize`` hook (401 without an accepted token, ``guard.py``)
and CORS (``cors.py``): a preflight is answered 204, the head and any
refusal carry the CORS headers for an allowed Origin.
"""

from __future__ import annotations

import socket
from typing import TypedDict

import trio

from northstard.actors.hub import Hub, Message, Position
from northstard.core.http1 import RECEIVE_BYTES, Request, error_response, response_head
from northstard.edges.stream.broadcast import Broadcaster, Peer, send_all
from northstard.edges.stream.sendmany import default_threads
from northstard.errors import RequestError
from northstard.policy.access import Authorize, allow_all
from northstard.policy.cors import cors_headers, is_preflight, preflight_headers
from northstard.policy.params import parse_since
from northstard.settings import ServerSection
from northstard.status.metrics import Metrics

__all__ = ["SseEdge", "chunk", "sse_event"]

PATH = "/api/pnl/stream"
LAST_CHUNK = b"0\r\n\r\n"
KEEPALIVE = b": keep-alive\n\n"
HEADERS = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"),
           ("x-accel-buffering", "no"), ("x-content-type-options", "nosniff")]


def sse_event(message: Message) -> bytes:
    return f"id: {message.position}\nevent: {message.kind}\ndata: {message.text}\n\n".encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class SsePeer(Peer):
    """An SSE client: it sends nothing after its request, so reading only notices it leave."""

    def __init__(self, sock: socket.socket, broadcaster: Broadcaster, position: Position | None,
                 chunked: bool) -> None:
        super().__init__(sock, broadcaster, position)
        self.chunked = chunked

    def goodbye(self, code: int, reason: str) -> bytes:
        return LAST_CHUNK if self.chunked else b""

    async def read(self) -> None:
        while True:
            try:
                await trio.lowlevel.wait_readable(self.sock)
                if not self.sock.recv(RECEIVE_BYTES):
                    return
            except BlockingIOError:
                continue
            except OSError:
                return


class _BroadcastOptions(TypedDict):
    max_rate_hz: float
    close_grace_s: float
    blocked_close_after_s: float
    send_threads: int


class SseEdge:
    """``/api/pnl/stream``: every SSE client, fed by one broadcast task per body framing."""

    paths: tuple[str, ...] = (PATH,)

    def __init__(self, hub: Hub, metrics: Metrics, server: ServerSection,
                 max_rate_hz: float = 0.0, authorize: Authorize = allow_all) -> None:
        self.authorize = authorize
        self.cors_origins = server.cors_allowed_origins
        self.keepalive_s = server.sse_keepalive_s
        self.retry = f"retry: {server.sse_retry_ms}\n\n".encode()
        options = _BroadcastOptions(max_rate_hz=max_rate_hz, close_grace_s=server.shutdown_grace_s,
                                   blocked_close_after_s=server.ws_blocked_close_after_s,
                                   send_threads=server.send_threads or default_threads())
        self.chunked = Broadcaster(hub, "sse", lambda m: chunk(sse_event(m)), metrics, **options)
        self.plain = Broadcaster(hub, "sse", sse_event, metrics, **options)

    def __repr__(self) -> str:
        return f"<SseEdge {self.chunked!r} {self.plain!r}>"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as heartbeats:
            heartbeats.start_soon(self.chunked.heartbeat, chunk(KEEPALIVE), self.keepalive_s, True)
            heartbeats.start_soon(self.plain.heartbeat, KEEPALIVE, self.keepalive_s, True)
            async with trio.open_nursery() as broadcasting:  # both end when the hub closes
                await broadcasting.start(self.chunked.run)
                await broadcasting.start(self.plain.run)
                task_status.started()
            heartbeats.cancel_scope.cancel()

    def close_all(self) -> None:
        for broadcaster in (self.chunked, self.plain):
            broadcaster.close_all(1001, "server shutting down")

    def _admit(self, request: Request) -> Position | None:
        """The position to start from; RequestError (405, 401/403, 400) to refuse the request."""
        if request.method not in ("GET", "HEAD"):
            raise RequestError("method_not_allowed", "use GET", 405, [("allow", "GET")])
        self.authorize(request)
        return parse_since(request.args, request.headers.get("last-event-id"))

    async def serve(self, sock: socket.socket, request: Request, rest: bytes) -> None:
        origin = request.headers.get("origin")
        if is_preflight(request.method, request.headers):  # CORS: before auth, as browsers expect
            headers = [*preflight_headers(origin, self.cors_origins), ("content-length", "0"),
                       ("connection", "close")]
            await send_all(sock, response_head(204, headers))
            return
        cors = cors_headers(origin, self.cors_origins)
        try:
            since = self._admit(request)
        except RequestError as exc:
            await send_all(sock, error_response(exc.status, exc.error, exc.detail, [*exc.headers, *cors]))
            return
        chunked = request.version == "HTTP/1.1"
        framing = ("transfer-encoding", "chunked") if chunked else ("connection", "close")
        head = response_head(200, [*HEADERS, *cors, framing])
        if request.method == "HEAD":
            await send_all(sock, head)
            return
        if not await send_all(sock, head + (chunk(self.retry) if chunked else self.retry)):
            return
        broadcaster = self.chunked if chunked else self.plain
        peer = SsePeer(sock, broadcaster, since, chunked)
        await broadcaster.serve(peer, peer.read)
