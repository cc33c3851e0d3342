"""The daemon: one root nursery supervising every actor, in dependency order.

    sources ─▶ engine ─▶ writer ─┬─▶ hub   ─▶ web edges
                                 └─▶ cache ─▶ web edges

Shutdown (SIGTERM, SIGINT or ``Daemon.stop``): the hub closes, so every
client stream ends with a close frame or end of stream; the web server stops
accepting; the sources stop; the engine drains into the writer, the writer
commits its last batch and closes SQLite.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import structlog
import trio

from northstard.actors.alerts import Alerts, AlertSettings, Probes, run_alerts
from northstard.actors.backplane.core import core_publisher
from northstard.actors.backups import BackupJob, BackupSettings, BackupState, run_backups
from northstard.actors.cache import Cache, CacheClient, run_cache
from northstard.actors.delivery import notifiers_of, run_delivery
from northstard.actors.engine import EngineState, recover, run_engine, wall_clock
from northstard.actors.hub import Hub, ResumeBudget, run_hub
from northstard.actors.notify import Notifier, run_notifier
from northstard.actors.source import Source, SourceMessage, SourceStats, run_source
from northstard.actors.supervisor import Policy, Supervisor
from northstard.actors.writer import WriterSettings, WriterState, run_writer
from northstard.config import Config, SourceSection
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
from northstard.preflight import Instances, preflight
from northstard.status.daemon import DaemonStatus, StatusOf
from northstard.status.grpc import GrpcHandle
from northstard.status.metrics import Metrics
from northstard.store.backup import DbLock
from northstard.store.sqlite import SqliteRecords, load_persisted, open_writer

__all__ = ["Daemon", "run_daemon"]

log = structlog.get_logger("northstard.daemon")


@dataclass
class Daemon:
    """A handle on a running daemon (what ``run_daemon`` gives ``task_status``)."""

    urls: list[str]
    hub: Hub
    supervisor: Supervisor
    engine: EngineState
    metrics: Metrics
    stopping: trio.Event = field(default_factory=trio.Event)
    grpc: GrpcHandle = field(default_factory=GrpcHandle)

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def grpc_address(self) -> str | None:
        """``host:port`` of the gRPC edge; None when it is off or not listening."""
        return self.grpc.address

    def stop(self) -> None:
        self.stopping.set()


def _writer_settings(config: Config) -> WriterSettings:
    storage = config.sections["storage"]
    return WriterSettings(
        path=config.db_path,
        synchronous=storage["synchronous"],
        batch_max=storage["batch_max"],
        batch_deadline_s=storage["batch_deadline_ms"] / 1000,
        snapshot_every=storage["snapshot_every"],
        keep_deltas_days=storage["keep_deltas_days"],
        keep_buckets_days=storage["keep_buckets_days"],
    )


def _alert_settings(config: Config) -> AlertSettings:
    section = config.sections["alerting"]
    return AlertSettings(path=config.db_path, tick_s=section["tick_s"],
                         max_points=section["max_window_points"], keep_history=section["keep_history"],
                         synchronous=config.sections["storage"]["synchronous"],
                         notifiers=tuple(config.notifiers))


def _delivery(config: Config, alerts: Alerts) -> Callable[..., Awaitable[None]] | None:
    """The outbox delivery actor, or None without [notifiers.NAME] sections."""
    if not config.notifiers:
        return None
    return partial(run_delivery, config.db_path, notifiers_of(config), alerts.feed)


def _policy(config: Config) -> Policy:
    s = config.sections["supervisor"]
    return Policy(s["max_core_restarts"], s["restart_window_s"], s["backoff_initial_s"],
                  s["backoff_max_s"])


def _backups(config: Config, state: BackupState, metrics: Metrics) -> Callable[..., Awaitable[None]] | None:
    """The periodic backup actor, or None when ``backup.every_s`` is 0."""
    settings = BackupSettings.from_config(config.sections["backup"], config.db_path)
    if settings.every_s <= 0:
        return None
    return partial(run_backups, BackupJob(config.db_path, settings), settings.every_s, state, metrics)


def _status_of(supervisor: Supervisor, writer: WriterState, backups: BackupState,
               grpc: GrpcHandle | None, sources: Mapping[str, SourceStats]) -> StatusOf:
    """The status record the web edge reads, made from the actors' state when asked."""

    def status() -> DaemonStatus:
        return DaemonStatus(
            healthy=supervisor.healthy(),
            actors={name: actor.document() for name, actor in supervisor.actors.items()},
            store_error=writer.degraded, unsaved=len(writer.pending), backup=backups.document(),
            grpc=grpc.document() if grpc is not None else {"status": "off"},
            sources_up={name: s.breaker.state == "closed" for name, s in sources.items()},
        )

    return status


async def _prepare(config: Config, store: SqliteRecords) -> tuple[EngineState, WriterState]:
    """Rebuild the engine's and the writer's state from the (migrated) store.

    Reads only what does not grow with history: the cold aggregates, the hot
    records and the open buckets (the migration of an old database scans once).
    """
    persisted = await trio.to_thread.run_sync(load_persisted, config.db_path)
    engine = config.sections["engine"]
    state = recover(persisted, config.sources, engine["revenue_basis"], engine["currency"],
                    store=store)
    log.info("state recovered", epoch=state.epoch, seq=state.seq,
             hot_records=len(persisted.records), path=str(config.db_path))
    return state, WriterState(buckets=BucketSet(persisted.open_buckets), committed_seq=state.seq)


def _authenticator(config: Config) -> Authenticator:
    """``[auth]``; the session key is read (or made), and the logouts loaded, only with tokens."""
    section = config.sections["auth"]
    if not section["tokens"]:
        return Authenticator.from_config(section, b"")
    key = load_session_key(section["session_key_file"], config.db_path.parent)
    path = config.db_path.parent / REVOKED_FILE
    try:
        revoked = load_revoked(path, time.time())
    except OSError as exc:
        raise ConfigError("auth", f"cannot keep logouts in {path}: {exc.strerror}") from None
    return Authenticator.from_config(section, key, revoked, path)


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
        await _run_locked(config, instances, handle_signals, task_status)  # _serve closes the sources


async def _run_locked(
    config: Config,
    instances: Instances,
    handle_signals: bool,
    task_status: trio.TaskStatus[Daemon],
) -> None:
    started_at = time.monotonic()
    conn = await trio.to_thread.run_sync(open_writer, config.db_path, "normal")
    conn.close()  # migrated first: the read-only connection below needs the schema
    store = SqliteRecords(config.db_path)
    try:
        await _run_core(config, instances, handle_signals, task_status, store, started_at)
    finally:
        store.close()


async def _run_core(
    config: Config,
    instances: Instances,
    handle_signals: bool,
    task_status: trio.TaskStatus[Daemon],
    store: SqliteRecords,
    started_at: float,
) -> None:
    grpc = config.sections["grpc"]
    hub_section = config.sections["hub"]
    budget = ResumeBudget(hub_section["resume_rate_per_s"], hub_section["resume_burst"])
    grpc_settings = GrpcSettings.from_config(grpc, budget)
    metrics = Metrics()
    supervisor = Supervisor(_policy(config))
    hub = Hub(hub_section["ring_size"], hub_section["ring_max_bytes"], budget)
    cache = Cache(config.sections["cache"]["history_bytes"],
                  keep_ms=int(config.sections["storage"]["keep_buckets_days"] * 86_400_000))
    backup_state = BackupState()
    engine_state, writer_state = await _prepare(config, store)
    auth = await trio.to_thread.run_sync(_authenticator, config)
    grpc_settings = replace(grpc_settings, tokens=(*grpc_settings.tokens, *auth.digests))
    hub.reset(engine_state.epoch, engine_state.seq, engine_state.doc or {}, 0)
    if engine_state.doc is not None:
        cache.reset(engine_state.epoch, engine_state.seq, 0, engine_state.doc)

    source_send, source_receive = trio.open_memory_channel[SourceMessage](256)
    change_send, change_receive = trio.open_memory_channel[Change](1024)
    hub_send, hub_receive = trio.open_memory_channel[Change](1024)
    cache_send, cache_receive = trio.open_memory_channel[Change](1024)
    request_send, request_receive = trio.open_memory_channel[Any](256)
    publisher = core_publisher(config, metrics, engine_state.epoch, engine_state.seq, engine_state.doc)
    alerts_send, alerts_receive = trio.open_memory_channel[Change](1024)
    alerts = Alerts(config.alerts, metrics=metrics)
    alerts.seed(engine_state.epoch, engine_state.seq, engine_state.doc, int(time.time() * 1000))

    def observe_change_count(size: int, seconds: float) -> None:
        metrics.observe_batch(size, seconds)
        metrics.changes.inc(size)

    stats = {s.name: SourceStats(Breaker(s.failure_threshold, s.cooldown_s)) for s, _ in instances}

    async with trio.open_nursery() as core:
        await supervisor.start(
            core, "writer", run_writer, _writer_settings(config), writer_state, change_receive,
            [hub_send, cache_send, alerts_send, *([publisher.send] if publisher else [])],
            observe_change_count,
        )
        if publisher is not None:
            await publisher.start(supervisor, core, config.db_path)
        await supervisor.start(core, "hub", run_hub, hub, hub_receive)
        await supervisor.start(core, "cache", run_cache, cache, cache_receive, request_receive)
        await supervisor.start(
            core, "alerts", run_alerts, _alert_settings(config), alerts, alerts_receive,
            Probes(store_degraded=lambda: writer_state.degraded is not None,
                   backup_failing=lambda: backup_state.error is not None), core=False,
        )
        await supervisor.start(
            core, "engine", partial(run_engine, committed=lambda: writer_state.committed_seq),
            engine_state, source_receive, change_send, config.sections["engine"]["max_batch"],
            wall_clock, metrics.observe_refused,
        )
        grpc_handle = GrpcHandle()
        status = _status_of(supervisor, writer_state, backup_state,
                            grpc_handle if grpc["enabled"] else None, stats)
        ctx = WebContext(
            hub=hub, cache=CacheClient(request_send), db_path=config.db_path,
            status=status, sources=stats, sections={s.name: s for s in config.sources},
            metrics=metrics, server=config.sections["server"],
            max_rate_hz=config.sections["hub"]["max_rate_hz"],
            started_at=started_at, auth=auth, limits=config.sections["limits"],
            backplane=publisher.status if publisher else None, alerts=alerts.feed,
        )
        daemon = Daemon([], hub, supervisor, engine_state, metrics, grpc=grpc_handle)
        # a brand-new store: the engine's first snapshot is committed before anything listens,
        # so /api/pnl/current never answers "no snapshot yet" once the daemon says it serves
        await cache.ready.wait()
        await _serve(core, daemon, ctx, supervisor, instances, stats, source_send, metrics,
                     handle_signals, task_status, grpc=grpc_settings if grpc["enabled"] else None,
                     backups=_backups(config, backup_state, metrics),
                     delivery=_delivery(config, alerts))
        await source_send.aclose()  # the engine drains, then the writer flushes and closes
    log.info("stopped", seq=engine_state.seq)


async def _serve(
    core: trio.Nursery,
    daemon: Daemon,
    ctx: WebContext,
    supervisor: Supervisor,
    instances: list[tuple[SourceSection, Source]],
    stats: dict[str, SourceStats],
    source_send: trio.MemorySendChannel[SourceMessage],
    metrics: Metrics,
    handle_signals: bool,
    task_status: trio.TaskStatus[Daemon],
    *,
    grpc: GrpcSettings | None = None,
    backups: Callable[..., Awaitable[None]] | None = None,
    delivery: Callable[..., Awaitable[None]] | None = None,
) -> None:
    """Run the sources, the periodic backups and the web and gRPC edges until asked to stop."""
    web_stop = trio.Event()
    try:
        async with trio.open_nursery() as edge:
            if handle_signals:
                edge.start_soon(_watch_signals, daemon)
            async with trio.open_nursery() as sources:
                for section, source in instances:
                    await supervisor.start(
                        sources, f"source:{section.name}", run_source, section, source,
                        source_send, stats[section.name], metrics.observe_poll, core=False,
                    )
                if backups is not None:  # cancelled with the sources at stop
                    await supervisor.start(sources, "backups", backups, core=False)
                if delivery is not None:  # alert notifications, from the SQLite outbox
                    await supervisor.start(sources, "delivery", delivery, core=False)
                daemon.urls = await edge.start(run_web, ctx, web_stop.wait)
                if grpc is not None:  # stops when the hub closes; a failure never stops the daemon
                    deps = GrpcDeps(ctx.hub, ctx.db_path, ctx.sections, stats, metrics,
                                    LimitSettings.from_section(ctx.limits), alerts=ctx.alerts)
                    await supervisor.start(edge, "grpc", run_grpc, grpc, deps, daemon.grpc, core=False)
                log.info("listening", urls=daemon.urls, dashboard=daemon.urls[0] + "/",
                         grpc=daemon.grpc_address)
                task_status.started(daemon)
                edge.start_soon(run_notifier, Notifier(), ctx.hub, supervisor, daemon.stopping)
                await daemon.stopping.wait()
                ctx.hub.close()
                web_stop.set()
                sources.cancel_scope.cancel()
            edge.cancel_scope.deadline = trio.current_time() + ctx.server["shutdown_grace_s"] + 1
    finally:
        with trio.CancelScope(shield=True):
            for _, source in instances:
                with trio.move_on_after(2):
                    await source.aclose()
