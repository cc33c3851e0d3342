"""Hypercorn connections that the front can take back.

The front reads a connection's first request head before choosing who serves
it. A connection that goes to Hypercorn gets a ``HandoverStream``: its first
reads replay the bytes already read. The stream passes Hypercorn one request
at a time: it holds the bytes of each request head until the head is whole,
asks the front's ``route`` how long the request is (head and ``Content-Length``
body, so a body is never read as a request), and passes that many bytes on.
When ``route`` says the front takes the request (one for an edge: a browser's
EventSource often reuses the connection that fetched the page; or one the front
refuses, such as a request-smuggling shape), the stream waits until Hypercorn
has finished its response (it says so with ``Updated(idle=True)``), answers
Hypercorn with end of stream and keeps the request's bytes in ``taken``:
Hypercorn ends its side without closing the socket, and the front serves the
request. Held bytes are bounded by the head limit (``http1.MAX_HEAD_BYTES``)
plus one read.

Over TLS (``tls.py``) the stream is a ``TlsStream`` and the handover stream
shows Hypercorn what it looks for on an ``SSLStream`` (``do_handshake``,
``selected_alpn_protocol``, ``transport_stream``), so the ASGI scope says
``https`` (``wss``); the handshake itself was done by the front.

This reaches into Hypercorn's ``TCPServer`` (``protocol_send``, ``_read_data``,
``idle_task``, its SSL detection); hypercorn is pinned to 0.18.* for that reason.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, cast

import trio
from hypercorn.events import Event, Updated
from hypercorn.trio.tcp_server import TCPServer

from northstard.core.http1 import RECEIVE_BYTES
from northstard.edges.tls import TlsSocket

__all__ = ["HandoverConnection", "HandoverStream", "TlsHandoverStream", "TlsStream", "open_handover"]

Route = Callable[[bytes], int | None]
"""The size of the request at the start of the bytes (0: its head is not whole yet), or None
when the front takes the request."""


class TlsStream(trio.abc.HalfCloseableStream):
    """A trio stream over a TlsSocket, for Hypercorn.

    A ``send_all`` that is cancelled half-way leaves the connection broken (as
    trio's SSLStream does): its bytes were encrypted, and other bytes cannot follow.
    """

    def __init__(self, sock: TlsSocket) -> None:
        self.socket = sock
        self._rest = b""  # what a receive_some smaller than a record left
        self._broken = False

    def __repr__(self) -> str:
        return f"<TlsStream {self.socket!r} broken={self._broken}>"

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(data)
        try:
            while view:
                self._check()
                try:
                    view = view[self.socket.send(view):]
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self.socket)
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        except BaseException:
            self._broken = bool(view)
            raise
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        self._check()
        await trio.lowlevel.wait_writable(self.socket)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        data = self._rest or await self._receive()
        size = len(data) if max_bytes is None else max_bytes
        data, self._rest = data[:size], data[size:]
        await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    async def _receive(self) -> bytes:
        while True:
            self._check()
            try:
                return self.socket.recv(RECEIVE_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.socket)
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc

    async def send_eof(self) -> None:
        """close_notify, then the TCP end of our side (reading goes on)."""
        await trio.lowlevel.checkpoint()
        self._check()
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def aclose(self) -> None:
        if self.socket.fileno() >= 0:
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()
        await trio.lowlevel.checkpoint()

    def _check(self) -> None:
        if self.socket.fileno() < 0:
            raise trio.ClosedResourceError("the TLS stream is closed")
        if self._broken:
            raise trio.BrokenResourceError("a send on this TLS stream was cancelled half-way")


class HandoverStream(trio.abc.HalfCloseableStream):
    """A socket stream that replays ``head`` first and can be taken back between requests."""

    def __init__(self, stream: trio.SocketStream | TlsStream, head: bytes, route: Route) -> None:
        self._stream = stream
        self._pending = bytearray(head)  # read from the socket, not yet given to Hypercorn
        self._left = 0  # bytes of the current request still to give; 0 between requests
        self._route = route
        self._idle = trio.Event()
        self._closed = False
        self.taken: bytes | None = None

    def __repr__(self) -> str:
        return (f"<HandoverStream idle={self._idle.is_set()} pending={len(self._pending)} "
                f"left={self._left} taken={self.taken is not None}>")

    @property
    def socket(self) -> trio.socket.SocketType | TlsSocket:
        return self._stream.socket

    def set_idle(self, idle: bool) -> None:
        """Hypercorn finished a response and waits for the next request (or starts one)."""
        if idle:
            self._idle.set()
        elif self._idle.is_set():
            self._idle = trio.Event()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._left and not await self._next_request():
            return b""  # the client left, or the front takes the request
        if not self._pending:
            data = await self._stream.receive_some(RECEIVE_BYTES)
            if not data:
                return b""
            self._pending += data
        else:
            await trio.lowlevel.checkpoint()
        size = min(len(self._pending), self._left, max_bytes or len(self._pending))
        data = bytes(self._pending[:size])
        del self._pending[:size]
        self._left -= size
        return data

    async def _next_request(self) -> bool:
        """Read until the next request's head is whole; True when Hypercorn serves it."""
        size = self._route(bytes(self._pending))
        while size == 0:
            more = await self._stream.receive_some(RECEIVE_BYTES)
            if not more:
                self._left = len(self._pending)  # a cut head: Hypercorn sees it, then the end
                return bool(self._left)
            self._pending += more
            size = self._route(bytes(self._pending))
        if size is not None:
            self._left = size
            return True
        await self._idle.wait()  # the response before it first
        if not self._closed:
            self.taken = bytes(self._pending)
        return False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if self.taken is None:
            await self._stream.send_eof()

    async def aclose(self) -> None:
        self._closed = True
        self._idle.set()
        if self.taken is None:
            await self._stream.aclose()
        else:
            await trio.lowlevel.checkpoint()


class TlsHandoverStream(HandoverStream):
    """Over TLS: what Hypercorn reads from an SSLStream (``TCPServer.run``), for ``https``."""

    async def do_handshake(self) -> None:
        await trio.lowlevel.checkpoint()  # the front did it before routing

    def selected_alpn_protocol(self) -> str:
        return "http/1.1"

    @property
    def transport_stream(self) -> trio.SocketStream | TlsStream:
        return self._stream


def open_handover(sock: socket.socket, head: bytes, route: Route) -> HandoverStream:
    """The stream Hypercorn serves ``sock`` through (TLS if the front did a handshake)."""
    if isinstance(sock, TlsSocket):
        return TlsHandoverStream(TlsStream(sock), head, route)
    return HandoverStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), head, route)


class HandoverConnection(TCPServer):
    """Hypercorn's connection handler, telling its stream when the connection is idle."""

    def __init__(self, app: Any, config: Any, context: Any, state: Any,
                 stream: HandoverStream) -> None:
        super().__init__(app, config, context, state, cast(Any, stream))
        self.handover = stream

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            self.handover.set_idle(event.idle)
            # Updated(idle=True) comes from the app task sending its last body, which
            # quart-trio cancels as the response ends: unshielded, the keep-alive timer
            # never restarted and an idle (or trickling) connection was held forever.
            with trio.CancelScope(shield=True):
                await super().protocol_send(event)
            return
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        await super()._read_data()
        if self.handover.taken is not None:  # no keep-alive timer holding the hand-over back
            await self.idle_task.stop()
