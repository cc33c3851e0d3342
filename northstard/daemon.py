"""The daemon: one root nursery supervising every actor, in dependency order.

    sources ─▶ engine ─▶ writer ─┬─▶ hub   ─▶ web edges
                                 ├─▶ cache ─▶ web edges
                                 ├─▶ alerts
                                 └─▶ backplane (with [backplane] url)

What runs is three tables of actors (``actors/table.py``), started in order:
``core_actors`` in the root nursery, ``source_actors`` in a nursery of their
own, ``edge_actors`` beside the web listener.

Shutdown (SIGTERM, SIGINT or ``Daemon.stop``): the hub closes, so every
client stream ends with a close frame or end of stream; the web server stops
accepting; the sources (and backups, delivery) are cancelled; then the
sources' channel closes, so the engine drains into the writer, and the writer
commits its last batch, closes its outputs (hub, cache, alerts, backplane end)
and closes SQLite.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field, replace
from functools import partial

import structlog
import trio

from northstard.actors.alerts import Alerts, AlertSettings, Probes, run_alerts
from northstard.actors.backplane.core import CorePublisher, core_publisher
from northstard.actors.backups import BackupJob, BackupSettings, BackupState, run_backups
from northstard.actors.cache import Cache, CacheClient, CacheRequest, run_cache
from northstard.actors.delivery import notifiers_of, run_delivery
from northstard.actors.engine import EngineState, recover, run_engine, wall_clock
from northstard.actors.hub import Hub, ResumeBudget, run_hub
from northstard.actors.notify import Notifier, run_notifier
from northstard.actors.source import SourceMessage, SourceStats, run_source
from northstard.actors.supervisor import Policy, Supervisor
from northstard.actors.table import Actor, start_actors
from northstard.actors.writer import WriterSettings, WriterState, run_writer
from northstard.config import Config
from northstard.core.breaker import Breaker
from northstard.core.buckets import BucketSet
from northstard.core.change import Change
from northstard.edges.grpc.actor import GrpcDeps, run_grpc
from northstard.edges.grpc.server import GrpcSettings
from northstard.edges.http.context import WebContext
from northstard.edges.listener import run_web
from northstard.errors import ConfigError
from northstard.plugins import Plugins
from northstard.policy.auth import Authenticator, load_session_key
from northstard.policy.limits import LimitSettings
from northstard.policy.revoked import FILE_NAME as REVOKED_FILE
from northstard.policy.revoked import load_revoked
from northstard.preflight import Instances, close_sources, preflight
from northstard.status.daemon import DaemonStatus, StatusOf
from northstard.status.grpc import GrpcHandle
from northstard.status.metrics import Metrics
from northstard.store.backup import DbLock
from northstard.store.sqlite import SqliteRecords, load_persisted, open_writer

__all__ = ["Daemon", "core_actors", "edge_actors", "run_daemon", "source_actors"]

log = structlog.get_logger("northstard.daemon")

SOURCE_BUFFER = 256  # readings from every source to the engine
CHANGE_BUFFER = 1024  # changes from the engine to the writer, and from the writer to each reader
REQUEST_BUFFER = 256  # history requests from the web edges to the cache


@dataclass
class Running:
    """A handle on a running process's serving side: a daemon's or an edge node's."""

    urls: list[str]
    hub: Hub
    supervisor: Supervisor
    stopping: trio.Event = field(default_factory=trio.Event, kw_only=True)
    grpc: GrpcHandle = field(default_factory=GrpcHandle, kw_only=True)

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def grpc_address(self) -> str | None:
        """``host:port`` of the gRPC edge; None when it is off or not listening."""
        return self.grpc.address

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class Daemon(Running):
    """A handle on a running daemon (what ``run_daemon`` gives ``task_status``)."""

    engine: EngineState
    metrics: Metrics


@dataclass
class Channels:
    """The bounded channels between the core actors (buffer sizes above: a full one blocks its sender)."""

    source_send: trio.MemorySendChannel[SourceMessage]
    source_receive: trio.MemoryReceiveChannel[SourceMessage]
    change_send: trio.MemorySendChannel[Change]
    change_receive: trio.MemoryReceiveChannel[Change]
    hub_send: trio.MemorySendChannel[Change]
    hub_receive: trio.MemoryReceiveChannel[Change]
    cache_send: trio.MemorySendChannel[Change]
    cache_receive: trio.MemoryReceiveChannel[Change]
    alerts_send: trio.MemorySendChannel[Change]
    alerts_receive: trio.MemoryReceiveChannel[Change]
    request_send: trio.MemorySendChannel[CacheRequest]
    request_receive: trio.MemoryReceiveChannel[CacheRequest]

    @classmethod
    def open(cls) -> Channels:
        return cls(*trio.open_memory_channel[SourceMessage](SOURCE_BUFFER),
                   *trio.open_memory_channel[Change](CHANGE_BUFFER),
                   *trio.open_memory_channel[Change](CHANGE_BUFFER),
                   *trio.open_memory_channel[Change](CHANGE_BUFFER),
                   *trio.open_memory_channel[Change](CHANGE_BUFFER),
                   *trio.open_memory_channel[CacheRequest](REQUEST_BUFFER))


@dataclass
class Parts:
    """What the daemon builds before it starts anything: the actors' state, channels and settings."""

    config: Config
    instances: Instances
    metrics: Metrics
    supervisor: Supervisor
    hub: Hub
    cache: Cache
    engine: EngineState
    writer: WriterState
    backups: BackupState
    alerts: Alerts
    publisher: CorePublisher | None
    stats: dict[str, SourceStats]
    auth: Authenticator
    grpc: GrpcSettings | None  # None: [grpc] enabled = false
    channels: Channels = field(default_factory=Channels.open)
    grpc_handle: GrpcHandle = field(default_factory=GrpcHandle)

    def observe_changes(self, size: int, seconds: float) -> None:
        self.metrics.observe_batch(size, seconds)
        self.metrics.changes.inc(size)


def core_actors(p: Parts) -> list[Actor]:
    """The pipeline, writer first (its readers' channels must be open before anything sends)."""
    c, config = p.channels, p.config
    outputs = [c.hub_send, c.cache_send, c.alerts_send, *([p.publisher.send] if p.publisher else [])]
    probes = Probes(store_degraded=lambda: p.writer.degraded is not None,
                    backup_failing=lambda: p.backups.error is not None)
    return [
        Actor("writer", partial(run_writer, _writer_settings(config), p.writer, c.change_receive, outputs,
                                p.observe_changes)),
        *([p.publisher.actor(config.db_path)] if p.publisher else []),
        Actor("hub", partial(run_hub, p.hub, c.hub_receive)),
        Actor("cache", partial(run_cache, p.cache, c.cache_receive, c.request_receive)),
        Actor("alerts", partial(run_alerts, _alert_settings(config), p.alerts, c.alerts_receive, probes),
              core=False),
        Actor("engine", partial(run_engine, p.engine, c.source_receive, c.change_send,
                                config.settings.engine.max_batch, wall_clock, p.metrics.observe_refused,
                                committed=lambda: p.writer.committed_seq)),
    ]


def source_actors(p: Parts) -> list[Actor]:
    """What the stop cancels first: the sources, the periodic backups, the alert delivery."""
    table = [Actor(f"source:{section.name}", partial(run_source, section, source, p.channels.source_send,
                                                     p.stats[section.name], p.metrics.observe_poll),
                   core=False)
             for section, source in p.instances]
    backup = BackupSettings.from_config(p.config.settings.backup, p.config.db_path)
    if backup.every_s > 0:
        table.append(Actor("backups", partial(run_backups, BackupJob(p.config.db_path, backup),
                                              backup.every_s, p.backups, p.metrics), core=False))
    if p.config.notifiers:  # alert notifications, from the SQLite outbox
        table.append(Actor("delivery", partial(run_delivery, p.config.db_path, notifiers_of(p.config),
                                               p.alerts.feed), core=False))
    return table


def edge_actors(p: Parts, ctx: WebContext) -> list[Actor]:
    """Beside the web listener: the gRPC edge (it stops when the hub closes; never stops the daemon)."""
    if p.grpc is None:
        return []
    deps = GrpcDeps(ctx.hub, ctx.db_path, ctx.sections, p.stats, p.metrics, ctx.limits, alerts=ctx.alerts)
    return [Actor("grpc", partial(run_grpc, p.grpc, deps, p.grpc_handle), core=False)]


def _writer_settings(config: Config) -> WriterSettings:
    storage = config.settings.storage
    return WriterSettings(
        path=config.db_path,
        synchronous=storage.synchronous,
        batch_max=storage.batch_max,
        batch_deadline_s=storage.batch_deadline_ms / 1000,
        snapshot_every=storage.snapshot_every,
        keep_deltas_days=storage.keep_deltas_days,
        keep_buckets_days=storage.keep_buckets_days,
    )


def _alert_settings(config: Config) -> AlertSettings:
    section = config.settings.alerting
    return AlertSettings(path=config.db_path, tick_s=section.tick_s,
                         max_points=section.max_window_points, keep_history=section.keep_history,
                         synchronous=config.settings.storage.synchronous,
                         notifiers=tuple(config.notifiers))


def _policy(config: Config) -> Policy:
    s = config.settings.supervisor
    return Policy(s.max_core_restarts, s.restart_window_s, s.backoff_initial_s, s.backoff_max_s)


def _status_of(p: Parts) -> StatusOf:
    """The status record the web edge reads, made from the actors' state when asked."""

    def status() -> DaemonStatus:
        return DaemonStatus(
            healthy=p.supervisor.healthy(),
            actors={name: actor.document() for name, actor in p.supervisor.actors.items()},
            store_error=p.writer.degraded, unsaved=len(p.writer.pending), backup=p.backups.document(),
            grpc=p.grpc_handle.document() if p.grpc is not None else {"status": "off"},
            sources_up={name: s.breaker.state == "closed" for name, s in p.stats.items()},
        )

    return status


def _web_context(p: Parts, started_at: float) -> WebContext:
    config = p.config
    return WebContext(
        hub=p.hub, cache=CacheClient(p.channels.request_send), db_path=config.db_path,
        status=_status_of(p), sources=p.stats, sections={s.name: s for s in config.sources},
        metrics=p.metrics, server=config.settings.server, max_rate_hz=config.settings.hub.max_rate_hz,
        started_at=started_at, auth=p.auth, limits=LimitSettings.from_section(config.settings.limits),
        backplane=p.publisher.status if p.publisher else None, alerts=p.alerts.feed,
    )


async def _prepare(config: Config, store: SqliteRecords) -> tuple[EngineState, WriterState]:
    """Rebuild the engine's and the writer's state from the (migrated) store.

    Reads only what does not grow with history: the cold aggregates, the hot
    records and the open buckets (the migration of an old database scans once).
    """
    persisted = await trio.to_thread.run_sync(load_persisted, config.db_path)
    engine = config.settings.engine
    state = recover(persisted, config.sources, engine.revenue_basis, engine.currency, store=store)
    log.info("state recovered", epoch=state.epoch, seq=state.seq,
             hot_records=len(persisted.records), path=str(config.db_path))
    return state, WriterState(buckets=BucketSet(persisted.open_buckets), committed_seq=state.seq)


def _authenticator(config: Config) -> Authenticator:
    """``[auth]``; the session key is read (or made), and the logouts loaded, only with tokens."""
    section = config.settings.auth
    if not section.tokens:
        return Authenticator.from_config(section, b"")
    key = load_session_key(section.session_key_file, config.db_path.parent)
    path = config.db_path.parent / REVOKED_FILE
    try:
        revoked = load_revoked(path, time.time())
    except OSError as exc:
        raise ConfigError("auth", f"cannot keep logouts in {path}: {exc.strerror}") from None
    return Authenticator.from_config(section, key, revoked, path)


async def _assemble(config: Config, instances: Instances, store: SqliteRecords) -> Parts:
    """Build every actor's state from the settings and the store, seeded at the recovered position."""
    hub_section = config.settings.hub
    budget = ResumeBudget(hub_section.resume_rate_per_s, hub_section.resume_burst)
    metrics = Metrics()
    engine, writer = await _prepare(config, store)
    auth = await trio.to_thread.run_sync(_authenticator, config)
    grpc = GrpcSettings.from_config(config.settings.grpc, budget)
    grpc = replace(grpc, tokens=(*grpc.tokens, *auth.digests))
    p = Parts(
        config=config, instances=instances, metrics=metrics, supervisor=Supervisor(_policy(config)),
        hub=Hub(hub_section.ring_size, hub_section.ring_max_bytes, budget),
        cache=Cache(config.settings.cache.history_bytes,
                    keep_ms=int(config.settings.storage.keep_buckets_days * 86_400_000)),
        engine=engine, writer=writer, backups=BackupState(), alerts=Alerts(config.alerts, metrics=metrics),
        publisher=core_publisher(config, metrics, engine.epoch, engine.seq, engine.doc),
        stats={s.name: SourceStats(Breaker(s.failure_threshold, s.cooldown_s)) for s, _ in instances},
        auth=auth, grpc=grpc if config.settings.grpc.enabled else None,
    )
    p.hub.reset(engine.epoch, engine.seq, engine.doc or {}, 0)
    if engine.doc is not None:
        p.cache.reset(engine.epoch, engine.seq, 0, engine.doc)
    p.alerts.seed(engine.epoch, engine.seq, engine.doc, int(time.time() * 1000))
    return p


async def _watch_signals(daemon: Daemon) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal received; stopping", signal=signal.Signals(signum).name)
            daemon.stop()
            return


async def run_daemon(
    config: Config,
    plugins: Plugins,
    *,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until stopped; returns after a clean shutdown."""
    instances = preflight(config, plugins)  # what check-config checks: ConfigError/PluginError, exit 2
    with DbLock(config.db_path):  # one daemon per database
        started_at = time.monotonic()
        conn = await trio.to_thread.run_sync(open_writer, config.db_path, "normal")
        conn.close()  # migrated first: the read-only connection below needs the schema
        store = SqliteRecords(config.db_path)
        try:
            parts = await _assemble(config, instances, store)
            await _run(parts, started_at, handle_signals, task_status)  # _serve closes the sources
        finally:
            store.close()


async def _run(p: Parts, started_at: float, handle_signals: bool,
               task_status: trio.TaskStatus[Daemon]) -> None:
    daemon = Daemon([], p.hub, p.supervisor, p.engine, p.metrics, grpc=p.grpc_handle)
    async with trio.open_nursery() as core:
        await start_actors(p.supervisor, core, core_actors(p))
        # a brand-new store: the engine's first snapshot is committed before anything listens,
        # so /api/pnl/current never answers "no snapshot yet" once the daemon says it serves
        await p.cache.ready.wait()
        await _serve(p, daemon, _web_context(p, started_at), handle_signals, task_status)
        await p.channels.source_send.aclose()  # the engine drains, then the writer flushes and closes
    log.info("stopped", seq=p.engine.seq)


async def _serve(p: Parts, daemon: Daemon, ctx: WebContext, handle_signals: bool,
                 task_status: trio.TaskStatus[Daemon]) -> None:
    """Run the source actors and the web and gRPC edges until asked to stop; then stop them in order."""
    web_stop = trio.Event()
    try:
        async with trio.open_nursery() as edge:
            if handle_signals:
                edge.start_soon(_watch_signals, daemon)
            async with trio.open_nursery() as sources:
                await start_actors(p.supervisor, sources, source_actors(p))
                daemon.urls = await edge.start(run_web, ctx, web_stop.wait)
                await start_actors(p.supervisor, edge, edge_actors(p, ctx))
                log.info("listening", urls=daemon.urls, dashboard=daemon.urls[0] + "/",
                         grpc=daemon.grpc_address)
                task_status.started(daemon)
                edge.start_soon(run_notifier, Notifier(), ctx.hub, p.supervisor, daemon.stopping)
                await daemon.stopping.wait()
                ctx.hub.close()  # every client stream ends with a close frame or end of stream
                web_stop.set()
                sources.cancel_scope.cancel()
            edge.cancel_scope.deadline = trio.current_time() + ctx.server.shutdown_grace_s + 1
    finally:
        await close_sources(p.instances)  # before the engine drains, even when the start failed
