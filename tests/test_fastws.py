"""The raw-socket edges on real sockets: the WebSocket protocol, the front's routing, slow clients.

Daemon-level tests run the whole daemon (demo source, Quart beside the edges
on one port) and talk to it with trio-websocket or a raw client that can
send what trio-websocket never would. Edge-level tests run a hub, the edges
and the front with a tiny ASGI app, and publish changes themselves.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, open_websocket_url

from northstard.actors.hub import Hub
from northstard.config import default_settings
from northstard.core.change import Change
from northstard.core.http1 import Request
from northstard.core.wsframes import Opcode, encode_frame
from northstard.daemon import Daemon
from northstard.edges.stream.broadcast import Peer
from northstard.edges.stream.fastsse import SseEdge
from northstard.edges.stream.fastws import WsEdge, WsSettings
from northstard.edges.stream.front import Edge, Front, ListenSettings
from northstard.errors import RequestError
from northstard.status.metrics import Metrics

from clients import Follower, ws_url

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class RawClient:
    """A WebSocket client on a bare socket: it sends whatever bytes a test wants."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, url: str, receive_buffer: int = 0) -> RawClient:
        sock = trio.socket.socket()
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        host, _, port = url.split("://", 1)[1].rpartition(":")
        await sock.connect((host, int(port)))
        return cls(trio.SocketStream(sock))

    async def _fill(self) -> bool:
        data = await self.stream.receive_some(65536)
        self.buffer += data
        return bool(data)

    async def request(self, head: str) -> tuple[str, dict[str, str], bytes]:
        """Send ``head`` (CRLF line ends added); the status line, headers and any body."""
        await self.stream.send_all(head.replace("\n", "\r\n").encode())
        while b"\r\n\r\n" not in self.buffer:
            assert await self._fill(), "closed before the response head"
        head_bytes, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        lines = head_bytes.decode().split("\r\n")
        pairs = (line.split(": ", 1) for line in lines[1:])
        headers = {name.lower(): value for name, value in pairs}
        length = int(headers.get("content-length", 0))
        while len(rest) < length:
            assert await self._fill()
            rest = bytes(self.buffer).partition(b"\r\n\r\n")[2]
        self.buffer = bytearray(rest[length:])
        return lines[0], headers, rest[:length]

    async def upgrade(self, path: str = "/ws", extra: str = "") -> tuple[str, dict[str, str], bytes]:
        return await self.request(
            f"GET {path} HTTP/1.1\nHost: 127.0.0.1\nUpgrade: websocket\nConnection: Upgrade\n"
            f"Sec-WebSocket-Key: {KEY}\nSec-WebSocket-Version: 13\n{extra}\n"
        )

    async def send(self, opcode: int, payload: bytes, **options: Any) -> None:
        options.setdefault("mask_key", os.urandom(4))
        await self.stream.send_all(encode_frame(opcode, payload, **options))

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame (unmasked and final, as this server sends them)."""
        while True:
            if len(self.buffer) >= 2:
                assert self.buffer[0] & 0x80 and not self.buffer[1] & 0x80
                length, start = self.buffer[1] & 0x7F, 2
                if length >= 126:
                    start = 4 if length == 126 else 10
                    length = int.from_bytes(self.buffer[2:start], "big")
                if len(self.buffer) >= start + length:
                    opcode, payload = self.buffer[0] & 0x0F, bytes(self.buffer[start:start + length])
                    del self.buffer[:start + length]
                    return opcode, payload
            assert await self._fill(), "closed without a close frame"

    async def message(self) -> dict[str, Any]:
        """The next application message (pings are skipped)."""
        while True:
            opcode, payload = await self.frame()
            if opcode == Opcode.TEXT:
                body: dict[str, Any] = json.loads(payload)
                return body
            assert opcode == Opcode.PING, (opcode, payload)

    async def closed_with(self) -> tuple[int, str]:
        """Read on to the server's close frame; answer it; return its code and reason."""
        while True:
            opcode, payload = await self.frame()
            if opcode == Opcode.CLOSE:
                await self.send(Opcode.CLOSE, payload[:2])
                return int.from_bytes(payload[:2], "big"), payload[2:].decode()

    async def eof(self) -> bool:
        while await self._fill():
            pass
        return True


async def raw(daemon: Daemon) -> RawClient:
    client = await RawClient.connect(daemon.url)
    status, _, _ = await client.upgrade()
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert (await client.message())["type"] == "snapshot"
    return client


# -- with trio-websocket -----------------------------------------------------------------


async def test_snapshot_gap_free_deltas_pings_and_a_clean_close(daemon: Daemon) -> None:
    follower = Follower()
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        while len(follower.seqs) < 20:
            follower.apply(json.loads(await ws.get_message()))
        await ws.ping(b"are you there")  # returns when the matching pong came back
        await ws.send_message('{"type":"ping","id":"a"}')
        while (message := json.loads(await ws.get_message()))["type"] != "pong":
            follower.apply(message)
        assert message["id"] == "a" and isinstance(message["ts"], int)
        await ws.aclose(1000, "bye")
    assert ws.closed is not None and ws.closed.code == 1000
    assert follower.kinds[0] == "snapshot" and set(follower.kinds[1:]) == {"delta"}


async def test_resume_by_url_and_by_message_gets_exactly_what_was_missed(daemon: Daemon) -> None:
    follower = Follower()
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        for _ in range(5):
            follower.apply(json.loads(await ws.get_message()))
    since = follower.since
    async with open_websocket_url(ws_url(daemon.url, f"/ws?since={since}")) as ws:
        first = json.loads(await ws.get_message())
        assert first["type"] == "delta" and first["prev"] == follower.seq
        follower.apply(first)
        epoch, seq = since.rsplit(":", 1)
        await ws.send_message(json.dumps({"type": "resume", "epoch": epoch, "seq": int(seq)}))
        while (message := json.loads(await ws.get_message()))["prev"] != int(seq):
            pass
        assert message["type"] == "delta" and message["seq"] >= follower.seq


async def test_shutdown_closes_every_client_with_1001(start_daemon: Any) -> None:
    daemon = await start_daemon()
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        await ws.get_message()
        daemon.stop()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.get_message()
    assert closed.value.reason.code == 1001
    assert closed.value.reason.reason == "server shutting down"


# -- raw frames ----------------------------------------------------------------------------


@pytest.mark.parametrize(("frame", "code"), [
    (encode_frame(Opcode.TEXT, b'{"type":"ping"}'), 1002),
    (encode_frame(Opcode.TEXT, b"{}", mask_key=b"abcd", rsv=2), 1002),
    (encode_frame(0x5, b"x", mask_key=b"abcd"), 1002),
    (encode_frame(Opcode.TEXT, b"\xed\xa0\x80", mask_key=b"abcd"), 1007),
    (encode_frame(Opcode.TEXT, b"x" * 2000, mask_key=b"abcd"), 1009),
], ids=["unmasked", "reserved-bit", "unknown-opcode", "not-utf8", "over-the-limit"])
async def test_a_malformed_frame_closes_with_its_code(
    start_daemon: Any, frame: bytes, code: int
) -> None:
    daemon = await start_daemon(server={"ws_max_message_bytes": 1024})
    client = await raw(daemon)
    await client.stream.send_all(frame)
    assert (await client.closed_with())[0] == code
    assert await client.eof()


async def test_a_fragmented_message_with_a_ping_inside_is_answered(daemon: Daemon) -> None:
    client = await raw(daemon)
    await client.send(Opcode.TEXT, b'{"type":"pi', fin=False)
    await client.send(Opcode.PING, b"inside")
    await client.send(Opcode.CONTINUATION, b'ng","id":', fin=False)
    await client.send(Opcode.CONTINUATION, b"5}")
    got_pong = False
    while True:
        opcode, payload = await client.frame()
        if opcode == Opcode.PONG:
            assert payload == b"inside" and not got_pong
            got_pong = True
        elif opcode == Opcode.TEXT and json.loads(payload)["type"] == "pong":
            break
    assert got_pong and json.loads(payload)["id"] == 5


async def test_the_client_close_is_echoed_then_the_server_closes(daemon: Daemon) -> None:
    client = await raw(daemon)
    await client.send(Opcode.CLOSE, (1000).to_bytes(2, "big") + b"done")
    while (frame := await client.frame())[0] != Opcode.CLOSE:
        pass
    assert frame[1][:2] == (1000).to_bytes(2, "big")
    assert await client.eof()


async def test_app_errors_keep_the_connection_and_binary_is_refused(daemon: Daemon) -> None:
    client = await raw(daemon)
    await client.send(Opcode.BINARY, b"\x00")
    await client.send(Opcode.TEXT, b'{"type":"dance"}')
    errors = []
    while len(errors) < 2:
        message = await client.message()
        if message["type"] == "error":
            errors.append(message["error"])
    assert errors == ["bad_message", "unknown_type"]
    assert (await client.message())["type"] == "delta"


async def test_the_server_pings_and_the_client_pongs(start_daemon: Any) -> None:
    daemon = await start_daemon(server={"ws_ping_interval_s": 0.05})
    client = await raw(daemon)
    while (frame := await client.frame())[0] != Opcode.PING:
        pass
    await client.send(Opcode.PONG, frame[1])
    assert (await client.message())["type"] == "delta"


async def test_a_bad_since_is_told_then_closed_with_1008(daemon: Daemon) -> None:
    client = await RawClient.connect(daemon.url)
    status, _, _ = await client.upgrade("/ws?since=garbage")
    assert status.startswith("HTTP/1.1 101")
    message = await client.message()
    assert message["type"] == "error" and message["error"] == "bad_parameter"
    assert (await client.closed_with())[0] == 1008


# -- the handshake --------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "status"), [
    ("", 101),
    ("Origin: http://127.0.0.1\n", 101),
    ("Origin: https://dashboard.example\n", 101),
    ("Origin: https://evil.example\n", 403),
])
async def test_the_origin_is_checked(start_daemon: Any, extra: str, status: int) -> None:
    daemon = await start_daemon(server={"ws_allowed_origins": ["https://dashboard.example"]})
    client = await RawClient.connect(daemon.url)
    line, _headers, body = await client.upgrade(extra=extra)
    assert line.split(" ")[1] == str(status)
    if status != 101:
        assert json.loads(body)["error"] == "forbidden"
        assert await client.eof()


async def test_bad_handshakes_are_refused_with_json(daemon: Daemon) -> None:
    cases = [
        ("GET /ws HTTP/1.1\nHost: x\n\n", 426),
        ("GET /ws HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\n"
         "Sec-WebSocket-Key: nope\nSec-WebSocket-Version: 13\n\n", 400),
        (f"GET /ws HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\n"
         f"Sec-WebSocket-Key: {KEY}\nSec-WebSocket-Version: 8\n\n", 426),
        ("GET /ws HTTP/1.1\nbroken header\n\n", 400),
    ]
    for head, status in cases:
        client = await RawClient.connect(daemon.url)
        line, headers, body = await client.request(head)
        assert line.split(" ")[1] == str(status), head
        assert set(json.loads(body)) == {"error", "detail"}
        if status == 426:
            assert "upgrade" in headers or headers.get("sec-websocket-version") == "13"


# -- one port --------------------------------------------------------------------------------


async def test_a_keep_alive_connection_is_handed_over_to_the_edges(daemon: Daemon) -> None:
    client = await RawClient.connect(daemon.url)
    line, _headers, body = await client.request("GET /api/health HTTP/1.1\nHost: x\n\n")
    assert line == "HTTP/1.1 200 " or line.startswith("HTTP/1.1 200")
    assert json.loads(body)["status"] in {"ok", "degraded"}
    status, _, _ = await client.upgrade()
    assert status.startswith("HTTP/1.1 101")
    assert (await client.message())["type"] == "snapshot"
    async with httpx.AsyncClient(timeout=10) as http:  # REST, then SSE, on one connection
        assert (await http.get(f"{daemon.url}/api/health")).status_code == 200
        async with http.stream("GET", f"{daemon.url}/api/pnl/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    assert line == "event: snapshot"
                    break


async def test_sse_over_http_1_0_ends_at_close(daemon: Daemon) -> None:
    client = await RawClient.connect(daemon.url)
    await client.stream.send_all(b"GET /api/pnl/stream HTTP/1.0\r\nHost: x\r\n\r\n")
    while b"event: delta" not in client.buffer:
        assert await client._fill()
    head, _, body = bytes(client.buffer).partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and b"connection: close" in head.lower()
    assert body.startswith(b"retry: 2000\n\nid: ") and b"event: snapshot\ndata: {" in body


# -- edge level: a hub of our own -------------------------------------------------------------


async def hello(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """The smallest ASGI app: the app's half of the port."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def publish(hub: Hub, pad: int = 0) -> None:
    seq = hub.seq + 1
    patch = {"n": seq, "pad": f"{seq:08d}" * pad}
    hub.publish(Change(hub.epoch, seq, seq, {**hub.doc, **patch}, patch))


@asynccontextmanager
async def serving(edges: list[Edge]) -> AsyncIterator[str]:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(Front(hello, ListenSettings(), edges).serve, stop.wait)
        yield urls[0]
        stop.set()


def new_hub() -> Hub:
    hub = Hub(ring_size=100000)
    hub.reset("e1", 0, {}, 0)
    publish(hub)
    return hub


def ws_edge(hub: Hub, **settings: Any) -> WsEdge:
    return WsEdge(hub, Metrics(), WsSettings(ping_interval_s=0, **settings))


async def test_the_auth_hook_may_refuse(nursery: trio.Nursery) -> None:
    def token_required(request: Request) -> None:
        if request.headers.get("authorization") != "Bearer ok":
            raise RequestError("unauthorized", "a token is required", 401,
                               [("www-authenticate", "Bearer")])

    hub = new_hub()
    edge = WsEdge(hub, Metrics(), WsSettings(ping_interval_s=0), token_required)
    async with serving([edge]) as url:
        client = await RawClient.connect(url)
        line, headers, _body = await client.upgrade()
        assert line.startswith("HTTP/1.1 401") and headers["www-authenticate"] == "Bearer"
        allowed = await RawClient.connect(url)
        line, _, _ = await allowed.upgrade(extra="Authorization: Bearer ok\n")
        assert line.startswith("HTTP/1.1 101")
        async with httpx.AsyncClient() as http:  # everything else: the ASGI app
            assert (await http.get(f"{url}/anything")).text == "hello"
        hub.close()
        assert await allowed.closed_with() == (1001, "server shutting down")


async def test_one_frame_serves_every_client() -> None:
    hub = new_hub()
    edge = ws_edge(hub)
    async with serving([edge]) as url:
        clients = [await RawClient.connect(url) for _ in range(3)]
        for client in clients:
            await client.upgrade()
            assert (await client.message())["seq"] == 1
        for _ in range(3):
            publish(hub)
            frames = {await client.frame() for client in clients}
            assert len(frames) == 1  # the same bytes for everyone
        assert edge.broadcaster.live == edge.broadcaster.peers
        hub.close()
        for client in clients:
            assert (await client.closed_with())[0] == 1001


async def fill(hub: Hub, edge: WsEdge) -> Peer:
    """Publish large changes until the broadcast finds the only client's socket full."""
    [peer] = edge.broadcaster.peers
    for _ in range(5000):
        publish(hub, pad=500)
        await trio.testing.wait_all_tasks_blocked()
        if peer.draining:
            return peer
    raise AssertionError("the socket never filled up")


async def test_a_client_that_was_blocked_catches_up_with_one_merged_delta() -> None:
    hub = new_hub()
    edge = ws_edge(hub)
    async with serving([edge]) as url:
        slow = await RawClient.connect(url, receive_buffer=4096)
        await slow.upgrade()
        peer = await fill(hub, edge)
        assert peer.backlog and peer not in edge.broadcaster.live
        blocked_at = peer.position
        for _ in range(5):
            publish(hub)
        follower = Follower()
        while follower.seq < hub.seq:
            follower.apply(await slow.message())
        assert follower.doc == hub.doc
        merged = follower.seqs.index(blocked_at.seq) + 1
        assert follower.kinds[merged:] == ["delta"] and follower.seqs[merged:] == [hub.seq]
        await trio.testing.wait_all_tasks_blocked()
        assert peer in edge.broadcaster.live and not peer.backlog
        hub.close()
        assert (await slow.closed_with())[0] == 1001


async def test_a_client_that_stops_reading_is_closed_with_4008_and_resumes(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.05  # virtual time moves only when every task waits
    hub = new_hub()
    edge = ws_edge(hub, blocked_close_after_s=5.0, close_grace_s=30.0)
    async with serving([edge]) as url:
        stuck = await RawClient.connect(url, receive_buffer=4096)
        await stuck.upgrade()
        peer = await fill(hub, edge)
        assert peer.backlog and not peer.closing
        other = await RawClient.connect(url)
        await other.upgrade()
        assert (await other.message())["seq"] == hub.seq  # nobody else waits for it
        await trio.sleep(6)
        assert peer.closing
        follower = Follower()
        while True:
            opcode, payload = await stuck.frame()
            if opcode == Opcode.CLOSE:
                break
            follower.apply(json.loads(payload))
        assert int.from_bytes(payload[:2], "big") == 4008 and b"not reading" in payload
        await stuck.send(Opcode.CLOSE, payload[:2])
        assert await stuck.eof()
        publish(hub)
        again = await RawClient.connect(url)
        await again.upgrade(f"/ws?since={follower.since}")
        resumed = await again.message()
        assert resumed["type"] == "delta" and resumed["prev"] == follower.seq
        follower.apply(resumed)
        assert follower.seq == hub.seq and follower.doc == hub.doc
        hub.close()


async def test_sse_keep_alive_when_quiet() -> None:
    hub = new_hub()
    server = replace(default_settings().server, sse_keepalive_s=0.05, sse_retry_ms=100, shutdown_grace_s=1.0,
                     ws_blocked_close_after_s=30.0, send_threads=2)
    async with serving([SseEdge(hub, Metrics(), server)]) as url:
        client = await RawClient.connect(url)
        await client.stream.send_all(b"GET /api/pnl/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        while b": keep-alive" not in client.buffer:
            assert await client._fill()
        assert b"retry: 100\n\n" in client.buffer and b"event: snapshot" in client.buffer
        hub.close()
        while not client.buffer.endswith(b"0\r\n\r\n"):  # the body's last chunk
            assert await client._fill()
