"""A minimal WebSocket client on wsproto: no background task, so it can live in a generator.

``KalshiSource.stream()`` is an async generator consumed by the source actor.
trio-websocket runs a reader task in a nursery, and a nursery must never stay
open across a ``yield`` (when the consumer is cancelled while the generator
is suspended, trio reports a corrupted cancel-scope stack). This client does
the same protocol work (wsproto is what trio-websocket is built on) from the
calling task only: a handshake with extra (signed) headers, text messages,
pong replies, close frames, and ``receive(patience)`` that returns None when
nothing arrived in time.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from northstard.core.bodylimit import MAX_BODY_BYTES, too_large
from northstard.errors import SourceError

from .errors import KalshiError

__all__ = ["WsClient"]

_RECEIVE = 65536


class WsClient:
    """One open WebSocket connection, driven by whichever task calls it."""

    def __init__(self, stream: trio.abc.Stream, conn: WSConnection, where: str,
                 max_message: int = MAX_BODY_BYTES) -> None:
        self._stream = stream
        self._max_message = max_message
        self._partial_size = 0
        self._conn = conn
        self._where = where
        self._messages: deque[str] = deque()
        self._partial: list[str] = []
        self._closed = False
        self._waiting: trio.CancelScope | None = None
        self.last_data = trio.current_time()

    def __repr__(self) -> str:
        return f"<WsClient {self._where} queued={len(self._messages)} closed={self._closed}>"

    @classmethod
    async def connect(cls, url: str, headers: Mapping[str, str], where: str = "stream",
                      max_message: int = MAX_BODY_BYTES) -> WsClient:
        """Open ``url`` (ws:// or wss://) and complete the handshake (the caller sets a deadline)."""
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        stream: trio.abc.Stream
        try:
            if secure:
                stream = await trio.open_ssl_over_tcp_stream(
                    host, port, ssl_context=ssl.create_default_context())
            else:
                stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise KalshiError(f"kalshi: {where}: cannot connect: {exc.strerror or exc}",
                              reachable=False) from None
        client = cls(stream, WSConnection(ConnectionType.CLIENT), where, max_message)
        try:
            await client._handshake(parts.netloc, target, headers)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return client

    async def _handshake(self, netloc: str, target: str, headers: Mapping[str, str]) -> None:
        extra = [(k.encode(), v.encode()) for k, v in headers.items()]
        await self._stream.send_all(self._conn.send(Request(host=netloc, target=target,
                                                             extra_headers=extra)))
        while True:
            data = await self._stream.receive_some(_RECEIVE)
            if not data:
                raise SourceError(f"kalshi: {self._where}: connection closed during the handshake")
            self._conn.receive_data(bytes(data))
            for event in self._conn.events():
                if isinstance(event, RejectConnection):
                    hint = (" (authentication refused: check key_id and private_key)"
                            if event.status_code in (401, 403) else "")
                    raise KalshiError(
                        f"kalshi: {self._where}: handshake refused with HTTP {event.status_code}{hint}",
                        status=event.status_code)
                if isinstance(event, AcceptConnection):
                    # events after the accept (early messages) are kept for receive()
                    for later in self._conn.events():
                        await self._on_event(later)
                    return

    async def send_json(self, value: Any) -> None:
        await self._send(TextMessage(data=json.dumps(value)))

    async def receive(self, patience: float) -> str | None:
        """The next text message, or None if none arrived within ``patience`` s."""
        while not self._messages:
            data: bytes | None = None
            try:
                with trio.move_on_after(patience) as self._waiting:
                    data = await self._receive_some()
            finally:
                self._waiting = None
            if data is None:
                return None
            self.last_data = trio.current_time()
            self._conn.receive_data(data)
            for event in self._conn.events():
                await self._on_event(event)
        return self._messages.popleft()

    async def ping(self) -> None:
        """Send a ping: any answer (the pong included) counts as data for ``last_data``."""
        await self._send(Ping(payload=b"northstard"))

    def interrupt(self) -> None:
        """Make a ``receive`` that is waiting for data return None now (from any task)."""
        if self._waiting is not None:
            self._waiting.cancel()

    async def aclose(self) -> None:
        """Send a close frame if we can, then close the socket."""
        if not self._closed:
            self._closed = True
            # best effort: the connection may already be gone
            with contextlib.suppress(Exception), trio.move_on_after(1):
                await self._stream.send_all(self._conn.send(CloseConnection(code=1000)))
        await trio.aclose_forcefully(self._stream)

    async def _receive_some(self) -> bytes:
        try:
            data = await self._stream.receive_some(_RECEIVE)
        except (trio.BrokenResourceError, OSError) as exc:
            raise SourceError(f"kalshi: {self._where}: connection lost: {exc}") from None
        if not data:
            raise SourceError(f"kalshi: {self._where}: connection closed without a close frame")
        return bytes(data)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            chunk = event.data if isinstance(event.data, str) else event.data.decode("utf-8", "replace")
            self._partial_size += len(chunk)
            if self._partial_size > self._max_message:
                self._partial.clear()
                raise too_large(f"kalshi: {self._where}: message", self._max_message)
            self._partial.append(chunk)
            if event.message_finished:
                self._messages.append("".join(self._partial))
                self._partial.clear()
                self._partial_size = 0
        elif isinstance(event, Ping):
            await self._send(event.response())
        elif isinstance(event, CloseConnection):
            self._closed = True
            reason = f" {event.reason}" if event.reason else ""
            raise SourceError(f"kalshi: {self._where}: closed by the server (code {event.code}{reason})")

    async def _send(self, event: Event) -> None:
        try:
            await self._stream.send_all(self._conn.send(event))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise SourceError(f"kalshi: {self._where}: connection lost: {exc}") from None
