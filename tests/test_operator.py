"""Issue 12, operator experience: private backups, ``--version``, ``check-config`` as a
pre-flight, and a busy port said in one line (exit 2) — the real command in a subprocess."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from northstard import __version__
from northstard.backups import BackupJob, BackupSettings

ROOT = Path(__file__).parent.parent


def northstard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it, under the common umask 022."""
    return subprocess.run([sys.executable, "-m", "northstard", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})},
                          preexec_fn=lambda: os.umask(0o022))


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def small_db(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('x')")
    return path


# -- 17: backups 0600, --version, LICENSE --------------------------------------------------------


def test_a_cli_backup_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    db = small_db(tmp_path / "live.db")
    made = northstard("--db", str(db), "backup", str(tmp_path / "copy.db"))
    assert made.returncode == 0, made.stderr
    assert mode(tmp_path / "copy.db") == 0o600
    folder = tmp_path / "dated"
    folder.mkdir()
    assert northstard("--db", str(db), "backup", str(folder)).returncode == 0
    assert [mode(p) for p in folder.iterdir()] == [0o600]


async def test_a_periodic_backup_and_its_folder_are_private(tmp_path: Path) -> None:
    db = small_db(tmp_path / "live.db")
    job = BackupJob(db, BackupSettings(tmp_path / "backups", every_s=60))
    with umask(0o022):
        path, _ = await job.take()
    assert mode(path) == 0o600
    assert mode(tmp_path / "backups") == 0o700


def test_version_license_and_gitignore() -> None:
    shown = northstard("--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"northstard {__version__}"
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the northstard authors" in license_text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in pyproject and 'license-files = ["LICENSE"]' in pyproject
    assert ".venv/" in (ROOT / ".gitignore").read_text().splitlines()
