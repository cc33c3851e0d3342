"""Periodic backups: the ``backups`` actor and its retention rule.

Every ``backup.every_s`` seconds the actor copies the live database with
``backup.backup`` (SQLite's backup API, in a worker thread: WAL readers never
block the writer, and the event loop never waits) to
``<dir>/northstard-auto-<UTC time>.db`` (mode 0600; the folder, when the actor
makes it, 0700) — written under a ``.partial`` name,
checked, then renamed, so a file with the final name is always a whole,
checked copy. Then it deletes its own backups beyond ``keep`` (newest first)
or older than ``keep_days``; the newest one always stays. Only names it makes
are touched: a ``northstard backup DIR`` copy beside them is never deleted.

After a restart the schedule continues from the newest backup on disk. A
failed backup is logged, counted, shows in ``/api/health`` and is retried
after ``min(every_s, RETRY_S)``; the daemon streams on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn, Protocol

import structlog
import trio

from northstard.errors import StoreError
from northstard.settings import BackupSection
from northstard.status.metrics import Metrics
from northstard.store.backup import STAMP, backup

__all__ = [
    "BackupJob",
    "BackupSettings",
    "BackupState",
    "backup_name",
    "backup_time",
    "run_backups",
    "seconds_until_due",
    "to_delete",
]

log = structlog.get_logger("northstard.backups")

PREFIX = "northstard-auto-"
SUFFIX = ".db"
RETRY_S = 300.0


@dataclass(frozen=True)
class BackupSettings:
    dir: Path
    every_s: float = 0.0
    keep: int = 7
    keep_days: float = 0.0

    @classmethod
    def from_config(cls, section: BackupSection, db_path: Path) -> BackupSettings:
        folder = section.dir if section.dir is not None else db_path.parent / "backups"
        return cls(folder, section.every_s, section.keep, section.keep_days)


@dataclass
class BackupState:
    """What ``/api/health`` and ``/metrics`` show: the last success and the current failure."""

    enabled: bool = False
    last_success: datetime | None = None
    error: str | None = None
    failures: int = 0

    def document(self) -> dict[str, object]:
        if not self.enabled:
            return {"status": "off"}
        doc: dict[str, object] = {"status": "failing" if self.error else "ok", "failures": self.failures}
        if self.error:
            doc["error"] = self.error
        if self.last_success is not None:
            doc["last_success"] = self.last_success.isoformat(timespec="seconds").replace("+00:00", "Z")
        return doc


def backup_name(moment: datetime) -> str:
    return f"{PREFIX}{moment.astimezone(UTC).strftime(STAMP)}{SUFFIX}"


def backup_time(name: str) -> datetime | None:
    """When the backup named ``name`` was made; None if the actor did not make it."""
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    try:
        return datetime.strptime(name[len(PREFIX) : -len(SUFFIX)], STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def to_delete(names: Iterable[str], keep: int, keep_days: float, now: datetime) -> list[str]:
    """Our backups beyond the ``keep`` newest or older than ``keep_days`` (0: no age limit).

    The newest is always kept, and names the actor did not make are never listed.
    """
    dated = sorted(((t, n) for n in names if (t := backup_time(n)) is not None), reverse=True)
    oldest = now - timedelta(days=keep_days) if keep_days > 0 else None
    return [
        name for rank, (made, name) in enumerate(dated)
        if rank > 0 and (rank >= keep or (oldest is not None and made < oldest))
    ]


def seconds_until_due(newest: datetime | None, now: datetime, every_s: float) -> float:
    """How long until the next backup: ``every_s`` after the newest, and not before now."""
    if newest is None:
        return 0.0
    return min(max((newest - now).total_seconds() + every_s, 0.0), every_s)


class Job(Protocol):
    """What the actor drives (``BackupJob``; tests give an in-memory one)."""

    async def newest(self) -> datetime | None: ...

    async def take(self) -> tuple[Path, datetime]: ...


class BackupJob:
    """The real job: copies ``db_path`` into ``settings.dir`` and prunes, in a worker thread."""

    def __init__(self, db_path: Path, settings: BackupSettings) -> None:
        self.db_path = db_path
        self.settings = settings

    def __repr__(self) -> str:
        return f"<BackupJob {self.db_path} -> {self.settings.dir} every {self.settings.every_s:g} s>"

    async def newest(self) -> datetime | None:
        return await trio.to_thread.run_sync(self._newest)

    async def take(self) -> tuple[Path, datetime]:
        # a backup under way at shutdown is abandoned: its .partial is removed by the next run
        return await trio.to_thread.run_sync(self._take, abandon_on_cancel=True)

    def _names(self) -> list[str]:
        try:
            return [p.name for p in self.settings.dir.iterdir()]
        except OSError:
            return []

    def _newest(self) -> datetime | None:
        times = [t for name in self._names() if (t := backup_time(name)) is not None]
        return max(times, default=None)

    def _take(self) -> tuple[Path, datetime]:
        now = datetime.now(UTC)
        try:
            self.settings.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"backup folder {self.settings.dir}: {exc.strerror or exc}") from exc
        path = backup(self.db_path, self.settings.dir / backup_name(now))
        self._prune(now)
        return path, now

    def _prune(self, now: datetime) -> None:
        names = self._names()
        doomed = to_delete(names, self.settings.keep, self.settings.keep_days, now)
        stale = [n for n in names if n.endswith(".partial") and backup_time(n[: -len(".partial")])]
        try:
            for name in doomed + stale:
                with contextlib.suppress(FileNotFoundError):
                    (self.settings.dir / name).unlink()
        except OSError as exc:
            raise StoreError(f"backup made, but deleting old ones failed: {exc}") from exc
        if doomed:
            log.info("old backups deleted", names=sorted(doomed))


async def _attempt(job: Job, state: BackupState, metrics: Metrics) -> bool:
    try:
        path, made = await job.take()
    except StoreError as exc:
        state.error = str(exc)
        state.failures += 1
        metrics.backup_failures.inc()
        metrics.backup_failing.set(1)
        log.error("backup failed", error=state.error, failures=state.failures)
        return False
    if state.error is not None:
        log.warning("backups work again", path=str(path))
    state.error, state.last_success = None, made
    metrics.backup_failing.set(0)
    metrics.backup_last_success.set(made.timestamp())
    log.info("backup made", path=str(path))
    return True


async def run_backups(
    job: Job,
    every_s: float,
    state: BackupState,
    metrics: Metrics,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Back up every ``every_s`` seconds, counting from the newest backup on disk."""
    state.enabled = True
    newest = await job.newest()
    if newest is not None and state.last_success is None:
        state.last_success = newest
        metrics.backup_last_success.set(newest.timestamp())
    task_status.started()
    await trio.sleep(seconds_until_due(newest, datetime.now(UTC), every_s))
    while True:
        ok = await _attempt(job, state, metrics)
        await trio.sleep(every_s if ok else min(every_s, RETRY_S))
