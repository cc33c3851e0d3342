"""Online backups with SQLite's backup API, restore, and the database lock.

``backup`` copies a consistent snapshot of the live database to a new file
(mode 0600), checks it, and returns its path. The copy is one step of SQLite's backup API:
one read transaction, which in WAL mode never blocks the writer (a copy made
in several steps would start over each time the writer commits in between).
``restore`` puts a backup in place of the database; it refuses while a
daemon holds the database (``DbLock``: an exclusive ``flock`` on
``<db>.lock``, taken by the daemon for as long as it runs, which also keeps a
second daemon off the same file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from northstard.errors import StoreError

__all__ = ["STAMP", "DbLock", "backup", "restore"]

STAMP = "%Y%m%dT%H%M%S%fZ"  # a backup's time in its file name (UTC)


class DbLock:
    """An exclusive lock on ``<db>.lock``; ``acquire`` raises StoreError if it is held."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> DbLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self.path.with_suffix('')} is in use by a running northstard") from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DbLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _check(path: Path) -> None:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: not a usable database: {exc}") from exc
    if result != "ok":
        raise StoreError(f"{path}: integrity check failed: {result}")


def backup(db_path: Path, destination: Path) -> Path:
    """Copy the live database to ``destination`` (a file, or a folder for a dated name)."""
    if not db_path.exists():
        raise StoreError(f"no database at {db_path}")
    if destination.is_dir():
        stamp = datetime.now(UTC).strftime(STAMP)
        destination = destination / f"northstard-{stamp}.db"
    if destination.exists():
        raise StoreError(f"{destination} exists; not overwriting it")
    partial = destination.with_name(destination.name + ".partial")
    try:
        _private_file(partial)
        with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as source, closing(
            sqlite3.connect(partial)
        ) as target:
            source.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal/-shm
        _check(partial)
        partial.replace(destination)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"backup to {destination} failed: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return destination


def _private_file(path: Path) -> None:
    """An empty file only its owner can read (0600, whatever the umask); SQLite's journal
    beside it takes the same mode. A backup holds the whole P&L: never world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def restore(source: Path, db_path: Path) -> None:
    """Replace the database with a checked backup; refuses while a daemon runs on it."""
    if not source.is_file():
        raise StoreError(f"no backup at {source}")
    _check(source)
    with DbLock(db_path):
        for suffix in ("-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
        staged = db_path.with_name(db_path.name + ".restoring")
        shutil.copyfile(source, staged)
        _own_like_folder(staged)
        staged.replace(db_path)


def _own_like_folder(path: Path) -> None:
    """Private to the owner of its folder: run as root, a restore hands the file to the
    service's user (systemd re-owns a state directory only when the folder itself is not its)."""
    if os.geteuid() == 0:
        folder = path.parent.stat()
        os.chown(path, folder.st_uid, folder.st_gid)
    path.chmod(0o600)
