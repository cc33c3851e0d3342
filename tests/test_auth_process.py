"""Access control as an operator meets it: ``token new``, the bind refusal, ``tail --token``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from northstard.policy.auth import digest

from conftest import write_config
from proc import DaemonProcess, read_printed

pytestmark = pytest.mark.slow

TOKEN = "nsd_tail-token-of-the-auth-process-tests"


async def northstard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process([sys.executable, "-m", "northstard", *args],
                                      capture_stdout=True, capture_stderr=True, check=False,
                                      env={**os.environ, **(env or {})})


async def test_a_new_token_works_in_a_running_daemon(tmp_path: Path) -> None:
    made = await northstard("token", "new", "--name", "ops")
    assert made.returncode == 0, made.stderr
    token, *entry = made.stdout.decode().splitlines()
    assert token.startswith("nsd_") and entry[0] == "[auth]" and digest(token) in entry[1]
    assert token not in made.stderr.decode() and "shown only now" in made.stderr.decode()
    config = write_config(tmp_path, {"demo": {"interval_s": 0.05, "seed": 3}})
    config.write_text(config.read_text() + "\n".join(entry) + "\n")  # the printed lines, as printed
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    url = await daemon.start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            assert (await http.get("/api/sources")).status_code == 401
            ok = await http.get("/api/sources", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    assert token not in (tmp_path / "daemon.log").read_text()
    bad_name = await northstard("token", "new", "--name", "two words")
    assert bad_name.returncode == 2 and b"--name" in bad_name.stderr and not bad_name.stdout


async def test_a_public_address_without_tokens_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {}}, server={"host": "0.0.0.0"})
    refused = await northstard("--config", str(config))
    assert refused.returncode == 2
    message = refused.stderr.decode()
    assert "server.host" in message and "northstard token new" in message and "--insecure-no-auth" in message
    config = write_config(tmp_path, {"demo": {}}, grpc={"host": "0.0.0.0", "port": 0})
    refused = await northstard("--config", str(config))
    assert refused.returncode == 2 and "grpc.host" in refused.stderr.decode()


async def start(args: list[str], log: Path) -> tuple[trio.Process, dict[str, str]]:
    """A daemon process, and what it printed: {"dashboard": URL, "grpc": HOST:PORT (if on)}."""
    with log.open("ab") as handle:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "northstard", *args], stdout=subprocess.PIPE, stderr=handle,
            env={**os.environ})
    printed = await read_printed(process, log)
    return process, {"dashboard": printed["northstard dashboard"],
                     "grpc": printed.get("northstard grpc", "")}


async def stop(process: trio.Process) -> None:
    process.send_signal(signal.SIGTERM)
    with trio.fail_after(15):
        assert await process.wait() == 0


async def test_the_insecure_flag_serves_a_public_address_and_warns(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"interval_s": 0.05}}, server={"host": "0.0.0.0"},
                          grpc={"enabled": False}, log={"level": "info"})
    log = tmp_path / "daemon.log"
    process, printed = await start(["--config", str(config), "--insecure-no-auth"], log)
    try:
        port = printed["dashboard"].rpartition(":")[2]
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/api/sources")).status_code == 200
    finally:
        await stop(process)
    text = log.read_text()
    assert "INSECURE" in text and "server.host" in text


async def test_tail_sends_its_token_on_every_transport(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"interval_s": 0.02, "seed": 5}},
                          auth={"tokens": [digest(TOKEN)]}, grpc={"port": 0, "shutdown_grace_s": 1.0})
    process, printed = await start(["--config", str(config)], tmp_path / "daemon.log")
    url, env = printed["dashboard"], {"NORTHSTARD_TOKEN": TOKEN}
    try:
        runs = {
            "ws": await northstard("tail", "--ws", "--url", url, "--count", "2", env=env),
            "sse": await northstard("tail", "--sse", "--url", url, "--token", TOKEN, "--count", "2"),
            "grpc": await northstard("tail", "--url", f"grpc://{printed['grpc']}", "--count", "2", env=env),
            "ws-refused": await northstard("tail", "--ws", "--url", url, env={"NORTHSTARD_TOKEN": ""}),
            "sse-refused": await northstard("tail", "--sse", "--url", url, "--token", "nsd_wrong"),
        }
    finally:
        await stop(process)
    for name in ("ws", "sse", "grpc"):
        assert runs[name].returncode == 0, (name, runs[name].stderr)
        assert len(runs[name].stdout.decode().splitlines()) == 2, name
    for name in ("ws-refused", "sse-refused"):
        assert runs[name].returncode == 2 and b"refused" in runs[name].stderr, name
        assert b"nsd_wrong" not in runs[name].stderr and not runs[name].stdout
