"""Issue 12, operator experience: private backups, ``--version``, ``check-config`` as a
pre-flight, and a busy port said in one line (exit 2) — the real command in a subprocess."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import trio
from structlog.testing import capture_logs

from northstard import __version__
from northstard.actors.backups import BackupJob, BackupSettings
from northstard.daemon import Daemon

from conftest import write_config
from grpc_helpers import with_client

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
    assert ".venv" in (ROOT / ".gitignore").read_text().splitlines()


# -- 16: check-config is run's pre-flight ---------------------------------------------------------


def check_config(config: Path) -> subprocess.CompletedProcess[str]:
    return northstard("check-config", "--config", str(config))  # the form docs/configuration.md gives


@pytest.mark.parametrize(("sections", "key"), [
    ({"server": {"host": "0.0.0.0"}}, "server.host"),
    ({"grpc": {"host": "0.0.0.0", "port": 0}}, "grpc.host"),
    ({"server": {"tls_cert": "/nonexistent/cert.pem", "tls_key": "/nonexistent/key.pem"}}, "server.tls_"),
    ({"server": {"tls_cert": "/nonexistent/cert.pem"}}, "server.tls_key"),
    ({"grpc": {"port": 0, "tls_cert": "/nonexistent/c.pem", "tls_key": "/nonexistent/k.pem"}}, "grpc.tls_"),
    ({"auth": {"tokens": ["a" * 64], "session_key_file": "/nonexistent/key"}}, "auth.session_key_file"),
])
def test_check_config_refuses_what_run_refuses(tmp_path: Path, sections: dict[str, Any], key: str) -> None:
    config = write_config(tmp_path, {"demo": {}}, **sections)
    checked = check_config(config)
    assert checked.returncode == 2, checked.stderr
    [line] = checked.stderr.splitlines()
    assert line.startswith(f"northstard: config error: {key}") and checked.stdout == ""
    run = northstard("--config", str(config))
    assert run.returncode == 2 and run.stderr.splitlines()[-1] == line  # the same line from run


def test_check_config_warns_as_run_warns_and_passes(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"kalshi": {"env": "demo"}}, server={"host": "0.0.0.0"},
                          grpc={"enabled": False}, log={"level": "info"})
    checked = northstard("--config", str(config), "--insecure-no-auth", "check-config")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["server"]["host"] == "0.0.0.0"
    warnings = [json.loads(line) for line in checked.stderr.splitlines()]
    said = {(w["level"], w["event"].split(":")[0]) for w in warnings}
    assert ("warning", "INSECURE") in said and ("warning", "kalshi source off") in said


# -- 15: a busy port ------------------------------------------------------------------------------


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port this test holds open (listening)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_busy_web_port_is_one_line_and_exit_2(tmp_path: Path, held_port: int) -> None:
    config = write_config(tmp_path, {"demo": {}}, server={"port": held_port}, log={"level": "error"})
    refused = northstard("--config", str(config))
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"northstard: cannot listen on 127.0.0.1:{held_port} (server.port): address already in use"]
    assert refused.stdout == ""


async def test_a_busy_grpc_port_is_said_once_shown_in_health_and_retried(start_daemon: Any) -> None:
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs, socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            daemon: Daemon = await start_daemon(grpc={"port": port, "shutdown_grace_s": 1.0})
            assert daemon.grpc_address is None
            async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as http:
                health = (await http.get("/api/health")).json()
                assert health["status"] == "degraded", (health["grpc"], health["sources"])
                assert health["grpc"]["status"] == "failing"
                assert health["grpc"]["error"] == (
                    f"cannot listen on 127.0.0.1:{port} (grpc.port): address already in use")
                with trio.fail_after(20):
                    while daemon.grpc.failures < 3:  # retried twice more (0.5 s, then 1 s)
                        await daemon.grpc.wait_changed()
                holder.close()  # the port is free: the next retry binds it
                with trio.fail_after(20):
                    while daemon.grpc_address is None:
                        await daemon.grpc.wait_changed()
                health = (await http.get("/api/health")).json()
            assert health["grpc"] == {"status": "ok", "address": f"127.0.0.1:{port}"}
            assert health["status"] == "ok"
            assert isinstance(await with_client(daemon, lambda client: client.current()), object)
    finally:
        structlog.configure(**saved)
    grpc_events = [e for e in logs if e.get("actor") == "grpc" or "grpc" in e["event"]]
    loud = [e["event"] for e in grpc_events if e["log_level"] in ("error", "critical", "warning")]
    assert loud == ["grpc cannot listen; retrying quietly until it can"]
    assert "grpc listening" in [e["event"] for e in grpc_events]
    assert not any("exc_info" in e or "traceback" in str(e) for e in logs)
