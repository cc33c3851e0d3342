"""The alerts actor: evaluates the rules on every committed change and on a timer.

    writer ──(committed changes)──▶ alerts ──▶ SQLite (state, history, outbox)
                                           └─▶ AlertFeed (edges), metrics

Only committed changes are evaluated: a change the writer passes on under an
``~unsaved`` epoch is not (so no alert ever points at a position that is not
on disk). A change evaluates only the rules it can move (``RuleIndex``: those
whose path is in its patch, the time-dependent and the pending ones) and SQLite is written only on a
transition (or when a period window rolls over). A transition is published
and queued for its notifiers only once it is committed; if SQLite refuses,
the transitions wait in memory (at most ``MAX_UNSAVED``, oldest dropped with
an error log) and are retried at each tick.

A restart reloads each rule's status: a rule that was firing stays firing
without a new transition, so nobody is told twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from northstard.actors.writer import UNSAVED
from northstard.core.alertindex import RuleIndex
from northstard.core.alertrules import Observation, Rule, RuleState, Transition, prime
from northstard.core.change import Change
from northstard.status.alertfeed import AlertFeed
from northstard.status.metrics import Metrics
from northstard.store import alertstore
from northstard.store.sqlite import open_writer

__all__ = ["AlertSettings", "Alerts", "Probes", "run_alerts"]

log = structlog.get_logger("northstard.alerts")

MAX_UNSAVED = 1000


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class AlertSettings:
    path: Any
    tick_s: float = 1.0
    max_points: int = 1024
    keep_history: int = 10000
    outbox_max: int = 10000
    synchronous: str = "full"
    notifiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probes:
    """Read-only status the built-in kinds look at."""

    store_degraded: Callable[[], bool] = lambda: False
    backup_failing: Callable[[], bool] = lambda: False
    now_ms: Callable[[], int] = wall_ms


@dataclass
class Alerts:
    """Kept across restarts of the actor: the rules, their states, the feed, the last change."""

    rules: tuple[Rule, ...]
    feed: AlertFeed = field(default_factory=AlertFeed)
    metrics: Metrics | None = None
    states: dict[str, RuleState] = field(default_factory=dict)
    loaded: bool = False
    doc: Mapping[str, object] | None = None
    epoch: str = ""
    seq: int = 0
    last_change_ms: int = 0
    unsaved: list[Transition] = field(default_factory=list)
    index: RuleIndex = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = RuleIndex(self.rules)

    def __repr__(self) -> str:
        firing = sorted(n for n, s in self.states.items() if s.status == "firing")
        return f"<Alerts rules={len(self.rules)} firing={firing} at={self.epoch}:{self.seq}>"

    def seed(self, epoch: str, seq: int, doc: Mapping[str, object] | None, now_ms: int) -> None:
        """Start from the recovered document: the last committed position and figures."""
        self.epoch, self.seq, self.doc, self.last_change_ms = epoch, seq, doc, now_ms


def _load(conn: sqlite3.Connection, alerts: Alerts) -> None:
    stored = alertstore.load_states(conn)
    alerts.states = {r.name: stored.get(r.name, RuleState()) for r in alerts.rules}
    for event in reversed(alertstore.history(conn, None, 500)):
        state = alerts.states.get(event["alert"])
        if state is not None and state.status != "ok":
            alerts.feed.publish(event)
        alerts.feed.last_id = max(alerts.feed.last_id, event["id"])


def _gauge(alerts: Alerts, rule: Rule) -> None:
    if alerts.metrics is not None:
        firing = alerts.states[rule.name].status == "firing"
        alerts.metrics.alert_firing.labels(rule.name, rule.severity).set(1 if firing else 0)


async def _commit(conn: sqlite3.Connection, alerts: Alerts, settings: AlertSettings,
                  fresh: list[Transition], now_ms: int) -> None:
    alerts.unsaved.extend(fresh)
    if len(alerts.unsaved) > MAX_UNSAVED:
        log.error("alert transitions dropped: SQLite refused them too long",
                  dropped=len(alerts.unsaved) - MAX_UNSAVED)
        del alerts.unsaved[:-MAX_UNSAVED]
    if not alerts.unsaved:
        return
    try:
        bodies = await trio.to_thread.run_sync(
            alertstore.record, conn, alerts.unsaved, alerts.states, settings.notifiers, now_ms,
            settings.keep_history, settings.outbox_max)
    except sqlite3.Error as exc:
        log.warning("alert transitions not saved; retried", error=str(exc), waiting=len(alerts.unsaved))
        return
    for t, body in zip(alerts.unsaved, bodies, strict=True):
        alerts.feed.publish(body)
        _gauge(alerts, t.rule)
        log.info("alert", alert=t.rule.name, alert_event=t.event, epoch=t.epoch, seq=t.seq)
    alerts.unsaved = []


async def _on_change(conn: sqlite3.Connection, alerts: Alerts, settings: AlertSettings,
                     change: Change) -> None:
    if change.epoch.endswith(UNSAVED):
        return  # not on disk: evaluated once it is committed and passed on again
    alerts.epoch, alerts.seq, alerts.doc, alerts.last_change_ms = (
        change.epoch, change.seq, change.doc, change.ts_ms)
    obs = Observation(change.ts_ms, change.doc, last_change_ms=change.ts_ms,
                      epoch=change.epoch, seq=change.seq)
    fresh = alerts.index.evaluate_change(alerts.states, obs, change.patch, settings.max_points)
    await _commit(conn, alerts, settings, fresh, change.ts_ms)
    rolled = {n: alerts.states[n] for n in alerts.index.rolled}
    if rolled:  # a period window started: its baseline must survive a restart
        await trio.to_thread.run_sync(alertstore.save_states, conn, rolled)


async def _on_tick(conn: sqlite3.Connection, alerts: Alerts, settings: AlertSettings,
                   probes: Probes) -> None:
    now = probes.now_ms()
    obs = Observation(now, alerts.doc, last_change_ms=alerts.last_change_ms,
                      store_degraded=probes.store_degraded(), backup_failing=probes.backup_failing(),
                      epoch=alerts.epoch, seq=alerts.seq)
    fresh = alerts.index.evaluate_tick(alerts.states, obs, settings.max_points)
    await _commit(conn, alerts, settings, fresh, now)


async def run_alerts(
    settings: AlertSettings,
    alerts: Alerts,
    changes: trio.MemoryReceiveChannel[Change],
    probes: Probes = Probes(),
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Evaluate until the writer closes ``changes``."""
    conn = await trio.to_thread.run_sync(open_writer, settings.path, settings.synchronous)
    try:
        if not alerts.loaded:
            await trio.to_thread.run_sync(_load, conn, alerts)
            alerts.loaded = True
            if alerts.doc is not None:
                prime(alerts.rules, alerts.states, alerts.doc)
            for rule in alerts.rules:
                _gauge(alerts, rule)
        task_status.started()
        next_tick = trio.current_time() + settings.tick_s
        while True:
            change: Change | None = None
            with trio.move_on_at(next_tick):
                try:
                    change = await changes.receive()
                except trio.EndOfChannel:
                    return
            if change is not None:
                await _on_change(conn, alerts, settings, change)
            if trio.current_time() >= next_tick:
                next_tick = trio.current_time() + settings.tick_s
                await _on_tick(conn, alerts, settings, probes)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(conn.close)
