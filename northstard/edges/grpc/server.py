"""The grpc.aio server: PnlStream, health, reflection, auth, TLS and keepalive.

``GrpcServer`` lives on the asyncio loop of the gRPC thread: ``start``,
``deliver`` and ``stop`` are called there (the trio side schedules them with
``call_soon_threadsafe`` / ``run_coroutine_threadsafe``). Health reports
NOT_SERVING until the feed has a snapshot, SERVING after, and NOT_SERVING
for good once shutdown begins; then streams end with OK and the server gives
the rest ``shutdown_grace_s`` before cancelling them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from northstard.actors.hub import RESUME_BUDGET, ResumeBudget
from northstard.core.message import Message
from northstard.edges.grpc.alertwatch import AlertBoard
from northstard.edges.grpc.auth import BearerAuth
from northstard.edges.grpc.service import SERVICE, Backend, Feed, PnlStream, method_handlers
from northstard.errors import ConfigError, ListenError, NorthstardError
from northstard.settings import GrpcSection

__all__ = ["GrpcServer", "GrpcSettings"]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_FLUSH_S = 0.1


@dataclass(frozen=True)
class GrpcSettings:
    host: str = "127.0.0.1"
    port: int = 8081
    tokens: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    min_client_ping_interval_s: float = 10.0
    max_rate_hz: float = 0.0
    shutdown_grace_s: float = 3.0
    resume: ResumeBudget = RESUME_BUDGET

    @classmethod
    def from_config(cls, section: GrpcSection,
                    resume: ResumeBudget = RESUME_BUDGET) -> GrpcSettings:
        """The ``[grpc]`` section, with the resume budget from ``[hub]``."""
        if (section.tls_cert is None) != (section.tls_key is None):
            raise ConfigError("grpc.tls_key", "tls_cert and tls_key go together")
        return cls(host=section.host, port=section.port, tokens=section.tokens, tls_cert=section.tls_cert,
                   tls_key=section.tls_key, keepalive_time_s=section.keepalive_time_s,
                   keepalive_timeout_s=section.keepalive_timeout_s,
                   min_client_ping_interval_s=section.min_client_ping_interval_s,
                   max_rate_hz=section.max_rate_hz, shutdown_grace_s=section.shutdown_grace_s,
                   resume=resume)

    @property
    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def options(self) -> list[tuple[str, int]]:
        """Keepalive: ping idle connections, drop dead ones, accept client pings this often."""
        return [
            ("grpc.keepalive_time_ms", int(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms",
             int(self.min_client_ping_interval_s * 1000)),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.so_reuseport", 0),
        ]

    def credentials(self) -> grpc.ServerCredentials | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        try:
            pair = (self.tls_key.read_bytes(), self.tls_cert.read_bytes())
        except OSError as exc:
            raise NorthstardError(f"grpc: cannot read TLS files: {exc.strerror}") from exc
        return grpc.ssl_server_credentials([pair])


def _bind_refused(host: str, port: int) -> ListenError | None:
    """Why ``host:port`` cannot be bound, found by binding a plain socket there as grpc does
    (``SO_REUSEADDR``); None when it can be (port 0 always can)."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                           flags=socket.AI_PASSIVE)[0]
        with contextlib.closing(socket.socket(family, kind, proto)) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(where)
    except OSError as exc:
        return ListenError.from_os_error(address, "grpc", exc)
    return None


def _listen_error(host: str, port: int) -> ListenError:
    """Why grpc could not bind (it says only "Failed to bind")."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return _bind_refused(host, port) or ListenError(address, "grpc.port", "grpc could not bind it")


class GrpcServer:
    """The server and its feed; every method runs on the gRPC thread's loop."""

    def __init__(self, settings: GrpcSettings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend
        self.feed: Feed | None = None
        self.alerts = AlertBoard()
        self.health: HealthServicer | None = None
        self.server: grpc.aio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<GrpcServer {self.settings.bind} {self.feed!r}>"

    async def start(self) -> str:
        """Listen; returns the bound ``host:port``."""
        settings = self.settings
        self.feed = Feed(self.backend.catch_up)
        interceptors = [BearerAuth(settings.tokens)] if settings.tokens else []
        server = grpc.aio.server(interceptors=interceptors, options=settings.options())
        server.add_generic_rpc_handlers(
            [method_handlers(PnlStream(self.feed, self.backend, settings.resume, self.alerts))])
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [SERVICE, reflection.SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name],
            server,
        )
        port = self._listen(server)
        await self._set_health(NOT_SERVING)
        await server.start()
        self.server = server
        return f"{settings.bind.rpartition(':')[0]}:{port}"

    def _listen(self, server: grpc.aio.Server) -> int:
        credentials = self.settings.credentials()
        refused = _bind_refused(self.settings.host, self.settings.port)
        if refused is not None:  # asked first: grpc core would also log a line of its own per try
            raise refused
        try:
            if credentials is None:
                return server.add_insecure_port(self.settings.bind)
            return server.add_secure_port(self.settings.bind, credentials)
        except RuntimeError as exc:  # grpc says only "Failed to bind": ask the OS why
            raise _listen_error(self.settings.host, self.settings.port) from exc

    async def _set_health(self, status: int) -> None:
        assert self.health is not None
        for service in ("", SERVICE):
            await self.health.set(service, status)

    def deliver(self, message: Message, snapshot: Message) -> None:
        """What the hub published, and its snapshot at that position (scheduled here from trio)."""
        assert self.feed is not None
        was_ready = self.feed.ready
        self.feed.publish(message, snapshot)
        if self.feed.ready != was_ready:
            self._spawn(self._set_health(SERVING if self.feed.ready else NOT_SERVING))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """NOT_SERVING, end every stream with OK, then stop within the grace period."""
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
            # Watch streams write NOT_SERVING from their own tasks: give them a moment
            # to flush it before the server starts cancelling calls
            await asyncio.sleep(HEALTH_FLUSH_S)
        if self.feed is not None:
            self.feed.close()
        self.alerts.close()
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace_s)
