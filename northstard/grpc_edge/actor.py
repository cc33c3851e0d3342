"""The gRPC edge actor (trio side): the server's thread, and the feed from the hub.

    hub ──(trio: one Subscription, a position)──▶ feeder ──call_soon_threadsafe──▶
        asyncio loop (thread): EventRing ─▶ N streams, each a position

The feeder is one hub subscriber for all gRPC streams: per hub message it
hands the patch and document over once; the loop encodes each event once and
every stream sends those same bytes. The hub closing (daemon shutdown) stops
the server gracefully; the actor returns when the thread has ended.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio

from ..config import SourceSection
from ..errors import NorthstardError
from ..hub import Hub, HubClosed, Message
from ..mergepatch import Doc
from ..metrics import Metrics
from ..source import SourceStats
from ..web.limits import LimitSettings
from .bridge import AsyncioThread, open_asyncio_thread
from .queries import source_entries
from .ring import Published
from .server import GrpcServer, GrpcSettings
from .service import Backend

__all__ = ["GrpcDeps", "GrpcHandle", "published", "run_grpc"]

log = structlog.get_logger("northstard.grpc")
TRANSPORT = "grpc"


@dataclass
class GrpcHandle:
    """Where the gRPC edge listens (None while it does not); filled in by ``run_grpc``."""

    address: str | None = None
    server: GrpcServer | None = None


@dataclass(frozen=True)
class GrpcDeps:
    """What the edge reads from the rest of the daemon (all trio-owned)."""

    hub: Hub
    db_path: Path
    sections: Mapping[str, SourceSection]
    stats: Mapping[str, SourceStats]
    metrics: Metrics | None = None
    limits: LimitSettings = field(default_factory=LimitSettings)  # the stream caps


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def published(message: Message, doc: Doc) -> Published:
    """A hub message (and the hub's document at its seq) as the loop takes it."""
    body: dict[str, Any] = json.loads(message.text)
    return Published(kind=message.kind, epoch=body["epoch"], seq=body["seq"],
                     prev=body.get("prev", 0), ts_ms=body["ts"], doc=doc,
                     patch=body.get("patch", {}))


def _backend(settings: GrpcSettings, deps: GrpcDeps, thread: AsyncioThread) -> Backend:
    token = thread.token
    collect = partial(source_entries, deps.hub, deps.sections, deps.stats)

    async def sources() -> list[dict[str, Any]]:  # on the loop; the reading happens on trio's thread
        entries: list[dict[str, Any]] = await asyncio.to_thread(
            trio.from_thread.run_sync, collect, trio_token=token
        )
        return entries

    def count(delta: int) -> None:  # on trio's thread
        deps.hub.clients[TRANSPORT] += delta
        if deps.metrics is not None:
            deps.metrics.clients.labels(TRANSPORT).set(deps.hub.clients[TRANSPORT])

    counters = {}
    if deps.metrics is not None:
        counters = {k: deps.metrics.messages.labels(TRANSPORT, k) for k in ("snapshot", "delta")}

    def sent(kind: str) -> None:  # on the loop: prometheus counters are thread-safe
        if counters:
            counters[kind].inc()

    def refused(reason: str) -> None:  # on the loop
        if deps.metrics is not None:
            deps.metrics.refused.labels(reason).inc()

    return Backend(db_path=deps.db_path, sources=sources, max_rate_hz=settings.max_rate_hz,
                   streams_changed=lambda delta: thread.to_trio(count, delta), sent=sent,
                   limits=deps.limits, token_keys=bool(settings.tokens), refused=refused)


async def _feed(hub: Hub, thread: AsyncioThread, server: GrpcServer) -> None:
    """Hand every hub message to the loop until the hub closes."""
    subscription = hub.subscribe(TRANSPORT)  # not entered: the feeder is not a client
    while True:
        try:
            message = await subscription.next_message()
        except HubClosed:
            return
        if not thread.call_soon(server.deliver, published(message, hub.doc)):
            raise NorthstardError("grpc: the server's event loop is gone")


async def run_grpc(
    settings: GrpcSettings,
    deps: GrpcDeps,
    handle: GrpcHandle,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve gRPC until the hub closes, then stop within ``settings.shutdown_grace_s``."""
    if deps.hub.closed:
        task_status.started()
        return
    async with open_asyncio_thread() as thread:
        server = GrpcServer(settings, _backend(settings, deps, thread))
        handle.address = await thread.run(server.start())
        handle.server = server
        log.info("grpc listening", address=handle.address, tls=settings.tls_cert is not None,
                 auth=bool(settings.tokens))
        if settings.tokens and settings.tls_cert is None and not _loopback(settings.host):
            log.warning("grpc bearer tokens travel in clear text: set grpc.tls_cert and tls_key")
        task_status.started()
        try:
            await _feed(deps.hub, thread, server)
        finally:
            handle.address = None
            with trio.CancelScope(shield=True), trio.move_on_after(settings.shutdown_grace_s + 2):
                await thread.run(server.stop())
            log.info("grpc stopped")
