"""An edge node (``northstard edge``): no sources, no engine, no SQLite writer.

    Redis ─▶ follower ─┬─▶ hub   ─▶ WebSocket / SSE / polling / gRPC   (the daemon's own edges)
                       └─▶ cache ─▶ REST (current, changes, breakdown, sources, health, metrics)

The web app and the gRPC edge are the core daemon's, fed by the same hub and
cache actors; only the input differs. Positions are the core's ``(epoch,
seq)``, so a client resumes on any edge. History (REST and gRPC) needs the
database: an edge answers 503 ``served_by_core`` (gRPC: ``UNAVAILABLE``)
naming ``[backplane] core_url``. An edge listens once it has a first
snapshot from Redis.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from functools import partial

import structlog
import trio

from northstard.actors.backplane.client import read_password, read_tls
from northstard.actors.backplane.follower import Batch, Feed, run_follower
from northstard.actors.cache import Cache, CacheClient, CacheRequest, run_cache
from northstard.actors.hub import Hub, ResumeBudget
from northstard.actors.notify import Notifier, run_notifier
from northstard.actors.supervisor import Supervisor
from northstard.actors.table import Actor, start_actors
from northstard.config import Config
from northstard.core.backplane.follow import Reset
from northstard.core.backplane.settings import BackplaneSettings
from northstard.core.change import Change
from northstard.daemon import Running, _authenticator, _policy
from northstard.edges.grpc.actor import GrpcDeps, run_grpc
from northstard.edges.grpc.server import GrpcSettings
from northstard.edges.http.context import WebContext
from northstard.edges.listener import run_web
from northstard.errors import ConfigError
from northstard.policy.limits import LimitSettings
from northstard.status.backplane import EdgeStatus
from northstard.status.daemon import DaemonStatus, StatusOf
from northstard.status.grpc import GrpcHandle
from northstard.status.metrics import Metrics

__all__ = ["EdgeNode", "run_edge", "run_edge_hub"]

log = structlog.get_logger("northstard.edge")
CHANNEL = 1024  # changes to the cache
BATCHES = 16  # Redis reads (READ_COUNT entries at most each) to the hub


@dataclass
class EdgeNode(Running):
    """A handle on a running edge (what ``run_edge`` gives ``task_status``)."""

    status: EdgeStatus


async def run_edge_hub(
    hub: Hub,
    receive: trio.MemoryReceiveChannel[Batch],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The hub of an edge: changes as on the core, and resets (a snapshot for everyone).

    A batch (one Redis read) is published without a checkpoint in between, so each
    subscriber wakes once for it and is sent one (merged) message.
    """
    task_status.started()
    async for batch in receive:
        for item in batch:
            if isinstance(item, Reset):
                hub.resync(item.epoch, item.seq, item.doc, item.ts_ms)
            else:
                hub.publish(item)


async def _watch_signals(node: EdgeNode) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal received; stopping", signal=signal.Signals(signum).name)
            node.stop()
            return


def edge_settings(config: Config) -> BackplaneSettings:
    section = config.settings.backplane
    settings = BackplaneSettings.from_config(section, config.settings.hub.ring_size,
                                             read_password(section.password_file),
                                             read_tls(section.url, section.ca_file))
    if not settings.url:
        raise ConfigError("backplane.url", "an edge needs it: --backplane redis://HOST:PORT")
    return settings


async def run_edge(
    config: Config,
    *,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[EdgeNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow the backplane and serve until stopped."""
    settings = edge_settings(config)
    started_at = time.monotonic()
    hub_section = config.settings.hub
    budget = ResumeBudget(hub_section.resume_rate_per_s, hub_section.resume_burst)
    metrics = Metrics()
    supervisor = Supervisor(_policy(config))
    hub = Hub(hub_section.ring_size, hub_section.ring_max_bytes, budget)
    cache = Cache(0)  # no history on an edge: only the current snapshot
    status = EdgeStatus.with_metrics(metrics, settings.core_url)
    auth = await trio.to_thread.run_sync(_authenticator, config)
    hub_send, hub_receive = trio.open_memory_channel[Batch](BATCHES)
    cache_send, cache_receive = trio.open_memory_channel[Change](CHANNEL)
    request_send, request_receive = trio.open_memory_channel[CacheRequest](256)
    feed = Feed(hub_send, cache_send, status)
    grpc = config.settings.grpc
    table = [Actor("hub", partial(run_edge_hub, hub, hub_receive)),
             Actor("cache", partial(run_cache, cache, cache_receive, request_receive)),
             Actor("follower", partial(run_follower, settings, feed), core=False)]
    async with trio.open_nursery() as core:
        await start_actors(supervisor, core, table)
        log.info("edge: waiting for a first snapshot from Redis", url=settings.url)
        await cache.ready.wait()
        grpc_handle = GrpcHandle()
        ctx = WebContext(
            hub=hub, cache=CacheClient(request_send), db_path=config.db_path,
            status=_status_of(supervisor, grpc_handle if grpc.enabled else None),
            sources={}, sections={}, metrics=metrics, server=config.settings.server,
            max_rate_hz=hub_section.max_rate_hz, started_at=started_at, auth=auth,
            limits=LimitSettings.from_section(config.settings.limits), backplane=status,
        )
        node = EdgeNode([], hub, supervisor, status, grpc=grpc_handle)
        await _serve(node, ctx, supervisor, handle_signals, task_status,
                     GrpcSettings.from_config(grpc, budget) if grpc.enabled else None)
        core.cancel_scope.cancel()
    log.info("edge stopped", seq=hub.seq)


def _status_of(supervisor: Supervisor, grpc: GrpcHandle | None) -> StatusOf:
    """An edge's status record: its actors and gRPC; no store, no backups, no sources of its own."""

    def status() -> DaemonStatus:
        return DaemonStatus(
            healthy=supervisor.healthy(),
            actors={name: actor.document() for name, actor in supervisor.actors.items()},
            store_error=None, unsaved=0, backup={"status": "off"},
            grpc=grpc.document() if grpc is not None else {"status": "off"}, sources_up={},
        )

    return status


async def _serve(node: EdgeNode, ctx: WebContext, supervisor: Supervisor, handle_signals: bool,
                 task_status: trio.TaskStatus[EdgeNode], grpc: GrpcSettings | None) -> None:
    web_stop = trio.Event()
    async with trio.open_nursery() as edge:
        if handle_signals:
            edge.start_soon(_watch_signals, node)
        node.urls = await edge.start(run_web, ctx, web_stop.wait)
        if grpc is not None:
            deps = GrpcDeps(ctx.hub, ctx.db_path, {}, {}, ctx.metrics, ctx.limits,
                            core_url=node.status.core_url)
            await supervisor.start(edge, "grpc", run_grpc, grpc, deps, node.grpc, core=False)
        log.info("edge listening", urls=node.urls, grpc=node.grpc_address)
        task_status.started(node)
        edge.start_soon(run_notifier, Notifier(), ctx.hub, supervisor, node.stopping)
        await node.stopping.wait()
        ctx.hub.close()
        web_stop.set()
        edge.cancel_scope.deadline = trio.current_time() + ctx.server.shutdown_grace_s + 1
