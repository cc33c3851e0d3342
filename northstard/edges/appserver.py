"""One request of a connection served by the ASGI app, over h11 (``asgi.py``).

    the front (a whole head read) ─▶ AppServer.serve(sock, buffer)
        h11.Connection ◀── the bytes ──▶ h11.Request ─▶ await app(scope, receive, send)
        receive: the body as it arrives (a "100 Continue" first when the client waits
                 for one), then ``http.disconnect`` once the response is done or the
                 client has left
        send:    the head goes out with the first body bytes; h11 frames the body
                 (Content-Length, else chunked); a HEAD answer has its body dropped
    ─▶ the bytes after the request (a pipelined next one) back to the front, or None: close

Requests on a connection are served one after the other: the front reads each
head (and routes it, possibly to an edge), then this serves it; a pipelined
request waits in the returned bytes. The front refuses the framings that
could be read two ways before a request gets here (``http1.request_size``),
so a body always has a ``Content-Length``.

Bounds: a ``Content-Length`` over ``max_body_bytes`` is answered 413 unread
and the connection closed; a body read that stalls ``body_timeout_s`` is
answered 408 (closed); a response the client takes nothing of for
``send_timeout_s`` closes the connection. While the app answers, the socket
is watched so a client that leaves ends its request (a long-poll stops
waiting); what it sends meanwhile is kept for the next request, at most
``http1.MAX_HEAD_BYTES`` plus one read, then reading pauses. A body the app
did not read is read and dropped (within the same bounds) so the connection
can go on.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate

import h11
import structlog
import trio

from northstard.core.http1 import MAX_HEAD_BYTES, RECEIVE_BYTES, error_response
from northstard.edges.asgi import Address, Asgi, Message, Scope, http_scope, response_event
from northstard.errors import RequestError

__all__ = ["AppServer", "AppSettings", "receive_some"]

log = structlog.get_logger("northstard.web")

DISCONNECT = {"type": "http.disconnect"}


@dataclass(frozen=True)
class AppSettings:
    """The bounds of one request served by the app (see the module docstring)."""

    body_timeout_s: float = 10.0
    send_timeout_s: float = 30.0
    max_body_bytes: int = 1 << 20


class _Date:
    """The ``Date`` header value, made once a second."""

    second = -1
    value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second, self.value = second, formatdate(second, usegmt=True).encode()
        return self.value


async def receive_some(sock: socket.socket) -> bytes:
    """The next bytes from ``sock`` (at most ``RECEIVE_BYTES``); b"" when the client is gone."""
    while True:
        try:
            return sock.recv(RECEIVE_BYTES)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
        except OSError:
            return b""


def _address(address: object) -> Address:
    return (str(address[0]), int(address[1])) if isinstance(address, tuple) else None


class _Exchange:
    """One request and its response: the ``receive`` and ``send`` the app gets."""

    def __init__(self, sock: socket.socket, conn: h11.Connection, settings: AppSettings, date: bytes,
                 head_only: bool) -> None:
        self.sock = sock
        self.conn = conn
        self.settings = settings
        self.date = date
        self.head_only = head_only
        self.ended = trio.Event()  # the response is done, or the client left or stalled
        self.response: h11.Response | None = None
        self.head_sent = False
        self.done = False
        self.broken = False  # the connection cannot carry another request
        self.timed_out = False
        self.after = bytearray()  # read while the app answered: the next request's bytes
        self.nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return (f"<_Exchange head_sent={self.head_sent} done={self.done} broken={self.broken} "
                f"after={len(self.after)}>")

    # -- receive ----------------------------------------------------------------------------

    async def receive(self) -> Message:
        if self.conn.their_state is h11.SEND_BODY and not self.ended.is_set():
            return await self._body()
        await self.ended.wait()
        return dict(DISCONNECT)

    async def _body(self) -> Message:
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError:  # the client closed inside the body
                return self._gone()
            if isinstance(event, h11.Data):
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}
            if isinstance(event, h11.EndOfMessage):
                if self.nursery is not None:
                    self.nursery.start_soon(self._watch)
                return {"type": "http.request", "body": b"", "more_body": False}
            await self._continue()
            if not await self._read():
                return self._gone()

    def _gone(self) -> Message:
        self.broken = True
        self.ended.set()
        return dict(DISCONNECT)

    async def _continue(self) -> None:
        """``100 Continue`` to a client that waits for it before sending its body."""
        if self.conn.client_is_waiting_for_100_continue and not self.head_sent:
            await self.write(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")

    async def _read(self) -> bool:
        """Feed h11 the next bytes of the body; False if the client left or stalled."""
        with trio.move_on_after(self.settings.body_timeout_s):
            data = await receive_some(self.sock)
            self.conn.receive_data(data)
            return bool(data)
        self.timed_out = True
        return False

    async def _watch(self) -> None:
        """While the app answers: a client that leaves ends the request; what it sends is kept."""
        while len(self.after) <= MAX_HEAD_BYTES:
            data = await receive_some(self.sock)
            if not data:
                self._gone()
                return
            self.after += data

    # -- send -------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self.ended.is_set() and not self.done:
            return  # the client left: what the app still sends goes nowhere
        try:
            data = self._frame(message)
        except h11.LocalProtocolError as exc:
            raise RequestError("internal_error", f"the app's response is invalid: {exc}", 500) from None
        if data and not await self.write(data):
            self._gone()
        if self.done:
            self.ended.set()

    def _frame(self, message: Message) -> bytes:
        if message["type"] == "http.response.start" and self.response is None:
            self.response = response_event(message, [(b"date", self.date)])
            return b""
        if message["type"] != "http.response.body" or self.response is None or self.done:
            raise RequestError("internal_error", f"unexpected ASGI message {message['type']!r}", 500)
        data = b""
        if not self.head_sent:
            data, self.head_sent = self.conn.send(self.response) or b"", True
        body = message.get("body", b"")
        if body and not self.head_only:
            data += self.conn.send(h11.Data(data=body)) or b""
        if not message.get("more_body", False):
            data += self.conn.send(h11.EndOfMessage()) or b""
            self.done = True
        return data

    async def write(self, data: bytes) -> bool:
        """Write all of ``data``; False if the client is gone or takes nothing for a while."""
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:  # a TlsSocket keeps its ciphertext: the same bytes again
                with trio.move_on_after(self.settings.send_timeout_s):
                    await trio.lowlevel.wait_writable(self.sock)
                    continue
                return False
            except OSError:
                return False
        await trio.lowlevel.checkpoint()
        return True

    async def drain(self) -> None:
        """Read and drop the rest of a body the app did not read (within the body bounds)."""
        while self.conn.their_state is h11.SEND_BODY and not self.broken:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError:
                self.broken = True
                return
            if event is h11.NEED_DATA and not await self._read():
                self.broken = True

    def rest(self) -> bytearray | None:
        """The bytes after this request, if the connection goes on (else None)."""
        if self.broken or not self.done:
            return None
        if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
            return None  # Connection: close, HTTP/1.0, or a body cut short
        return bytearray(self.conn.trailing_data[0]) + self.after


class AppServer:
    """Serves requests of the front's connections through an ASGI ``app``."""

    def __init__(self, app: Asgi, settings: AppSettings, state: dict[str, object],
                 count: Callable[[str], None] = lambda reason: None) -> None:
        self.app = app
        self.settings = settings
        self.state = state  # the lifespan's state: each scope gets a copy
        self.count = count  # a refusal, by reason (northstard_refused_total)
        self._date = _Date()

    def __repr__(self) -> str:
        return f"<AppServer {self.settings}>"

    async def serve(self, sock: socket.socket, buffer: bytearray, scheme: str) -> bytearray | None:
        """Serve the request at the start of ``buffer`` (its head whole); the bytes after it
        when the connection goes on, None when it is to be closed."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        conn.receive_data(bytes(buffer))
        try:
            request = self._request(conn)
        except RequestError as exc:
            self.count(exc.error)
            await _Exchange(sock, conn, self.settings, b"", False).write(
                error_response(exc.status, exc.error, exc.detail, exc.headers))
            return None
        exchange = _Exchange(sock, conn, self.settings, self._date.now(), request.method == b"HEAD")
        scope = http_scope(request, scheme=scheme, client=_address(_peer(sock)),
                           server=_address(sock.getsockname()), state=self.state)
        await self._run(exchange, scope)
        await exchange.drain()
        return exchange.rest()

    def _request(self, conn: h11.Connection) -> h11.Request:
        """The request h11 parsed from the head; RequestError (400, 413) to refuse it."""
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise RequestError("bad_request", f"malformed HTTP/1.1 request: {exc}",
                               exc.error_status_hint) from None
        if not isinstance(event, h11.Request):
            raise RequestError("bad_request", "malformed HTTP/1.1 request head")
        length = dict(event.headers).get(b"content-length", b"0")
        if int(length) > self.settings.max_body_bytes:
            raise RequestError("request_entity_too_large",
                               f"request body over {self.settings.max_body_bytes} bytes", 413)
        return event

    async def _run(self, exchange: _Exchange, scope: Scope) -> None:
        try:
            async with trio.open_nursery() as nursery:
                exchange.nursery = nursery
                await self.app(scope, exchange.receive, exchange.send)
                nursery.cancel_scope.cancel()  # the watch
        except Exception as exc:  # the app failed: a 500 if nothing was sent, and close
            log.error("request failed", path=scope["path"], error=f"{type(exc).__name__}: {exc}")
            exchange.broken = True
            if not exchange.head_sent and not exchange.ended.is_set():
                await exchange.write(error_response(500, "internal_error",
                                                     "the request failed; see the daemon log"))
            return
        if exchange.timed_out:
            self.count("body_timeout")
            if not exchange.head_sent:
                await exchange.write(error_response(
                    408, "request_timeout",
                    f"the request body stalled over {self.settings.body_timeout_s:g} s"))
        elif not exchange.head_sent and not exchange.ended.is_set():
            exchange.broken = True
            await exchange.write(error_response(500, "internal_error", "the app sent no response"))


def _peer(sock: socket.socket) -> object:
    with contextlib.suppress(OSError):
        return sock.getpeername()
    return None
