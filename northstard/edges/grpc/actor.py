"""The gRPC edge actor (trio side): the server's thread, and the feed from the hub.

    hub ──(trio: one Subscription, a position)──▶ feeder ──call_soon_threadsafe──▶
        asyncio loop (thread): Feed (the hub's newest message) ─▶ N streams, each a position
                                 └── a stream further behind: hub.catch_up, one hop to trio

The feeder is one hub subscriber for all gRPC streams: per hub message it
hands that ``Message`` (and the hub's snapshot message at the same position)
over, as objects, never re-parsed; the loop builds each message's protobuf
once and every stream sends those same bytes. The gRPC edge keeps no ring:
merged deltas come from the hub's, shared with the other edges. The hub closing (daemon shutdown) stops
the server gracefully; the actor returns when the thread has ended.

A port it cannot bind (held by another process) is said once, at error level,
and shown in ``/api/health`` (``grpc: failing`` with the reason, status
``degraded``); the actor then retries quietly, every ``RETRY_FIRST_S`` doubling
up to ``RETRY_MAX_S``, and says "grpc listening" once the port is free. The rest
of the daemon serves on meanwhile: gRPC is an edge, not a reason to stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import structlog
import trio

from northstard.actors.hub import Hub, HubClosed
from northstard.actors.source import SourceStats
from northstard.config import SourceSection
from northstard.core.hosts import is_loopback
from northstard.core.message import Message
from northstard.core.position import Position
from northstard.edges.grpc.bridge import AsyncioThread, open_asyncio_thread
from northstard.edges.grpc.queries import source_entries
from northstard.edges.grpc.server import GrpcServer, GrpcSettings
from northstard.edges.grpc.service import TRANSPORT, Backend
from northstard.errors import ListenError, NorthstardError
from northstard.policy.limits import LimitSettings
from northstard.status.alertfeed import AlertFeed
from northstard.status.grpc import GrpcHandle
from northstard.status.metrics import Metrics

__all__ = ["GrpcDeps", "GrpcHandle", "run_grpc"]

log = structlog.get_logger("northstard.grpc")
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 60.0


@dataclass(frozen=True)
class GrpcDeps:
    """What the edge reads from the rest of the daemon (all trio-owned)."""

    hub: Hub
    db_path: Path
    sections: Mapping[str, SourceSection]
    stats: Mapping[str, SourceStats]
    metrics: Metrics | None = None
    limits: LimitSettings = field(default_factory=LimitSettings)  # the stream caps
    alerts: AlertFeed | None = None  # WatchAlerts' events; None: the method answers UNIMPLEMENTED
    core_url: str | None = None  # an edge: no database, GetHistory/Explain name the core


def _backend(settings: GrpcSettings, deps: GrpcDeps, thread: AsyncioThread) -> Backend:
    token = thread.token
    collect = partial(source_entries, deps.hub, deps.sections, deps.stats)

    async def sources() -> list[dict[str, object]]:  # on the loop; the reading happens on trio's thread
        entries: list[dict[str, object]] = await asyncio.to_thread(
            trio.from_thread.run_sync, collect, trio_token=token
        )
        return entries

    async def catch_up(position: Position | None) -> Message | None:  # on the loop, as sources()
        def ask() -> Message | None:  # in a worker thread: the hub answers on trio's thread
            return trio.from_thread.run_sync(deps.hub.catch_up, position, trio_token=token)

        try:
            return await asyncio.to_thread(ask)
        except trio.RunFinishedError:  # the daemon is stopping: the feed closes next
            return None

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
                   limits=deps.limits, token_keys=bool(settings.tokens), refused=refused,
                   catch_up=catch_up, core_url=deps.core_url)


async def _feed(hub: Hub, thread: AsyncioThread, server: GrpcServer) -> None:
    """Hand every hub message to the loop until the hub closes."""
    subscription = hub.subscribe(TRANSPORT)  # not entered: the feeder is not a client
    while True:
        try:
            message = await subscription.next_message()
        except HubClosed:
            return
        if not thread.call_soon(server.deliver, message, hub.snapshot()):
            raise NorthstardError("grpc: the server's event loop is gone")


async def _feed_alerts(feed: AlertFeed, thread: AsyncioThread, server: GrpcServer) -> None:
    """Hand every alert event (and the alerts current after it) to the loop, until cancelled.

    When the feed's ring turned over before this task read it (a burst of more than its size
    in one go), the board is told of the gap and its streams drop to the latest state."""
    seen = 0
    while True:
        bodies = feed.after(seen)
        gap = len(bodies) == feed.recent.maxlen and int(str(bodies[0]["id"])) > seen + 1
        seen = feed.last_id
        if not thread.call_soon(server.alerts.publish, bodies, list(feed.current.values()), gap):
            raise NorthstardError("grpc: the server's event loop is gone")
        await feed.wait_after(seen)


async def run_grpc(
    settings: GrpcSettings,
    deps: GrpcDeps,
    handle: GrpcHandle,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve gRPC until the hub closes, then stop within ``settings.shutdown_grace_s``.

    Started once listening, or once the first bind has failed (it retries from there).
    """
    if deps.hub.closed:
        task_status.started()
        return
    started = False
    delay = RETRY_FIRST_S
    while True:
        refused = await _serve(settings, deps, handle, None if started else task_status)
        if refused is None:
            return
        _cannot_listen(handle, refused, delay)
        if not started:
            task_status.started()
            started = True
        await trio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_S)


def _cannot_listen(handle: GrpcHandle, exc: ListenError, delay: float) -> None:
    """Said once per outage (not once per retry); ``/api/health`` shows it meanwhile."""
    if handle.error is None:
        log.error("grpc cannot listen; retrying quietly until it can", error=str(exc),
                  retry_s=delay, retry_max_s=RETRY_MAX_S)
    handle.error = str(exc)
    handle.failures += 1
    handle.changed()


async def _serve(settings: GrpcSettings, deps: GrpcDeps, handle: GrpcHandle,
                 task_status: trio.TaskStatus[None] | None) -> ListenError | None:
    """Serve until the hub closes (None); or, when the port cannot be bound, why not."""
    async with open_asyncio_thread() as thread:
        server = GrpcServer(settings, _backend(settings, deps, thread))
        try:
            handle.address = await thread.run(server.start())
        except ListenError as exc:
            return exc
        handle.server, handle.error, handle.failures = server, None, 0
        handle.changed()
        log.info("grpc listening", address=handle.address, tls=settings.tls_cert is not None,
                 auth=bool(settings.tokens))
        if settings.tokens and settings.tls_cert is None and not is_loopback(settings.host):
            log.warning("grpc bearer tokens travel in clear text: set grpc.tls_cert and tls_key")
        if task_status is not None:
            task_status.started()
        try:
            async with trio.open_nursery() as feeders:
                if deps.alerts is not None:
                    feeders.start_soon(_feed_alerts, deps.alerts, thread, server)
                await _feed(deps.hub, thread, server)
                feeders.cancel_scope.cancel()
        finally:
            handle.address = None
            with trio.CancelScope(shield=True), trio.move_on_after(settings.shutdown_grace_s + 2):
                await thread.run(server.stop())
            log.info("grpc stopped")
    return None
