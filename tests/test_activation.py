"""Socket activation: the daemon serves on listening sockets it is given (LISTEN_FDS)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url, wrap_client_stream

from northstard.edges.activation import Passed, http_sockets, parse, take_sockets
from northstard.errors import ConfigError

from clients import Follower, ws_url
from conftest import write_config
from proc import read_printed

# Runs the daemon as systemd does: the socket as descriptor 3, LISTEN_PID = the daemon's own pid.
AS_SYSTEMD = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="http")
os.execv(sys.executable, [sys.executable, "-m", "northstard", *sys.argv[2:]])
"""


# --- the protocol (pure) ---


def test_descriptors_passed_to_us_are_numbered_from_3_with_their_names() -> None:
    environ = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:grpc"}
    assert parse(environ, 42) == [Passed(3, "http"), Passed(4, "grpc")]
    assert parse({"LISTEN_PID": "42", "LISTEN_FDS": "1"}, 42) == [Passed(3, "unknown")]


@pytest.mark.parametrize("environ", [
    {},
    {"LISTEN_FDS": "1"},
    {"LISTEN_PID": "41", "LISTEN_FDS": "1"},  # meant for another process (our parent, say)
])
def test_descriptors_not_passed_to_us_are_not_taken(environ: dict[str, str]) -> None:
    assert parse(environ, 42) == []


@pytest.mark.parametrize(("environ", "key"), [
    ({"LISTEN_PID": "me", "LISTEN_FDS": "1"}, "LISTEN_PID"),
    ({"LISTEN_PID": "42", "LISTEN_FDS": "-1"}, "LISTEN_FDS"),
    ({"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "http"}, "LISTEN_FDNAMES"),
])
def test_bad_variables_name_the_variable(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(environ, 42)
    assert raised.value.key == key


def test_the_variables_are_removed_once_read_so_children_do_not_inherit_them() -> None:
    environ = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http", "PATH": "/bin"}
    assert take_sockets(environ, pid=2) == []
    assert environ == {"PATH": "/bin"}
    broken = {"LISTEN_PID": "2", "LISTEN_FDS": "x"}
    with pytest.raises(ConfigError):
        take_sockets(broken, pid=2)
    assert broken == {}


@pytest.fixture
def three_sockets() -> Iterator[list[socket.socket]]:
    socks = [socket.socket() for _ in range(3)]
    yield socks
    for sock in socks:
        sock.close()


def test_http_takes_the_sockets_named_http_else_every_one_but_grpc(
    three_sockets: list[socket.socket],
) -> None:
    a, b, c = three_sockets
    assert http_sockets([("grpc", a), ("http", b), ("http", c)]) == [b, c]
    assert http_sockets([("northstard.socket", a), ("grpc", b), ("unknown", c)]) == [a, c]
    assert http_sockets([("grpc", a)]) == []


# --- the daemon on a socket it was given ---


async def read_url(process: trio.Process, log: Path | None = None) -> str:
    """Wait for the line that says where the dashboard is; the URL without the final /."""
    return (await read_printed(process, log, limit=60))["northstard dashboard"]


async def stop(process: trio.Process) -> int:
    process.send_signal(signal.SIGTERM)
    with trio.fail_after(20):
        return await process.wait()


@pytest.mark.slow
async def test_the_daemon_serves_http_and_ws_on_a_socket_it_is_given(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"interval_s": 0.02, "seed": 3}})  # server.port = 0
    log = tmp_path / "daemon.log"
    with socket.create_server(("127.0.0.1", 0)) as listener, log.open("ab") as err:
        port = listener.getsockname()[1]
        fd = listener.fileno()
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", AS_SYSTEMD, str(fd), "--config", str(config)],
            pass_fds=(fd,), stdout=subprocess.PIPE, stderr=err,
        )
    try:
        url = await read_url(process, log)
        assert url == f"http://127.0.0.1:{port}"  # the given socket, not a port of its own
        follower = Follower()
        async with open_websocket_url(ws_url(url)) as ws:
            while follower.seq < 3:
                follower.apply(json.loads(await ws.get_message()))
        async with httpx.AsyncClient(timeout=10) as client:
            current = await client.get(f"{url}/api/pnl/current")
        assert current.status_code == 200 and current.json()["epoch"] == follower.epoch
    finally:
        assert await stop(process) == 0


@pytest.mark.slow
async def test_a_descriptor_that_is_not_a_listening_socket_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"seed": 3}})
    with socket.socket() as unbound:
        done = await trio.run_process(
            [sys.executable, "-c", AS_SYSTEMD, str(unbound.fileno()), "--config", str(config)],
            pass_fds=(unbound.fileno(),), capture_stdout=True, capture_stderr=True, check=False,
        )
    assert done.returncode == 2
    assert b"LISTEN_FDS: descriptor 3 is not a listening stream socket" in done.stderr


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: a unix socket's path is limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ns-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed")
async def test_systemd_socket_activate_starts_it_on_a_unix_socket(
    tmp_path: Path, short_dir: Path
) -> None:
    config = write_config(tmp_path, {"demo": {"interval_s": 0.02, "seed": 5}})
    path = short_dir / "http.sock"
    process = await trio.lowlevel.open_process(
        ["systemd-socket-activate", "--listen", str(path), "--fdname=http",
         sys.executable, "-m", "northstard", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    said = b""
    try:
        with trio.fail_after(30):
            while b"Listening on" not in said:  # the socket is there before the daemon is started
                said += await process.stderr.receive_some(4096)
        follower = Follower()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, process.stderr)
            # the first connection starts the daemon, which then accepts it
            stream = await trio.open_unix_socket(str(path))
            ws = await wrap_client_stream(nursery, stream, "localhost", "/ws")
            while follower.seq < 3:
                follower.apply(json.loads(await ws.get_message()))
            await ws.aclose()
            assert await read_url(process) == f"http://unix:{path}"
            transport = httpx.AsyncHTTPTransport(uds=str(path))
            async with httpx.AsyncClient(transport=transport, timeout=10) as client:
                current = await client.get("http://localhost/api/pnl/current")
            assert current.status_code == 200 and current.json()["epoch"] == follower.epoch
            assert await stop(process) == 0
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def drain(stream: trio.abc.ReceiveStream) -> None:
    while await stream.receive_some(65536):
        pass


@pytest.mark.slow
async def test_a_passed_socket_open_to_other_machines_needs_tokens(tmp_path: Path) -> None:
    """The exposure check looks at the sockets systemd passed, not at server.host they replace."""
    config = write_config(tmp_path, {"demo": {"seed": 3}})  # server.host = 127.0.0.1, no tokens
    with socket.create_server(("0.0.0.0", 0)) as listener:
        done = await trio.run_process(
            [sys.executable, "-c", AS_SYSTEMD, str(listener.fileno()), "--config", str(config)],
            pass_fds=(listener.fileno(),), capture_stdout=True, capture_stderr=True, check=False,
        )
    assert done.returncode == 2
    assert b"LISTEN_FDS: '0.0.0.0' is reachable from other machines" in done.stderr

