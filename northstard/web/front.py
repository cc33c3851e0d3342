"""One listener, one port: the streaming paths to the raw-socket edges, the rest to Hypercorn.

    accept ─▶ read the request line ─┬─ /ws             ─▶ fastws.WsEdge   (head parsed here)
                                     ├─ /api/pnl/stream ─▶ fastsse.SseEdge
                                     └─ anything else   ─▶ Hypercorn's TCPServer, the bytes
                                                           already read replayed first
                                                           (handover.py)

A keep-alive connection that Hypercorn serves comes back to the front when
its next request is for an edge, once Hypercorn has answered the one before
(a browser's EventSource often reuses the connection that loaded the page;
see ``handover.py``). Only a streaming request pipelined in the same read as
the request before it stays with Hypercorn, which has no route for it (404).

The Hypercorn half does what ``hypercorn.trio.run.worker_serve`` does for a
plain-TCP listener (lifespan, worker context, one ``TCPServer`` per
connection, a graceful stop), with Hypercorn's own classes: hypercorn is
pinned to 0.18.* in pyproject.toml for that. TLS is not served here (as
before): terminate it in a reverse proxy.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

from .broadcast import send_all
from .handover import HandoverConnection, HandoverStream
from .http1 import (
    MAX_HEAD_BYTES,
    BadRequest,
    Request,
    error_response,
    head_end,
    parse_head,
    request_line,
)

__all__ = ["Edge", "Front"]

log = structlog.get_logger("northstard.web")

RECEIVE_BYTES = 65536
MAX_LINE_BYTES = 8192
ACCEPT_BATCH = 64
CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class Edge(Protocol):
    """A raw-socket edge: the paths it takes, its background task, its connections."""

    paths: tuple[str, ...]

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    async def serve(self, sock: socket.socket, request: Request, rest: bytes) -> None: ...

    def close_all(self) -> None: ...


def _close(sock: socket.socket) -> None:
    """Close after a short answer: FIN first, so the answer is not cut by a reset."""
    if sock.fileno() < 0:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    sock.close()


class Front:
    """Serves ``app`` through Hypercorn and ``edges`` on the same listening sockets."""

    def __init__(self, app: Any, config: HypercornConfig, edges: Sequence[Edge]) -> None:
        self.app = wrap_app(app, config.wsgi_max_body_size, None)
        self.config = config
        self.edges = list(edges)
        self.routes = {path: edge for edge in self.edges for path in edge.paths}
        self.context = WorkerContext(None)
        self.lifespan_state: dict[str, Any] = {}
        self.state = ConnectionState(self.lifespan_state)
        self._routing: set[trio.CancelScope] = set()
        self._at_capacity = False

    def __repr__(self) -> str:
        return f"<Front routes={sorted(self.routes)} routing={len(self._routing)}>"

    async def serve(self, shutdown: Callable[[], Awaitable[Any]], *,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until ``shutdown`` returns, then stop gracefully; ``started`` gets the URLs."""
        self.config.set_statsd_logger_class(StatsdLogger)
        lifespan = Lifespan(self.app, self.config, self.lifespan_state)
        async with trio.open_nursery() as lifespan_nursery:
            await lifespan_nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            self.state = ConnectionState(self.lifespan_state.copy())
            sockets = self._listen()
            try:
                await self._serve(sockets, shutdown, task_status)
            finally:
                for sock in sockets:
                    sock.close()
            await lifespan.wait_for_shutdown()
            lifespan_nursery.cancel_scope.cancel()

    def _listen(self) -> list[socket.socket]:
        sockets = self.config.create_sockets().insecure_sockets
        for sock in sockets:
            sock.listen(self.config.backlog)
            sock.setblocking(False)
        return sockets

    async def _serve(self, sockets: list[socket.socket], shutdown: Callable[[], Awaitable[Any]],
                     task_status: trio.TaskStatus[list[str]]) -> None:
        urls = [f"http://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets]
        async with trio.open_nursery() as background:
            for edge in self.edges:
                await background.start(edge.run)
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as accepting:
                    for sock in sockets:
                        accepting.start_soon(self._accept, sock, connections)
                    task_status.started(urls)
                    await shutdown()
                    accepting.cancel_scope.cancel()
                await self._stop(sockets, connections)
            background.cancel_scope.cancel()

    async def _stop(self, sockets: list[socket.socket], connections: trio.Nursery) -> None:
        """No new connections; streams get their goodbye; the rest finish within the grace."""
        for sock in sockets:
            trio.lowlevel.notify_closing(sock)
            sock.close()
        for edge in self.edges:
            edge.close_all()
        for scope in list(self._routing):
            scope.cancel()
        await self.context.terminated.set()
        connections.cancel_scope.deadline = trio.current_time() + self.config.graceful_timeout

    async def _accept(self, listener: socket.socket, connections: trio.Nursery) -> None:
        while True:
            await trio.lowlevel.wait_readable(listener)
            for _ in range(ACCEPT_BATCH):
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno not in CAPACITY_ERRNOS:
                        raise
                    await self._wait_for_capacity(exc)
                    break
                self._at_capacity = False
                connections.start_soon(self._connection, sock)

    async def _wait_for_capacity(self, exc: OSError) -> None:
        if not self._at_capacity:
            log.error("cannot accept connections: raise the open-files limit (LimitNOFILE)",
                      error=exc.strerror)
            self._at_capacity = True
        await trio.sleep(0.1)

    async def _connection(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            head = await self._read_head(sock, bytearray())
            while head is not None:
                edge = self._edge(head)
                if edge is not None:
                    await self._serve_edge(edge, sock, head)
                    return
                taken = await self._serve_hypercorn(sock, head)
                head = None if taken is None else await self._read_head(sock, bytearray(taken))
        except Exception as exc:  # one connection's failure never stops the server
            log.error("connection failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        finally:
            _close(sock)

    def _edge(self, data: bytes | bytearray) -> Edge | None:
        line = request_line(data)
        return self.routes.get(line[1].partition("?")[0]) if line else None

    def _routed(self, buffer: bytearray) -> bool:
        """Enough of the request has arrived to route it (and, for an edge, to parse it)."""
        if request_line(buffer) is None:
            return len(buffer) > MAX_LINE_BYTES
        if self._edge(buffer) is None:
            return True
        return head_end(buffer) >= 0 or len(buffer) > MAX_HEAD_BYTES

    async def _read_head(self, sock: socket.socket, buffer: bytearray) -> bytearray | None:
        """Read on until the request can be routed; None if the client left or took too long."""
        with trio.CancelScope() as scope:
            self._routing.add(scope)
            scope.deadline = trio.current_time() + self.config.keep_alive_timeout
            try:
                while not self._routed(buffer):
                    await trio.lowlevel.wait_readable(sock)
                    try:
                        data = sock.recv(RECEIVE_BYTES)
                    except BlockingIOError:
                        continue
                    if not data:
                        return None
                    buffer += data
                return buffer
            except OSError:
                return None
            finally:
                self._routing.discard(scope)
        return None

    async def _serve_hypercorn(self, sock: socket.socket, head: bytearray) -> bytes | None:
        """Hypercorn serves the connection; the bytes of a request it gave back, if any."""
        stream = HandoverStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)),
                                bytes(head), lambda data: self._edge(data) is not None)
        await HandoverConnection(self.app, self.config, self.context, self.state, stream).run()
        return stream.taken

    async def _serve_edge(self, edge: Edge, sock: socket.socket, buffer: bytearray) -> None:
        end = head_end(buffer)
        try:
            if end < 0:
                raise BadRequest(431, "request_header_fields_too_large", "request head over 16 KiB")
            request = parse_head(buffer[:end])
        except BadRequest as exc:
            await send_all(sock, error_response(exc.status, exc.error, exc.detail, exc.headers))
            return
        await edge.serve(sock, request, bytes(buffer[end:]))
