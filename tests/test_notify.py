"""The notify protocol against a real unix datagram socket the test opens."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from northstard.actors.notify import Notifier, watchdog_interval


def receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        notifier = Notifier({"NOTIFY_SOCKET": path})
        assert notifier.ready("net 12.50")
        assert receive(server) == {"READY": "1", "STATUS": "net 12.50"}
        assert notifier.watchdog()
        assert receive(server) == {"WATCHDOG": "1"}
        assert notifier.stopping()
        assert receive(server) == {"STOPPING": "1", "STATUS": "stopping"}
        notifier.close()


def test_messages_reach_an_abstract_socket() -> None:
    name = f"northstard-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.status("hello")
        assert receive(server) == {"STATUS": "hello"}
        notifier.close()


def test_without_a_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.ready("x")


def test_a_missing_socket_is_not_an_error(tmp_path: Path) -> None:
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")}).ready("x")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "x"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected


async def test_the_daemon_speaks_the_notify_protocol(tmp_path: Path) -> None:
    import signal

    import trio

    from conftest import write_config
    from proc import DaemonProcess

    path = str(tmp_path / "notify.sock")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await sock.bind(path)
    config = write_config(tmp_path, {"demo": {"interval_s": 0.05, "seed": 1}})
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env)
    await daemon.start()
    seen: list[dict[str, str]] = []

    async def until(key: str) -> dict[str, str]:
        with trio.fail_after(20):
            while True:
                data = (await sock.recv(4096)).decode()
                message = dict(line.split("=", 1) for line in data.splitlines())
                seen.append(message)
                if key in message:
                    return message

    try:
        ready = await until("READY")
        assert ready["READY"] == "1" and "net P&L" in ready["STATUS"]
        assert (await until("WATCHDOG"))["WATCHDOG"] == "1"
        daemon.send_signal(signal.SIGTERM)
        assert (await until("STOPPING"))["STOPPING"] == "1"
        assert await daemon.wait() == 0
    finally:
        await daemon.kill()
        sock.close()
    assert "READY" not in {k for m in seen[1:] for k in m}


async def test_a_second_daemon_on_the_same_database_is_refused(tmp_path: Path) -> None:
    import trio

    from conftest import write_config
    from proc import DaemonProcess

    config = write_config(tmp_path, {"demo": {"seed": 1}})
    first = DaemonProcess(config, tmp_path / "first.log")
    await first.start()
    try:
        import sys

        second = await trio.run_process(
            [sys.executable, "-m", "northstard", "--config", str(config)],
            capture_stdout=True, capture_stderr=True, check=False,
        )
    finally:
        await first.kill()
    assert second.returncode == 2
    assert b"in use by a running northstard" in second.stderr
