"""The alerts actor on a real SQLite file: committed changes only, ticks, persistence, restarts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio
import trio.testing

from northstard.actors.alerts import Alerts, AlertSettings, Probes, run_alerts
from northstard.core.alertrules import Rule
from northstard.core.change import Change
from northstard.status.metrics import Metrics
from northstard.store import alertstore
from northstard.store.sqlite import open_writer

T0 = 1_796_000_000_000
BUDGET = Rule("budget", metric=("costs", "total"), above=Decimal("10"), notify=("ops",),
              severity="critical")
HELD = Rule("held", metric=("costs", "total"), above=Decimal("10"), for_s=30)


def change(seq: int, total: str, epoch: str = "ep", ts_ms: int | None = None) -> Change:
    doc = {"net_pnl": f"-{total}", "costs": {"total": total}, "sources": {}}
    # the patch sets every key: a superset of the diff from the previous change
    return Change(epoch, seq, ts_ms if ts_ms is not None else T0 + seq, doc, doc)


def events(db: Path) -> list[tuple[str, str, str, int]]:
    with closing(sqlite3.connect(db)) as conn:
        return [(b["alert"], b["event"], b["epoch"], b["seq"])
                for b in reversed(alertstore.history(conn, None, 100))]


def outbox(db: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return [(r.notifier, r.body["event"]) for r in alertstore.pending(conn, 100)]


async def feed(db: Path, alerts: Alerts, changes: list[Change], probes: Probes | None = None,
               until: Callable[[], bool] = lambda: True) -> None:
    """Run the actor over ``changes`` (then, input open, until ``until()``), and stop it."""
    settings = AlertSettings(path=db, tick_s=1.0, synchronous="normal", notifiers=("ops",))
    send, receive = trio.open_memory_channel[Change](16)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alerts, settings, alerts, receive, probes or Probes())
        async with send:
            for c in changes:
                await send.send(c)
            while not until():
                await alerts.feed.wait_after(alerts.feed.last_id)


def make_db(tmp_path: Path) -> Path:
    db = tmp_path / "n.db"
    open_writer(db, "normal").close()
    return db


async def test_an_unsaved_change_never_fires_the_committed_one_does(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    alerts = Alerts((BUDGET,), metrics=Metrics())
    await feed(db, alerts, [change(1, "5"), change(2, "11", epoch="ep~unsaved")])
    assert events(db) == [] and outbox(db) == []
    await feed(db, alerts, [change(2, "11")])
    assert events(db) == [("budget", "firing", "ep", 2)]
    assert outbox(db) == [("ops", "firing")]  # queued with the transition, in one transaction
    assert alerts.feed.current["budget"]["explain"] == "/api/pnl/explain?from=ep:1&to=ep:2"
    assert alerts.feed.current["budget"]["value"] == "11"
    assert alerts.metrics is not None
    labels = {"alert": "budget", "severity": "critical"}
    assert alerts.metrics.registry.get_sample_value("northstard_alert_firing", labels) == 1


async def test_a_restart_keeps_a_firing_alert_without_telling_anyone_again(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    await feed(db, Alerts((BUDGET,)), [change(1, "11")])
    restarted = Alerts((BUDGET,))
    await feed(db, restarted, [change(2, "12"), change(3, "13")])
    assert events(db) == [("budget", "firing", "ep", 1)]
    assert list(restarted.feed.current) == ["budget"]
    await feed(db, Alerts((BUDGET,)), [change(4, "9")])
    assert events(db) == [("budget", "firing", "ep", 1), ("budget", "resolved", "ep", 4)]
    assert outbox(db) == [("ops", "firing"), ("ops", "resolved")]


async def test_for_s_fires_on_the_timer_without_another_change(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    db = make_db(tmp_path)
    alerts = Alerts((HELD,))
    start = trio.current_time()

    def now_ms() -> int:
        return T0 + int((trio.current_time() - start) * 1000)

    def fired() -> bool:
        return "held" in alerts.feed.current and alerts.feed.current["held"]["event"] == "firing"

    autojump_clock.autojump_threshold = 0.05  # the SQLite work runs in a worker thread
    await feed(db, alerts, [change(1, "11", ts_ms=T0)], Probes(now_ms=now_ms), until=fired)
    assert [e[:2] for e in events(db)] == [("held", "pending"), ("held", "firing")]
    assert 30_000 <= alerts.feed.current["held"]["ts"] - T0 <= 32_000  # the first tick after for_s


async def test_builtin_kinds_read_the_probes(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    db = make_db(tmp_path)
    rules = (Rule("store", kind="store_degraded"), Rule("quiet", kind="no_changes", for_s=60))
    alerts = Alerts(rules)
    alerts.seed("ep", 0, None, T0)
    start = trio.current_time()
    status: dict[str, Any] = {"degraded": True}

    def now_ms() -> int:
        return T0 + int((trio.current_time() - start) * 1000)

    autojump_clock.autojump_threshold = 0.05
    probes = Probes(store_degraded=lambda: status["degraded"], now_ms=now_ms)
    await feed(db, alerts, [], probes, until=lambda: set(alerts.feed.current) == {"store", "quiet"})
    status["degraded"] = False
    await feed(db, alerts, [change(1, "1", ts_ms=now_ms())], probes,
               until=lambda: not alerts.feed.current)
    assert sorted(e[:2] for e in events(db)) == [
        ("quiet", "firing"), ("quiet", "resolved"), ("store", "firing"), ("store", "resolved")]
