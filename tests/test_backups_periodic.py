"""Periodic backups: the retention rule, the schedule, and the actor in the running daemon."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from structlog.testing import capture_logs
from trio_websocket import WebSocketConnection, open_websocket_url

from northstard.actors.backups import (
    RETRY_S,
    BackupJob,
    BackupSettings,
    BackupState,
    backup_name,
    backup_time,
    run_backups,
    seconds_until_due,
    to_delete,
)
from northstard.errors import StoreError
from northstard.status.metrics import Metrics
from northstard.store.backup import backup, restore
from northstard.store.sqlite import load_persisted

from clients import Follower, ws_url

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def names_at(*hours_ago: float) -> list[str]:
    return [backup_name(NOW - timedelta(hours=h)) for h in hours_ago]


# --- the retention rule (pure) ---


def test_a_backup_name_carries_its_utc_time() -> None:
    name = backup_name(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    assert name == "northstard-auto-20260102T030405678901Z.db"
    assert backup_time(name) == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.mark.parametrize("name", [
    "northstard-20260102T030405678901Z.db",  # made by `northstard backup DIR`, not by the actor
    "northstard-auto-20260102T030405678901Z.db.partial",
    "northstard-auto-yesterday.db",
    "notes.txt",
])
def test_names_the_actor_did_not_make_have_no_time(name: str) -> None:
    assert backup_time(name) is None


def test_only_the_newest_keep_are_kept() -> None:
    names = names_at(5, 1, 3, 2, 4)
    assert sorted(to_delete(names, keep=2, keep_days=0, now=NOW)) == sorted(names_at(3, 4, 5))


def test_keep_days_deletes_older_ones_too_but_never_the_newest() -> None:
    names = names_at(1, 30, 50, 80)
    assert sorted(to_delete(names, keep=10, keep_days=1.5, now=NOW)) == sorted(names_at(50, 80))
    only_old = names_at(100, 200)
    assert to_delete(only_old, keep=10, keep_days=1.0, now=NOW) == names_at(200)


def test_other_files_are_never_deleted() -> None:
    foreign = ["northstard-20200101T000000000000Z.db", "keep-me.db", backup_name(NOW) + ".partial"]
    names = foreign + names_at(1, 2, 3)
    assert sorted(to_delete(names, keep=1, keep_days=0, now=NOW)) == sorted(names_at(2, 3))


def test_nothing_to_delete_within_the_limits() -> None:
    assert to_delete(names_at(1, 2), keep=2, keep_days=1, now=NOW) == []
    assert to_delete([], keep=1, keep_days=1, now=NOW) == []


@pytest.mark.parametrize(("newest", "expected"), [
    (None, 0.0),                                # no backup yet: now
    (NOW - timedelta(seconds=100), 500.0),      # 600 s after the newest
    (NOW - timedelta(days=3), 0.0),             # overdue: now
    (NOW + timedelta(hours=1), 600.0),          # newest in the future (clock stepped back)
])
def test_the_schedule_continues_from_the_newest_backup(newest: datetime | None, expected: float) -> None:
    assert seconds_until_due(newest, NOW, 600.0) == expected


# --- the actor's timing (MockClock, an in-memory job) ---


class ScriptedJob:
    """A job whose backups succeed or fail as scripted, recording when each was attempted."""

    def __init__(self, script: str, newest: datetime | None = None) -> None:
        self.script = list(script)  # "o": ok, "x": fails
        self.newest_on_disk = newest
        self.attempts: list[float] = []

    async def newest(self) -> datetime | None:
        return self.newest_on_disk

    async def take(self) -> tuple[Path, datetime]:
        self.attempts.append(trio.current_time())
        if self.script.pop(0) == "x":
            raise StoreError("backup to /backups/x.db failed: disk I/O error")
        return Path(f"/backups/{len(self.attempts)}.db"), datetime.now(UTC)


def sample(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


async def test_backups_run_every_interval_and_a_failure_is_retried_sooner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    job, state, metrics = ScriptedJob("ooxxo" + "o" * 10), BackupState(), Metrics()
    every = 1000.0
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(run_backups, job, every, state, metrics)
        await trio.sleep(2 * every + 2 * RETRY_S + 1)
        assert state.error is None and state.failures == 2
        nursery.cancel_scope.cancel()
    offsets = [t - start for t in job.attempts]
    assert offsets == [0, every, 2 * every, 2 * every + RETRY_S, 2 * every + 2 * RETRY_S]
    assert sample(metrics, "northstard_backup_failures_total") == 2
    assert sample(metrics, "northstard_backup_failing") == 0


async def test_a_failure_shows_in_the_state_and_the_metrics(
    autojump_clock: trio.testing.MockClock,
) -> None:
    job, state, metrics = ScriptedJob("ox"), BackupState(), Metrics()
    async with trio.open_nursery() as nursery:
        with capture_logs() as logs:
            await nursery.start(run_backups, job, 60.0, state, metrics)
            await trio.sleep(61)
        nursery.cancel_scope.cancel()
    doc = state.document()
    assert doc["status"] == "failing" and doc["failures"] == 1
    assert "disk I/O error" in doc["error"] and doc["last_success"].endswith("Z")
    assert sample(metrics, "northstard_backup_failing") == 1
    assert sample(metrics, "northstard_backup_last_success_timestamp_seconds") == pytest.approx(
        state.last_success.timestamp() if state.last_success else 0)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in errors] == ["backup failed"]


async def test_after_a_restart_the_schedule_continues_from_the_newest_backup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    newest = datetime.now(UTC) + timedelta(days=1)  # the next one is due a whole interval from now
    job, state, metrics = ScriptedJob("o", newest=newest), BackupState(), Metrics()
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(run_backups, job, 50.0, state, metrics)
        assert state.document()["status"] == "ok" and state.last_success == newest
        await trio.sleep(51)
        nursery.cancel_scope.cancel()
    assert [t - start for t in job.attempts] == [50.0]


def test_the_state_of_backups_that_are_off() -> None:
    assert BackupState().document() == {"status": "off"}


# --- the real job: copies, checked, pruned ---


def make_db(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (v INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    return path


async def test_the_job_keeps_the_newest_and_leaves_other_files_alone(tmp_path: Path) -> None:
    db = make_db(tmp_path / "live.db")
    folder = tmp_path / "backups"
    job = BackupJob(db, BackupSettings(folder, every_s=1.0, keep=2))
    folder.mkdir()
    by_hand = backup(db, folder)  # `northstard backup DIR`: never pruned by the actor
    stale = folder / (backup_name(datetime(2020, 1, 1, tzinfo=UTC)) + ".partial")
    stale.write_bytes(b"left by a crash")
    made = [(await job.take())[0] for _ in range(4)]
    assert sorted(folder.iterdir()) == sorted([by_hand, *made[-2:]])
    for path in made[-2:]:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 100
    assert await job.newest() == backup_time(made[-1].name)


async def test_the_job_names_the_folder_it_cannot_write(tmp_path: Path) -> None:
    db = make_db(tmp_path / "live.db")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="blocked"):
        await BackupJob(db, BackupSettings(blocked, every_s=1.0)).take()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root restores into another user's folder")
def test_a_restore_run_as_root_belongs_to_the_service_user(tmp_path: Path) -> None:
    saved = backup(make_db(tmp_path / "live.db"), tmp_path / "saved.db")
    state = tmp_path / "state"  # a service's StateDirectory: owned by its (dynamic) user
    state.mkdir()
    os.chown(state, 61234, 61234)
    restore(saved, state / "northstard.db")
    restored = (state / "northstard.db").stat()
    assert (restored.st_uid, restored.st_gid) == (61234, 61234)
    assert restored.st_mode & 0o777 == 0o600


# --- in the running daemon ---


async def next_change(ws: WebSocketConnection, follower: Follower) -> None:
    follower.apply(json.loads(await ws.get_message()))


async def test_backups_appear_while_the_daemon_streams(start_daemon: Any, tmp_path: Path) -> None:
    daemon = await start_daemon(backup={"every_s": 0.2, "keep": 2})
    folder = tmp_path / "backups"  # the default: beside the database
    seen: list[str] = []
    follower = Follower()
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        with trio.fail_after(30):
            while len(seen) < 4:
                await next_change(ws, follower)
                present = sorted(p.name for p in folder.glob("northstard-auto-*.db"))
                assert len(present) <= 2 + 1, present  # keep, and a new one just before pruning
                seen += [name for name in present if name not in seen]
        os.link(folder / seen[-1], tmp_path / "newest.db")  # checked below, wherever pruning is
        assert not (folder / seen[0]).exists() and not (folder / seen[1]).exists()
        seq = follower.seq
        for _ in range(3):  # the stream went on throughout
            await next_change(ws, follower)
        assert follower.seq > seq
    persisted = load_persisted(tmp_path / "newest.db")
    assert persisted.epoch == daemon.hub.epoch and 0 < persisted.seq <= follower.seq
    assert persisted.doc is not None and "net_pnl" in persisted.doc
    async with httpx.AsyncClient(timeout=10) as client:
        health = (await client.get(f"{daemon.url}/api/health")).json()
        metrics = (await client.get(f"{daemon.url}/metrics")).text
    assert health["backup"]["status"] == "ok" and health["backup"]["failures"] == 0
    assert "northstard_backup_last_success_timestamp_seconds" in metrics
    newest = backup_time(seen[-1])
    last = sample(daemon.metrics, "northstard_backup_last_success_timestamp_seconds")
    assert newest is not None and last is not None and last >= newest.timestamp()


async def test_a_backup_folder_that_cannot_be_written_is_a_health_problem(
    start_daemon: Any, tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the backup folder should be")
    with capture_logs() as logs:
        daemon = await start_daemon(backup={"every_s": 0.2, "dir": str(blocked)})
        follower = Follower()
        async with open_websocket_url(ws_url(daemon.url)) as ws, httpx.AsyncClient(timeout=10) as client:
            with trio.fail_after(30):
                while not sample(daemon.metrics, "northstard_backup_failures_total"):
                    await next_change(ws, follower)
            health = (await client.get(f"{daemon.url}/api/health")).json()
            metrics = (await client.get(f"{daemon.url}/metrics")).text
            seq = follower.seq
            for _ in range(5):  # the daemon streams on
                await next_change(ws, follower)
            assert follower.seq > seq

            blocked.unlink()  # fixed: the next attempt succeeds and the problem is gone
            with trio.fail_after(30):
                while sample(daemon.metrics, "northstard_backup_failing"):
                    await next_change(ws, follower)
            recovered = (await client.get(f"{daemon.url}/api/health")).json()
    assert health["status"] == "degraded"
    assert health["backup"]["status"] == "failing" and "blocked" in health["backup"]["error"]
    assert "northstard_backup_failing 1.0" in metrics and "northstard_backup_failures_total" in metrics
    assert recovered["backup"]["status"] == "ok" and recovered["status"] == "ok"
    assert list(blocked.glob("northstard-auto-*.db"))
    assert any(e["event"] == "backup failed" and e["log_level"] == "error" for e in logs)
