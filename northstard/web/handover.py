"""Hypercorn connections that the front can take back.

The front reads a connection's first request line before choosing who serves
it. A connection that goes to Hypercorn gets a ``HandoverStream``: its first
reads replay the bytes already read. When the next keep-alive request is for
an edge (a browser's EventSource often reuses the connection that fetched the
page), the stream waits until Hypercorn has finished its response (it says so
with ``Updated(idle=True)``), answers Hypercorn with end of stream and keeps
the request's bytes in ``taken``: Hypercorn ends its side without closing the
socket, and the front hands the socket to the edge. (A request body that
happened to start with such a request line would be mistaken for one; the
application takes no request bodies.)

This reaches into Hypercorn's ``TCPServer`` (``protocol_send``, ``_read_data``,
``idle_task``); hypercorn is pinned to 0.18.* for that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import trio
from hypercorn.events import Event, Updated
from hypercorn.trio.tcp_server import TCPServer

from .http1 import request_line

__all__ = ["HandoverConnection", "HandoverStream"]

MAX_LINE_BYTES = 8192


class HandoverStream(trio.abc.HalfCloseableStream):
    """A socket stream that replays ``head`` first and can be taken back between requests."""

    def __init__(self, stream: trio.SocketStream, head: bytes,
                 wanted: Callable[[bytes], bool]) -> None:
        self._stream = stream
        self._head = head
        self._wanted = wanted
        self._idle = trio.Event()
        self._closed = False
        self.taken: bytes | None = None

    def __repr__(self) -> str:
        return f"<HandoverStream idle={self._idle.is_set()} taken={self.taken is not None}>"

    @property
    def socket(self) -> trio.socket.SocketType:
        return self._stream.socket

    def set_idle(self, idle: bool) -> None:
        """Hypercorn finished a response and waits for the next request (or starts one)."""
        if idle:
            self._idle.set()
        elif self._idle.is_set():
            self._idle = trio.Event()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._head:
            size = len(self._head) if max_bytes is None else max_bytes
            data, self._head = self._head[:size], self._head[size:]
            await trio.lowlevel.checkpoint()
            return data
        data = await self._stream.receive_some(max_bytes)
        if data and self._idle.is_set():
            data = await self._whole_line(data)  # a new request starts here
        if data and self._wanted(data):
            await self._idle.wait()  # sent before the response ended: wait for its end
            if not self._closed:
                self.taken = data
                return b""  # Hypercorn sees the client leave; the socket stays open
        return data

    async def _whole_line(self, data: bytes) -> bytes:
        while request_line(data) is None and len(data) <= MAX_LINE_BYTES:
            more = await self._stream.receive_some()
            if not more:
                break
            data += more
        return data

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


class HandoverConnection(TCPServer):
    """Hypercorn's connection handler, telling its stream when the connection is idle."""

    def __init__(self, app: Any, config: Any, context: Any, state: Any,
                 stream: HandoverStream) -> None:
        super().__init__(app, config, context, state, cast(Any, stream))
        self.handover = stream

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            self.handover.set_idle(event.idle)
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        await super()._read_data()
        if self.handover.taken is not None:  # no keep-alive timer holding the hand-over back
            await self.idle_task.stop()
