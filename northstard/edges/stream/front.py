"""One listener, one port: the streaming paths to the raw-socket edges, the rest to the app.

    accept ─▶ read the request head ─┬─ /ws             ─▶ fastws.WsEdge   (head parsed here)
                                     ├─ /api/pnl/stream ─▶ fastsse.SseEdge
                                     └─ anything else   ─▶ appserver.AppServer: the Quart app
                                                           as an ASGI app, over h11

A connection's requests are served one at a time: after each answer from the
app the front reads the next head (the bytes already read come first) and
routes it again, so a keep-alive connection may end on an edge (a browser's
EventSource often reuses the connection that loaded the page), pipelined or
not. Every request head is read whole by the front before anyone acts on it;
the framings that could be read two ways (``http1.request_size``: request
smuggling shapes, h2c) are answered with a JSON error and closed; a body is
read by the app server as that request's body, never as a request.

At accept, each connection takes a slot of ``limits.open_connections``: per
address (loopback included) and in total, below the open-files limit less a
reserve. At the total cap the connection that has waited longest for a whole
request head is closed to make room (its slot is freed as its task ends: the
total is exceeded by at most the evictions of one accept batch, within the
reserve); with none to close, or at the address's cap, the new connection is
answered at once (503 / 429) and closed, counted in
``northstard_refused_total`` and logged once a minute.

The app's ASGI lifespan runs once around the listener (``lifespan.py``). With
``server.tls_cert`` each connection first does its TLS handshake
(``tls.py``), and everything after it reads and writes plaintext through the
same socket calls; the app's scope then says ``https``. Only the public APIs
of trio, h11 and the ASGI interface are used.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
import trio

from northstard.core.http1 import (
    MAX_HEAD_BYTES,
    MAX_LINE_BYTES,
    RECEIVE_BYTES,
    Request,
    error_response,
    head_end,
    parse_head,
    request_line,
    request_size,
)
from northstard.edges.activation import http_sockets, take_sockets
from northstard.edges.appserver import AppServer, AppSettings
from northstard.edges.asgi import Asgi
from northstard.edges.lifespan import run_lifespan
from northstard.edges.stream.broadcast import send_all
from northstard.edges.tls import TlsServer, TlsSocket
from northstard.errors import ListenError, RequestError
from northstard.policy.limits import Limits, LimitSettings
from northstard.policy.ratelimit import RateLimited, retry_after
from northstard.status.metrics import Metrics

__all__ = ["Edge", "Front", "ListenSettings"]

log = structlog.get_logger("northstard.web")

ACCEPT_BATCH = 64
CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
STREAM_RETRY_AFTER_S = 5
Principal = Callable[[Request], str | None]
"""Who a request is (the short id of the accepted token it carries), for per-token stream caps."""


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


def _host(address: object) -> str:
    """The client's IP address (empty for a Unix socket)."""
    return str(address[0]) if isinstance(address, tuple) else ""


def _peer(sock: socket.socket) -> object:
    try:
        return sock.getpeername()
    except OSError:
        return ""


@dataclass(frozen=True)
class ListenSettings:
    """Where to listen and how to stop: ``[server]`` host, port, backlog, shutdown_grace_s."""

    host: str = "127.0.0.1"
    port: int = 0
    backlog: int = 4096
    grace_s: float = 3.0


def _url(scheme: str, sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"{scheme}://unix:{address}"
    host = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    return f"{scheme}://{host}:{address[1]}"


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``: IPv6 for an address with a colon, else IPv4."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Front:
    """Serves ``app`` (ASGI) and ``edges`` on the same listening sockets."""

    tls: TlsServer | None = None  # set for HTTPS: every connection starts with its handshake

    def __init__(self, app: Asgi, settings: ListenSettings, edges: Sequence[Edge], *,
                 limits: Limits | None = None, principal: Principal | None = None,
                 metrics: Metrics | None = None) -> None:
        self.limits = limits or Limits(LimitSettings())
        if self.limits.rest.rate > 0:
            app = RateLimited(app, self.limits, metrics)
        self.app = app
        self.settings = settings
        self.principal = principal
        self.metrics = metrics
        self.edges = list(edges)
        self.routes = {path: edge for edge in self.edges for path in edge.paths}
        limit = self.limits.settings
        self.lifespan_state: dict[str, object] = {}
        self.http = AppServer(app, AppSettings(body_timeout_s=limit.header_timeout_s,
                                               send_timeout_s=limit.idle_timeout_s),
                              self.lifespan_state, self._count)
        self._routing: dict[trio.CancelScope, None] = {}  # heads being read, oldest first
        self._at_capacity = False
        self._stopping = False

    def __repr__(self) -> str:
        return f"<Front routes={sorted(self.routes)} routing={len(self._routing)}>"

    async def serve(self, shutdown: Callable[[], Awaitable[object]], *,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until ``shutdown`` returns, then stop gracefully; ``started`` gets the URLs."""
        stopped = trio.Event()
        async with trio.open_nursery() as lifespan:
            await lifespan.start(run_lifespan, self.app, self.lifespan_state, stopped)
            sockets = self._listen()
            try:
                await self._serve(sockets, shutdown, task_status)
            finally:
                for sock in sockets:
                    sock.close()
                stopped.set()

    def _listen(self) -> list[socket.socket]:
        """The sockets systemd passed (socket activation, ``activation.py``), else our own."""
        passed = take_sockets()
        sockets = http_sockets(passed)
        for name, sock in passed:
            if sock not in sockets:
                log.warning("passed socket not used: gRPC binds its own ([grpc] host, port)", name=name)
                sock.close()
        if not sockets:
            sockets = [self._bind()]
            for sock in sockets:
                sock.listen(self.settings.backlog)
        for sock in sockets:
            sock.setblocking(False)
        return sockets

    def _bind(self) -> socket.socket:
        """The socket for ``[server]`` host and port; a busy port is one ListenError, said once."""
        host, port = self.settings.host, self.settings.port
        try:
            return _bind(host, port)
        except OSError as exc:
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise ListenError.from_os_error(address, "server", exc) from None

    async def _serve(self, sockets: list[socket.socket], shutdown: Callable[[], Awaitable[object]],
                     task_status: trio.TaskStatus[list[str]]) -> None:
        scheme = "https" if self.tls is not None else "http"
        urls = [_url(scheme, s) for s in sockets]
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
        self._stopping = True  # a connection closes after the request it is serving
        for edge in self.edges:
            edge.close_all()
        for scope in list(self._routing):
            scope.cancel()
        connections.cancel_scope.deadline = trio.current_time() + self.settings.grace_s
        await trio.lowlevel.checkpoint()

    async def _accept(self, listener: socket.socket, connections: trio.Nursery) -> None:
        while True:
            await trio.lowlevel.wait_readable(listener)
            for _ in range(ACCEPT_BATCH):
                try:
                    sock, address = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno not in CAPACITY_ERRNOS:
                        raise
                    await self._wait_for_capacity(exc)
                    break
                self._at_capacity = False
                host = _host(address)
                if self._admitted(sock, host) and self._held(sock, host):
                    connections.start_soon(self._hold, sock, host)

    def _held(self, sock: socket.socket, host: str) -> bool:
        """Within the concurrent connection caps (per address, loopback included, and in total);
        else a 429 (the address's) or 503 (the total) and closed at once."""
        limits = self.limits
        cap = limits.open_connections.acquire(host or None)
        if cap == "total" and self._evict():
            cap = limits.open_connections.acquire(host or None, over_total=True)
        if cap is None:
            return True
        self._count(f"connections_{cap}")
        key = host if cap == "client" else ""
        if limits.refusal_log.due(f"connections:{key}", trio.current_time()):
            log.warning("refusing connections over the concurrent connection cap", client=key or None,
                        cap=cap, open=limits.open_connections.open, max=limits.max_connections)
        status, error, detail = limits.connection_refusal(cap)
        self._refuse_at_accept(sock, status, error, detail, STREAM_RETRY_AFTER_S)
        return False

    def _evict(self) -> bool:
        """At the total cap: close the connection that has waited longest for a whole request
        head (an idle or trickling client), so that a client that asks is served."""
        if not self._routing:
            return False
        scope = next(iter(self._routing))
        del self._routing[scope]
        scope.cancel()
        self._count("connections_evicted")
        return True

    async def _hold(self, sock: socket.socket, host: str) -> None:
        try:
            await self._connection(sock)
        finally:
            self.limits.open_connections.release(host or None)

    def _refuse_at_accept(self, sock: socket.socket, status: int, error: str, detail: str,
                          seconds: int) -> None:
        if self.tls is None:  # over TLS there is no answer before a handshake: just closed
            with contextlib.suppress(OSError):  # the answer fits any socket buffer: never blocks
                sock.setblocking(False)
                sock.send(error_response(status, error, detail, [("retry-after", str(seconds))]))
        _close(sock)

    def _admitted(self, sock: socket.socket, host: str) -> bool:
        """Within its address's connection rate; else a 429 and closed at once (no task)."""
        limits = self.limits
        if limits.exempt(host):
            return True
        now = trio.current_time()
        wait = limits.connections.take(host, now)
        if not wait:
            return True
        self._count("connection_rate")
        if limits.refusal_log.due(host, now):
            log.warning("refusing connections over the rate limit", client=host,
                        rate_per_s=limits.settings.connect_rate_per_s)
        seconds = retry_after(wait)
        self._refuse_at_accept(sock, 429, "rate_limited",
                               f"too many connections from this address; retry in {seconds} s", seconds)
        return False

    def _count(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.refused.labels(reason).inc()

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
            first = bytearray()
            if self.tls is not None:
                accepted = await self.tls.handshake(sock)
                if accepted is None:
                    return
                sock, first = accepted
            head = await self._read_head(sock, first)
            while head is not None:
                edge = self._edge(head)
                if edge is not None:
                    await self._serve_edge(edge, sock, head)
                    return
                refusal = self._refusal(head)
                if refusal is not None:
                    await self._refuse(sock, refusal)
                    return
                rest = await self.http.serve(sock, head, "https" if isinstance(sock, TlsSocket) else "http")
                head = None if rest is None or self._stopping else await self._read_head(sock, rest)
        except Exception as exc:  # one connection's failure never stops the server
            log.error("connection failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        finally:
            _close(sock)

    def _edge(self, data: bytes | bytearray) -> Edge | None:
        line = request_line(data)
        return self.routes.get(line[1].partition("?")[0]) if line else None

    def _refusal(self, data: bytes | bytearray) -> RequestError | None:
        """Why the front refuses the request at the start of ``data`` (a whole head), if it does."""
        try:
            request_size(data)
        except RequestError as exc:
            return exc
        return None

    async def _refuse(self, sock: socket.socket, refusal: RequestError) -> None:
        """Answer a refused request and close: what follows it cannot be trusted."""
        self._count(refusal.error)
        await send_all(sock, error_response(refusal.status, refusal.error, refusal.detail, refusal.headers))

    def _routed(self, buffer: bytearray) -> bool:
        """The whole request head has arrived (or enough to know it is malformed or too long)."""
        line = request_line(buffer)
        if line is None:
            return len(buffer) > MAX_LINE_BYTES
        if not line[0]:
            return self._edge(buffer) is None  # not three parts: the app server answers 400
        return head_end(buffer) >= 0 or len(buffer) > MAX_HEAD_BYTES

    async def _read_head(self, sock: socket.socket, buffer: bytearray) -> bytearray | None:
        """Read on until the head is complete; None if the client left or took too long.

        An idle connection may wait ``limits.idle_timeout_s`` for its first byte; from
        there the head has ``limits.header_timeout_s`` (slowloris: 408, closed).
        """
        header_timeout = self.limits.settings.header_timeout_s
        with trio.CancelScope() as scope:
            self._routing[scope] = None
            idle = self.limits.settings.idle_timeout_s
            scope.deadline = trio.current_time() + (header_timeout if buffer else idle)
            try:
                while not self._routed(buffer):
                    await trio.lowlevel.wait_readable(sock)
                    try:
                        data = sock.recv(RECEIVE_BYTES)
                    except BlockingIOError:
                        continue
                    if not data:
                        return None
                    if not buffer:
                        scope.deadline = min(scope.deadline, trio.current_time() + header_timeout)
                    buffer += data
                return buffer
            except OSError:
                return None
            finally:
                self._routing.pop(scope, None)
        if buffer and trio.current_time() >= scope.deadline:
            self._timed_out(sock, header_timeout)
        return None

    def _timed_out(self, sock: socket.socket, seconds: float) -> None:
        """A 408 to a head that took too long (best effort: the socket is closed next)."""
        self._count("header_timeout")
        with contextlib.suppress(OSError):
            sock.send(error_response(408, "request_timeout",
                                     f"the request head took over {seconds:g} s"))

    async def _serve_edge(self, edge: Edge, sock: socket.socket, buffer: bytearray) -> None:
        end = head_end(buffer)
        try:
            if end < 0:
                raise RequestError("request_header_fields_too_large", "request head over 16 KiB", 431)
            request = parse_head(buffer[:end])
        except RequestError as exc:
            await send_all(sock, error_response(exc.status, exc.error, exc.detail, exc.headers))
            return
        limits = self.limits
        key = limits.stream_key(_host(_peer(sock)), self.principal(request) if self.principal else None)
        cap = limits.streams.acquire(key)
        if cap is not None:
            self._count(f"streams_{cap}")
            await send_all(sock, error_response(
                429, "too_many_streams", limits.stream_refusal(cap, key),
                [("retry-after", str(STREAM_RETRY_AFTER_S))]))
            return
        if limits.settings.stream_send_buffer_bytes:  # bounds what a reader that stops can pin
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.settings.stream_send_buffer_bytes)
        try:
            await edge.serve(sock, request, bytes(buffer[end:]))
        finally:
            limits.streams.release(key)
