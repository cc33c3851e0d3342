"""TLS on the web port: HTTPS, WSS and SSE through the same edges, failed handshakes, config errors.

A self-signed certificate (``cryptography``) in the test's folder; real
clients (httpx, trio-websocket, trio's SSLStream) trust it through an SSL
context. ``TlsSocket`` itself is checked on a socket pair against trio's
SSLStream as the client.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_fastws import RawClient
from trio_websocket import ConnectionClosed, open_websocket_url

from northstard.actors.hub import Hub
from northstard.config import default_settings
from northstard.core.change import Change
from northstard.daemon import Daemon
from northstard.edges.stream.broadcast import Peer
from northstard.edges.stream.fastws import WsEdge, WsSettings
from northstard.edges.stream.front import Edge, Front, ListenSettings
from northstard.edges.tls import TlsSocket, load_server_context, tls_server
from northstard.errors import ConfigError
from northstard.policy.auth import digest
from northstard.status.metrics import Metrics

from certs import self_signed
from clients import Follower, sse_events
from conftest import DEMO_FAST, build_config, debug_logs, write_config
from proc import DaemonProcess

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n")


def trusting(cert: Path, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    if maximum is not None:
        context.maximum_version = maximum
    return context


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
async def tls_daemon(start_daemon: Callable[..., Any], tls_files: tuple[Path, Path]) -> Daemon:
    cert, key = tls_files
    daemon: Daemon = await start_daemon(
        DEMO_FAST, server={"tls_cert": str(cert), "tls_key": str(key), "tls_handshake_timeout_s": 0.5})
    return daemon


def address(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[1].rpartition(":")
    return host, int(port)


class TlsClient(RawClient):
    """An HTTP/1.1 and WebSocket client over trio's SSLStream that sends what a test wants."""

    @classmethod
    async def connect_tls(cls, url: str, context: ssl.SSLContext, receive_buffer: int = 0) -> TlsClient:
        sock = trio.socket.socket()
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        await sock.connect(address(url))
        stream = trio.SSLStream(trio.SocketStream(sock), context, server_hostname="127.0.0.1")
        await stream.do_handshake()
        return cls(stream)

    async def until(self, marker: bytes) -> bytes:
        """Everything up to and including ``marker``."""
        while marker not in self.buffer:
            assert await self._fill(), f"closed before {marker!r}"
        end = self.buffer.index(marker) + len(marker)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    async def request(self, head: str) -> tuple[str, dict[str, str], bytes]:
        """Send a request head; the status line, headers and body of the answer."""
        await self.stream.send_all(head.encode())
        lines = (await self.until(b"\r\n\r\n")).decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        length = int(headers.get("content-length", 0))
        while len(self.buffer) < length:
            assert await self._fill()
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return lines[0], headers, body


# -- TlsSocket on a socket pair ------------------------------------------------------------------


@asynccontextmanager
async def tls_pair(tmp_path: Path) -> AsyncIterator[tuple[TlsSocket, trio.SSLStream[trio.SocketStream]]]:
    """A server TlsSocket and a client SSLStream, handshake done; small buffers, to fill them."""
    cert, key = self_signed(tmp_path)
    server_end, client_end = socket.socketpair()
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server_end.setblocking(False)
    context = load_server_context(replace(default_settings().server, tls_cert=cert, tls_key=key))
    assert context is not None
    server = TlsSocket(server_end, context)
    client = trio.SSLStream(trio.SocketStream(trio.socket.from_stdlib_socket(client_end)),
                            trusting(cert), server_hostname="localhost")
    early: list[bytes] = []

    async def handshake() -> None:
        early.append(await server.handshake())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(handshake)
        await client.do_handshake()
    assert early == [b""]
    try:
        yield server, client
    finally:
        server.close()
        await client.aclose()


async def test_send_takes_all_or_would_block_and_holds_at_most_one_record(tmp_path: Path) -> None:
    async with tls_pair(tmp_path) as (server, client):
        frames = [bytes([65 + n % 26]) * 3000 for n in range(200)]
        sent = 0
        while sent < len(frames):
            try:
                assert server.send(frames[sent]) == len(frames[sent])  # all of it, or nothing
            except BlockingIOError:
                break
            assert server.unsent == 0  # taken means on the wire: no tail left for nobody to flush
            sent += 1
        assert sent < len(frames), "the socket never filled up"
        blocked = frames[sent]
        for _ in range(3):  # offered again while the client does not read: still blocked
            with pytest.raises(BlockingIOError):
                server.send(blocked)
        assert 0 < server.unsent <= len(blocked) + 256  # one record's ciphertext, not a queue
        expected = b"".join(frames)
        received = bytearray()

        async def read_all() -> None:
            while len(received) < len(expected):
                chunk = await client.receive_some(65536)
                assert chunk == expected[len(received):len(received) + len(chunk)]  # none twice
                received.extend(chunk)

        with trio.fail_after(30):
            await send_the_rest(server, frames[sent:], read_all)
        assert received == expected  # in order, none twice, none lost
        assert server.unsent == 0


async def send_the_rest(server: TlsSocket, frames: list[bytes], read_all: Callable[[], Any]) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        for frame in frames:
            while True:
                try:
                    assert server.send(frame) == len(frame)
                    break
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(server)


async def test_recv_leaves_nothing_decrypted_behind(tmp_path: Path) -> None:
    async with tls_pair(tmp_path) as (server, client):
        for n in range(50):  # one TLS record each, all in the socket at once
            await client.send_all(b"%03d;" % n)
        received = bytearray()
        with trio.fail_after(10):  # waiting while plaintext sat in the SSL object would hang here
            while len(received) < 200:
                await trio.lowlevel.wait_readable(server)
                try:
                    received += server.recv(65536)
                except BlockingIOError:
                    continue
        assert received == b"".join(b"%03d;" % n for n in range(50))
        await client.aclose()
        with trio.fail_after(10):
            while True:
                await trio.lowlevel.wait_readable(server)
                try:
                    if server.recv(65536) == b"":
                        break
                except BlockingIOError:
                    continue


# -- the daemon over TLS ---------------------------------------------------------------------------


async def test_rest_dashboard_and_long_poll_over_https(
    tls_daemon: Daemon, tls_files: tuple[Path, Path]
) -> None:
    assert tls_daemon.url.startswith("https://127.0.0.1:")
    async with httpx.AsyncClient(base_url=tls_daemon.url, verify=trusting(tls_files[0]),
                                 timeout=20) as http:
        current = await http.get("/api/pnl/current")
        assert current.status_code == 200 and current.json()["type"] == "snapshot"
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        body = current.json()
        since = f"{body['epoch']}:{body['seq']}"
        changes = await http.get("/api/pnl/changes", params={"since": since, "wait": "10"})
        assert changes.status_code == 200 and changes.json()["type"] in {"delta", "snapshot"}
        assert changes.json()["seq"] > body["seq"]
        assert current.http_version == "HTTP/1.1"


async def test_wss_gets_a_snapshot_then_gap_free_deltas(
    tls_daemon: Daemon, tls_files: tuple[Path, Path]
) -> None:
    follower = Follower()
    url = tls_daemon.url.replace("https://", "wss://") + "/ws"
    async with open_websocket_url(url, ssl_context=trusting(tls_files[0])) as ws:
        while len(follower.seqs) < 30:
            follower.apply(json.loads(await ws.get_message()))
        await ws.send_message(json.dumps({"type": "ping", "id": 7}))  # client frames are read too
        while (message := json.loads(await ws.get_message()))["type"] != "pong":
            follower.apply(message)
    assert message["id"] == 7
    assert follower.kinds[0] == "snapshot" and set(follower.kinds[1:]) == {"delta"}


async def test_sse_over_https_gets_events(tls_daemon: Daemon, tls_files: tuple[Path, Path]) -> None:
    follower = Follower()
    async with httpx.AsyncClient(verify=trusting(tls_files[0]), timeout=10) as http:
        async for event_id, event, data in sse_events(http, f"{tls_daemon.url}/api/pnl/stream"):
            assert event == data["type"] and event_id == f"{data['epoch']}:{data['seq']}"
            follower.apply(data)
            if len(follower.seqs) >= 10:
                break
    assert follower.kinds[0] == "snapshot" and set(follower.kinds[1:]) == {"delta"}


async def test_a_keep_alive_tls_connection_is_handed_over_to_the_edges(
    tls_daemon: Daemon, tls_files: tuple[Path, Path]
) -> None:
    context = trusting(tls_files[0])
    for stream_request, first_line in ((UPGRADE, b"HTTP/1.1 101"),
                                       ("GET /api/pnl/stream HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200")):
        client = await TlsClient.connect_tls(tls_daemon.url, context)
        line, _, body = await client.request("GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert line.startswith("HTTP/1.1 200") and json.loads(body)["status"] in {"ok", "degraded"}
        await client.stream.send_all(stream_request.encode())  # the same TLS connection
        assert (await client.until(b"\r\n\r\n")).startswith(first_line)
        if stream_request is UPGRADE:
            assert (await client.message())["type"] == "snapshot"
        else:
            assert b"event: snapshot" in await client.until(b"event: delta")
        await client.stream.aclose()


async def test_the_scheme_is_https_for_the_app(start_daemon: Callable[..., Any],
                                               tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    token = "nsd_token-of-the-tls-tests"
    daemon = await start_daemon(DEMO_FAST, server={"tls_cert": str(cert), "tls_key": str(key)},
                                auth={"tokens": [digest(token)]})
    async with httpx.AsyncClient(base_url=daemon.url, verify=trusting(cert), timeout=10) as http:
        accepted = await http.post("/login", data={"token": token})
    assert accepted.status_code == 303
    attributes = {a.strip().lower() for a in accepted.headers["set-cookie"].split(";")[1:]}
    assert "secure" in attributes  # Secure follows the request's scheme: https


async def test_plain_http_on_the_tls_port_is_refused_and_serving_goes_on(
    tls_daemon: Daemon, tls_files: tuple[Path, Path]
) -> None:
    stream = await trio.open_tcp_stream(*address(tls_daemon.url))
    await stream.send_all(b"GET /api/pnl/current HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body) == {"error": "bad_request",
                                "detail": "this port speaks TLS: use https:// (wss:// for the WebSocket)"}
    async with httpx.AsyncClient(verify=trusting(tls_files[0]), timeout=10) as http:
        assert (await http.get(f"{tls_daemon.url}/api/health")).status_code == 200


@pytest.mark.parametrize("sends", [b"", b"\x16\x03\x01\x02\x00\x01"], ids=["silent", "half-a-hello"])
async def test_a_client_that_never_completes_the_handshake_is_closed(
    tls_daemon: Daemon, tls_files: tuple[Path, Path], sends: bytes
) -> None:
    with debug_logs() as logs:
        stream = await trio.open_tcp_stream(*address(tls_daemon.url))
        await stream.send_all(sends)
        with trio.fail_after(10):  # the deadline is 0.5 s
            assert await stream.receive_some(65536) == b""
    failures = [log for log in logs if log["event"] == "tls handshake failed"]
    assert failures and all(log["log_level"] == "debug" for log in failures)
    async with httpx.AsyncClient(verify=trusting(tls_files[0]), timeout=10) as http:
        assert (await http.get(f"{tls_daemon.url}/api/health")).status_code == 200


async def test_the_minimum_version_is_enforced(start_daemon: Callable[..., Any],
                                               tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    daemon = await start_daemon(
        DEMO_FAST, server={"tls_cert": str(cert), "tls_key": str(key), "tls_min_version": "1.3"})
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(verify=trusting(cert, ssl.TLSVersion.TLSv1_2)) as old:
            await old.get(f"{daemon.url}/api/health")
    async with httpx.AsyncClient(verify=trusting(cert), timeout=10) as http:
        assert (await http.get(f"{daemon.url}/api/health")).status_code == 200


# -- a stalled client, with a hub of our own ---------------------------------------------------------


async def hello(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """The smallest ASGI app: the app's half of the port."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["scheme"].encode()})


def publish(hub: Hub, pad: int = 0) -> None:
    seq = hub.seq + 1
    patch = {"n": seq, "pad": f"{seq:08d}" * pad}
    hub.publish(Change(hub.epoch, seq, seq, {**hub.doc, **patch}, patch))


@asynccontextmanager
async def serving(edges: list[Edge], cert: Path, key: Path) -> AsyncIterator[str]:
    front = Front(hello, ListenSettings(), edges)
    front.tls = tls_server(replace(default_settings().server, tls_cert=cert, tls_key=key,
                                   tls_handshake_timeout_s=5.0))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(front.serve, stop.wait)
        yield urls[0]
        stop.set()


async def blocked(hub: Hub, peer: Peer) -> None:
    """Publish large changes until the broadcast finds the client's socket full."""
    for _ in range(5000):
        publish(hub, pad=500)
        await trio.testing.wait_all_tasks_blocked()
        if peer.draining:
            return
    raise AssertionError("the socket never filled up")


async def test_a_stalled_tls_client_holds_one_frame_and_is_closed(tls_files: tuple[Path, Path]) -> None:
    hub = Hub(ring_size=100000)
    hub.reset("e1", 0, {}, 0)
    publish(hub)
    edge = WsEdge(hub, Metrics(), WsSettings(ping_interval_s=0, blocked_close_after_s=0.5,
                                             close_grace_s=0.5))
    context = trusting(tls_files[0])
    async with serving([edge], *tls_files) as url:
        async with httpx.AsyncClient(verify=context) as http:  # the app's half says https
            assert (await http.get(f"{url}/anything")).text == "https"
        stalled = await TlsClient.connect_tls(url, context, receive_buffer=4096)
        await stalled.stream.send_all(UPGRADE.encode())
        await stalled.until(b"\r\n\r\n")
        assert (await stalled.message())["type"] == "snapshot"
        [peer] = edge.broadcaster.peers
        tls = peer.sock
        assert isinstance(tls, TlsSocket) and peer.fd == -1  # never the C loop: it must encrypt
        reader = await TlsClient.connect_tls(url, context)
        await reader.stream.send_all(UPGRADE.encode())
        await reader.until(b"\r\n\r\n")
        await blocked(hub, peer)
        snapshot = hub.catch_up(None)
        assert snapshot is not None
        frame = len(edge.broadcaster.frame(snapshot))  # the whole document: as large as any delta
        held = []
        for _ in range(100):  # the stalled client holds one frame, however much is published
            publish(hub, pad=500)
            await trio.testing.wait_all_tasks_blocked()
            held.append((len(peer.backlog), tls.unsent))
        assert max(backlog for backlog, _ in held) <= 2 * frame
        assert max(unsent for _, unsent in held) <= 2 * frame
        follower = Follower()
        while follower.seq < hub.seq:  # nobody else waits for it
            follower.apply(await reader.message())
        with trio.fail_after(10):
            await peer.finished.wait()  # blocked for 0.5 s: closed
        await trio.testing.wait_all_tasks_blocked()
        assert peer not in edge.broadcaster.peers and peer.sock.fileno() == -1
        hub.close()


# -- as a process: SIGTERM, tail, config errors --------------------------------------------------


@pytest.mark.slow
async def test_sigterm_ends_wss_with_1001_and_sse_with_its_last_chunk_and_tail_trusts_the_cacert(
    tmp_path: Path, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    config = write_config(tmp_path, {"demo": {"interval_s": 0.05, "seed": 3}},
                          server={"tls_cert": str(cert), "tls_key": str(key)}, grpc={"enabled": False})
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    url = await daemon.start()
    assert url.startswith("https://")  # the dashboard URL printed at start
    closed: dict[str, int] = {}
    try:
        for transport in ("--ws", "--sse"):
            with trio.fail_after(60):
                run = await trio.run_process(
                    [sys.executable, "-m", "northstard", "tail", transport, "--url", url,
                     "--cacert", str(cert), "--count", "3"],
                    capture_stdout=True, capture_stderr=True, check=False)
            assert run.returncode == 0, run.stderr.decode()
            assert len(run.stdout.decode().splitlines()) == 3
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(wss_until_closed, url, cert, closed)
                await nursery.start(sse_until_the_end, url, cert, closed)
                daemon.send_signal(signal.SIGTERM)
        assert await daemon.wait(15) == 0
    finally:
        await daemon.kill()
    assert closed["ws"] == 1001
    assert closed["sse"] >= 1  # and no error: the chunked body ended with its last chunk


async def wss_until_closed(url: str, cert: Path, closed: dict[str, int],
                           task_status: trio.TaskStatus[None]) -> None:
    async with open_websocket_url(url.replace("https://", "wss://") + "/ws",
                                  ssl_context=trusting(cert)) as ws:
        await ws.get_message()
        task_status.started()
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as exc:
            assert exc.reason is not None
            closed["ws"] = exc.reason.code


async def sse_until_the_end(url: str, cert: Path, closed: dict[str, int],
                            task_status: trio.TaskStatus[None]) -> None:
    async with httpx.AsyncClient(verify=trusting(cert), timeout=10) as http:
        count = 0
        async for _ in sse_events(http, f"{url}/api/pnl/stream"):
            count += 1
            if count == 1:
                task_status.started()
        closed["sse"] = count


def test_a_bad_tls_file_stops_the_daemon_with_exit_2(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    cert.write_text("not a certificate\n")
    config = write_config(tmp_path, DEMO_FAST, server={"tls_cert": str(cert), "tls_key": str(key)})
    run = subprocess.run([sys.executable, "-m", "northstard", "--config", str(config)],
                         capture_output=True, timeout=60, check=False)
    assert run.returncode == 2
    assert b"server.tls_cert" in run.stderr and b"no PEM certificate" in run.stderr
    assert key.read_bytes() not in run.stderr


def _encrypted_key(tmp_path: Path) -> Path:
    path = tmp_path / "encrypted.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"pass")))
    return path


@pytest.mark.parametrize(("change", "key", "problem"), [
    ("no key", "server.tls_key", "tls_cert and tls_key go together"),
    ("no cert", "server.tls_cert", "tls_cert and tls_key go together"),
    ("missing cert", "server.tls_cert", "cannot read"),
    ("unreadable key", "server.tls_key", "cannot read"),
    ("cert is the key", "server.tls_cert", "no PEM certificate"),
    ("another key", "server.tls_key", "is not a PEM private key of tls_cert"),
    ("encrypted key", "server.tls_key", "the key is encrypted"),
])
def test_certificate_and_key_errors_name_the_key(
    tmp_path: Path, change: str, key: str, problem: str
) -> None:
    cert, private = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other = self_signed(tmp_path / "other")[1]
    server: dict[str, Any] = {"tls_cert": cert, "tls_key": private}
    if change == "no key":
        server["tls_key"] = None
    elif change == "no cert":
        server["tls_cert"] = None
    elif change == "missing cert":
        server["tls_cert"] = tmp_path / "nowhere.pem"
    elif change == "unreadable key":
        server["tls_key"] = tmp_path  # a directory: cannot be read
    elif change == "cert is the key":
        server["tls_cert"] = private
    elif change == "another key":
        server["tls_key"] = other
    else:
        server["tls_key"] = _encrypted_key(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_server_context(replace(default_settings().server, **server))
    assert raised.value.key == key and problem in raised.value.problem


def test_the_tls_keys_are_checked_by_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(tmp_path, DEMO_FAST, server={"tls_min_version": "1.1"})
    assert raised.value.key == "server.tls_min_version"
    server = build_config(tmp_path, DEMO_FAST).settings.server
    assert server.tls_cert is None and server.tls_key is None
    assert load_server_context(server) is None  # no TLS: plain HTTP as before
