"""Online backup while the daemon runs, restore, and the database lock."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio

from northstard.errors import StoreError
from northstard.store.backup import DbLock, backup, restore
from northstard.store.sqlite import load_persisted


async def test_a_backup_taken_while_the_daemon_streams_is_consistent(
    start_daemon: Any, tmp_path: Path
) -> None:
    daemon = await start_daemon()
    with daemon.hub.subscribe("test", daemon.hub.position) as sub:
        while daemon.hub.seq < 20:
            await sub.next_message()
    db = tmp_path / "northstard.db"
    copy = await trio.to_thread.run_sync(backup, db, tmp_path / "copy.db")
    persisted = load_persisted(copy)
    assert persisted.seq >= 20 and persisted.records
    assert persisted.epoch == daemon.hub.epoch
    with closing(sqlite3.connect(copy)) as conn:
        deltas = [s for (s,) in conn.execute("SELECT seq FROM deltas ORDER BY seq")]
    assert deltas == list(range(1, persisted.seq + 1))
    with pytest.raises(StoreError, match="exists"):
        backup(db, copy)


def test_restore_replaces_the_database_and_refuses_while_it_is_held(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('before')")
    saved = backup(db, tmp_path / "saved.db")
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE t SET v = 'after'")
    with DbLock(db), pytest.raises(StoreError, match="in use"):
        restore(saved, db)
    restore(saved, db)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT v FROM t").fetchone()[0] == "before"


def test_a_corrupt_backup_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    with pytest.raises(StoreError, match=r"not a usable database|integrity"):
        restore(bad, tmp_path / "live.db")


def test_a_second_lock_on_the_same_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with DbLock(db), pytest.raises(StoreError, match="in use"):
        DbLock(db).acquire()
    DbLock(db).acquire().release()


def test_backup_and_restore_from_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import write_config

    config = write_config(tmp_path, {"demo": {"seed": 1}})
    db = tmp_path / "northstard.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('kept')")
    base = [sys.executable, "-m", "northstard", "--config", str(config)]
    made = subprocess.run([*base, "backup", str(tmp_path)], capture_output=True, text=True,
                          check=True, timeout=60)
    copy = next(tmp_path.glob("northstard-*.db"))
    assert str(copy) in made.stdout
    db.unlink()
    subprocess.run([*base, "restore", str(copy)], check=True, timeout=60)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT v FROM t").fetchone()[0] == "kept"
    refused = subprocess.run([*base, "restore", str(tmp_path / "missing.db")],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "no backup" in refused.stderr
