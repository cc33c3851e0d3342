"""The WebSocket edge ``/ws``: the handshake, client frames, and the broadcast of deltas.

The front (``front.py``) hands over each ``GET /ws`` connection with its
request head. The handshake checks the upgrade (400 / 405 / 426), the Origin
(403 unless same-origin, absent, or in ``server.ws_allowed_origins``) and the
auth hook (401 / 403), then answers 101. From then on the client is a
``WsPeer`` of a ``Broadcaster`` (``broadcast.py``): each delta is encoded
once, text frame header included, and written to every socket that has room.

Protocol (unchanged from the Quart route it replaces): a snapshot on connect
or, with ``?since=E:N``, what was missed; client JSON ``ping`` -> ``pong``,
``resume`` -> reposition, anything else -> ``{"type":"error",...}`` and the
connection stays up. Resumes spend a per-connection budget (``[hub]
resume_rate_per_s`` / ``resume_burst``, ``hub.ResumeBudget``): past it the
client gets ``{"type":"error","error":"too_many_resumes",...}`` and close
1008, and the rest of its burst is not answered. Close codes: 1000/1001 (with
a reason) for a normal or shutdown close, 1002 protocol errors, 1007 invalid
UTF-8, 1008 a bad ``since`` or too many resumes, 1009 an oversized message,
4008 a client that stopped reading.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass

import trio

from northstard.actors.hub import Hub, Position
from northstard.config import default
from northstard.core.change import dumps
from northstard.core.http1 import RECEIVE_BYTES, Request, error_response, response_head
from northstard.core.wsframes import (
    Close,
    CloseCode,
    FrameReader,
    Message,
    Opcode,
    Ping,
    Pong,
    ProtocolError,
    accept_key,
    close_frame,
    encode_frame,
    text_frame,
    valid_key,
)
from northstard.edges.stream.broadcast import Broadcaster, Peer, send_all
from northstard.edges.stream.sendmany import default_threads
from northstard.errors import RequestError
from northstard.policy.access import Authorize, allow_all, origin_allowed
from northstard.policy.params import parse_since
from northstard.settings import ServerSection
from northstard.status.metrics import Metrics

__all__ = ["WsEdge", "WsSettings", "check_handshake"]

PATH = "/ws"


@dataclass(frozen=True)
class WsSettings:
    """The WebSocket keys of ``[server]``; the defaults are the schema's (``config.py``)."""

    max_message_bytes: int = default("server", "ws_max_message_bytes", int)
    allowed_origins: tuple[str, ...] = tuple(default("server", "ws_allowed_origins", list))
    blocked_close_after_s: float = default("server", "ws_blocked_close_after_s", float)
    ping_interval_s: float = default("server", "ws_ping_interval_s", float)
    close_grace_s: float = default("server", "shutdown_grace_s", float)
    max_rate_hz: float = default("hub", "max_rate_hz", float)
    send_threads: int = default("server", "send_threads", int) or default_threads()  # 0: one per core

    @classmethod
    def from_server(cls, server: ServerSection, max_rate_hz: float = 0.0) -> WsSettings:
        return cls(
            max_message_bytes=server.ws_max_message_bytes,
            allowed_origins=server.ws_allowed_origins,
            blocked_close_after_s=server.ws_blocked_close_after_s,
            ping_interval_s=server.ws_ping_interval_s,
            close_grace_s=server.shutdown_grace_s,
            max_rate_hz=max_rate_hz,
            send_threads=server.send_threads or default_threads(),
        )


def check_handshake(request: Request, allowed_origins: tuple[str, ...]) -> str:
    """The ``Sec-WebSocket-Accept`` value for a valid upgrade request; RequestError if not."""
    if request.method != "GET":
        raise RequestError("method_not_allowed", "use GET", 405, [("allow", "GET")])
    if request.version != "HTTP/1.1" or "host" not in request.headers:
        raise RequestError("bad_request", "a WebSocket upgrade needs HTTP/1.1 and a Host")
    if "websocket" not in request.tokens("upgrade"):
        raise RequestError("upgrade_required", "this endpoint speaks WebSocket", 426,
                           [("upgrade", "websocket"), ("connection", "Upgrade")])
    if "upgrade" not in request.tokens("connection"):
        raise RequestError("bad_request", "Connection: Upgrade is missing")
    if request.headers.get("sec-websocket-version") != "13":
        raise RequestError("upgrade_required", "only WebSocket version 13 is spoken", 426,
                           [("sec-websocket-version", "13")])
    key = request.headers.get("sec-websocket-key", "")
    if not valid_key(key):
        raise RequestError("bad_request", "Sec-WebSocket-Key must be 16 bytes in base64")
    if not origin_allowed(request.headers.get("origin"), request.headers["host"], allowed_origins):
        raise RequestError("forbidden", "this Origin may not open the stream", 403)
    return accept_key(key)


def _error(error: str, detail: str) -> bytes:
    return text_frame(dumps({"type": "error", "error": error, "detail": detail}))


def _client_message(data: str | bytes) -> dict[str, object]:
    if isinstance(data, bytes):
        raise RequestError("bad_message", "binary frames are not accepted; send JSON text")
    try:
        message = json.loads(data)
    except ValueError:
        raise RequestError("bad_message", "not valid JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise RequestError("bad_message", 'expected a JSON object with a "type"')
    return message


def _resume_position(message: dict[str, object]) -> Position | None:
    epoch, seq = message.get("epoch"), message.get("seq")
    if epoch is None and seq is None:
        return None
    if not isinstance(epoch, str) or isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise RequestError("bad_message", "resume needs a string epoch and an integer seq >= 0")
    return Position(epoch, seq)


def _pong(message: dict[str, object]) -> bytes:
    reply: dict[str, object] = {"type": "pong", "ts": int(time.time() * 1000)}
    if "id" in message:
        reply["id"] = message["id"]
    return text_frame(dumps(reply))


class WsPeer(Peer):
    """A WebSocket client: reads and answers its frames; the broadcaster writes the deltas."""

    expects_close_reply = True

    def __init__(self, sock: socket.socket, broadcaster: Broadcaster, position: Position | None,
                 max_message_bytes: int) -> None:
        super().__init__(sock, broadcaster, position)
        self.frames = FrameReader(max_message_bytes)
        self.ignoring = False  # after a protocol error or the client's close
        self.failed = False  # after a protocol error: no close reply is awaited
        self.resumes = broadcaster.hub.budget.bucket()  # this connection's resume budget

    def goodbye(self, code: int, reason: str) -> bytes:
        return close_frame(code, reason)

    async def read(self) -> None:
        """Until the client's end of stream: parse frames and answer them."""
        while True:
            try:
                await trio.lowlevel.wait_readable(self.sock)
                data = self.sock.recv(RECEIVE_BYTES)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                return
            if not self.ignoring:
                self.received(data)

    def received(self, data: bytes) -> None:
        try:
            events = self.frames.feed(data)
        except ProtocolError as exc:
            self.ignoring = self.failed = True
            self.close_soon(exc.code, exc.reason)
            return
        for event in events:
            self.handle(event)

    async def _linger(self) -> None:
        """After a protocol error the connection is failed (RFC 6455 7.1.7): its frames can no
        longer be read, so no close reply is awaited. The close frame is followed by our FIN,
        and the client's end of stream (its bytes read on and dropped) or the deadline ends it.
        """
        if not self.failed:
            await super()._linger()
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        with trio.move_on_at(self.close_deadline):
            await self.finished.wait()
        self.finish()

    def handle(self, event: Message | Ping | Pong | Close) -> None:
        if isinstance(event, Close):
            self.ignoring = True
            self.reply_seen.set()  # closes now if we asked; else we echo, then close
            code = CloseCode.NORMAL if event.code == CloseCode.NO_STATUS else event.code
            self.close_soon(code, "")
        elif isinstance(event, Ping):
            self.write(encode_frame(Opcode.PONG, event.payload))
        elif isinstance(event, Message) and not self.closing:
            reply = self.answer(event.data)
            if reply:
                self.write(reply)

    def answer(self, data: str | bytes) -> bytes:
        """The reply to an application message (empty when there is none to send)."""
        try:
            message = _client_message(data)
            kind = str(message["type"])  # _client_message checked it is a string
            if kind == "ping":
                return _pong(message)
            if kind != "resume":
                raise RequestError("unknown_type", f"unknown message type {kind[:40]!r}")
            position = _resume_position(message)
            if not self.spend_resume():
                return b""
            self.resume(position)
            return b""
        except RequestError as exc:
            return _error(exc.error, exc.detail)

    def spend_resume(self) -> bool:
        """One resume from the budget; when it is spent: an error, then close 1008 (False).

        The frames still unread (the rest of a burst) are then not answered.
        """
        now = trio.current_time()
        wait = self.resumes.wait(1.0, now)
        if not wait:
            self.resumes = self.resumes.take(1.0, now)
            return True
        self.broadcaster.metrics.refused.labels("resumes").inc()
        detail = f"more than {self.resumes.capacity:g} resumes at once; reconnect to resume"
        self.write(_error("too_many_resumes", detail))
        self.close_soon(CloseCode.POLICY, "too many resumes")
        return False

    def resume(self, position: Position | None) -> None:
        self.position = position
        self.rejoin()


class WsEdge:
    """``/ws``: every WebSocket client of the daemon, fed by one broadcast task."""

    paths: tuple[str, ...] = (PATH,)

    def __init__(self, hub: Hub, metrics: Metrics, settings: WsSettings,
                 authorize: Authorize = allow_all) -> None:
        self.settings = settings
        self.authorize = authorize
        self.broadcaster = Broadcaster(
            hub, "ws", lambda message: text_frame(message.text), metrics,
            max_rate_hz=settings.max_rate_hz, close_grace_s=settings.close_grace_s,
            blocked_close_after_s=settings.blocked_close_after_s, send_threads=settings.send_threads,
        )

    def __repr__(self) -> str:
        return f"<WsEdge {self.broadcaster!r}>"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The broadcast task, and the server's pings (keep-alive through proxies and NATs)."""
        async with trio.open_nursery() as nursery:
            if self.settings.ping_interval_s > 0:
                nursery.start_soon(self.broadcaster.heartbeat, encode_frame(Opcode.PING, b""),
                                   self.settings.ping_interval_s, False)
            await self.broadcaster.run(task_status=task_status)
            nursery.cancel_scope.cancel()

    def close_all(self) -> None:
        self.broadcaster.close_all(CloseCode.GOING_AWAY, "server shutting down")

    async def serve(self, sock: socket.socket, request: Request, rest: bytes) -> None:
        """One connection whose head is ``request``: refuse it, or accept and stream."""
        try:
            accept = check_handshake(request, self.settings.allowed_origins)
            self.authorize(request)
        except RequestError as exc:
            await send_all(sock, error_response(exc.status, exc.error, exc.detail, exc.headers))
            return
        upgraded = response_head(101, [
            ("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-accept", accept),
        ])
        if not await send_all(sock, upgraded):
            return
        try:
            since, problem = parse_since(request.args), None
        except RequestError as exc:
            since, problem = None, exc
        peer = WsPeer(sock, self.broadcaster, since, self.settings.max_message_bytes)
        if problem is not None:  # as before: accepted, told why, closed
            peer.backlog += _error(problem.error, problem.detail)
            peer.close_soon(CloseCode.POLICY, problem.detail)
        await self.broadcaster.serve(peer, peer.read, lambda: peer.received(rest) if rest else None)
