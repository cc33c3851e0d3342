"""Issue 12's attacks on the one-port edge, each against the real daemon on loopback sockets.

Request framing (a body that looks like a stream request, request smuggling
shapes), HTTP/2 in clear text, redirects built from ``Host``, text that is not
UTF-8 inside a fragmented WebSocket message. The tests speak raw bytes and
check what comes back on the wire, so they hold whatever serves the port.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hostile import http_from, open_raw, refused, ws
from test_fastws import RawClient

from northstard.core.http1 import request_size
from northstard.core.wsframes import CloseCode, FrameReader, Message, Opcode, ProtocolError, encode_frame
from northstard.edges.grpc.client import PnlClient, open_channel
from northstard.errors import RequestError
from northstard.policy.auth import digest
from northstard.policy.limits import Concurrency, connection_cap

from conftest import write_config
from grpc_helpers import on_asyncio
from proc import read_printed

GUARD_S = 30  # a hang guard, not a speed check
AUTH = {"tokens": [{"name": "reader", "sha256": digest("t" * 32)}]}
HEALTH = "GET /api/health HTTP/1.1\nHost: x\n\n"


async def ended(client: RawClient) -> bytes:
    """Everything the server sends until it closes the connection."""
    with trio.fail_after(GUARD_S), contextlib.suppress(trio.BrokenResourceError):  # reset: closed
        while await client._fill():
            pass
    return bytes(client.buffer)


# -- framing: where a request's body ends ---------------------------------------------------


@pytest.mark.parametrize("after_a_request", [False, True], ids=["first", "kept-alive"])
async def test_a_body_that_starts_like_a_stream_request_is_read_as_a_body(
    start_daemon: Any, after_a_request: bool
) -> None:
    daemon = await start_daemon(auth=AUTH)
    client = await open_raw(daemon.url)
    if after_a_request:
        line, _, _ = await client.request(HEALTH)
        assert line.startswith("HTTP/1.1 200")
    body = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"
    await client.stream.send_all(
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body))
    await trio.testing.wait_all_tasks_blocked()  # the body comes in a later segment
    await client.stream.send_all(body)
    with trio.fail_after(GUARD_S):
        line, _, page = await client.request("")
        assert line.startswith("HTTP/1.1 401"), line  # the login form, read: no token in it
        assert b"<form" in page
        line, _, _ = await client.request(HEALTH)  # the connection is still kept alive
    assert line.startswith("HTTP/1.1 200"), line


SMUGGLING = {
    "cl-and-te": ("Content-Length: 5\nTransfer-Encoding: chunked\n", "0\r\n\r\n", 400),
    "te-and-cl": ("Transfer-Encoding: chunked\nContent-Length: 5\n", "0\r\n\r\n", 400),
    "te-chunked": ("Transfer-Encoding: chunked\n", "0\r\n\r\n", 411),
    "te-other": ("Transfer-Encoding: gzip, chunked\n", "0\r\n\r\n", 411),
    "two-cl": ("Content-Length: 2\nContent-Length: 7\n", "ab", 400),
    "cl-not-digits": ("Content-Length: +2\n", "ab", 400),
}


@pytest.mark.parametrize("after_a_request", [False, True], ids=["first", "kept-alive"])
@pytest.mark.parametrize("shape", sorted(SMUGGLING))
async def test_request_smuggling_shapes_are_refused_and_the_connection_closed(
    start_daemon: Any, shape: str, after_a_request: bool
) -> None:
    daemon = await start_daemon()
    headers, body, status = SMUGGLING[shape]
    client = await open_raw(daemon.url, source="127.0.0.2")
    if after_a_request:
        line, _, _ = await client.request(HEALTH)
        assert line.startswith("HTTP/1.1 200")
    head = f"POST /login HTTP/1.1\nHost: x\n{headers}\n".replace("\n", "\r\n")
    await client.stream.send_all((head + body + HEALTH.replace("\n", "\r\n")).encode())
    answer = await ended(client)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
    assert answer.count(b"HTTP/1.1 ") == 1  # the pipelined GET is not answered: closed
    assert b"connection: close" in answer.lower()
    assert await refused(daemon.url, "length_required" if status == 411 else "bad_request") >= 1


def test_request_size_is_the_head_and_its_content_length() -> None:
    head = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n"
    assert request_size(head + b"GET /ws HTTP/1.1\r\n") == len(head) + 12
    assert request_size(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 27
    assert request_size(b"GET / HTTP/1.1\r\nHost:") == 0  # the head is not whole yet
    assert request_size(b"GET / HT") == 0
    for bad in (b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",  # malformed line
                b"POST / HTTP/1.1\r\n transfer-encoding: chunked\r\n\r\n",  # folded
                b"X" * 9000):
        with pytest.raises(RequestError):
            request_size(bad)


# -- HTTP/2 in clear text, redirects -----------------------------------------------------------

H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


async def test_h2c_prior_knowledge_is_refused_with_505(start_daemon: Any) -> None:
    daemon = await start_daemon()
    client = await open_raw(daemon.url)
    await client.stream.send_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + H2_SETTINGS)
    answer = await ended(client)
    assert answer.startswith(b"HTTP/1.1 505 "), answer[:80]
    assert b"HTTP/2 is not served" in answer


@pytest.mark.parametrize("after_a_request", [False, True], ids=["first", "kept-alive"])
async def test_an_h2c_upgrade_is_refused_not_switched(start_daemon: Any, after_a_request: bool) -> None:
    daemon = await start_daemon()
    client = await open_raw(daemon.url)
    if after_a_request:
        line, _, _ = await client.request(HEALTH)
        assert line.startswith("HTTP/1.1 200")
    await client.stream.send_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-"
                                 b"Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAA\r\n\r\n")
    answer = await ended(client)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    assert b"101" not in answer.split(b"\r\n")[0] and b"no h2c upgrade" in answer


@pytest.mark.parametrize("path", ["/static//x", "/static//theme.css", "//api/health",
                                  "/api//health", "/api/health/", "/static"])
async def test_no_redirect_is_built_from_the_host_header(start_daemon: Any, path: str) -> None:
    daemon = await start_daemon()
    client = await open_raw(daemon.url)
    line, headers, _ = await client.request(f"GET {path} HTTP/1.1\nHost: evil.example\n\n")
    assert "location" not in headers, headers
    assert line.startswith(("HTTP/1.1 404", "HTTP/1.1 200")), line


# -- WebSocket: invalid UTF-8 refused as it arrives ---------------------------------------------

KEY = os.urandom(4)
INVALID = "κόσμε".encode() + b"\xed\xa0\x80" + b"edited"  # a UTF-16 surrogate: never valid UTF-8


async def close_code(client: RawClient) -> int:
    """Read server frames (the snapshot first) up to the close frame; its code."""
    with trio.fail_after(GUARD_S):
        while True:
            opcode, payload = await client.frame()
            if opcode == Opcode.CLOSE:
                return int.from_bytes(payload[:2], "big")


@pytest.mark.parametrize("case", ["second-fragment", "first-fragment", "chopped-frame"])
async def test_invalid_utf8_in_a_fragmented_message_is_refused_before_its_last_fragment(
    start_daemon: Any, case: str
) -> None:
    daemon = await start_daemon()
    client = await open_raw(daemon.url)
    line, _, _ = await client.upgrade()
    assert line.startswith("HTTP/1.1 101")
    if case == "second-fragment":  # Autobahn 6.4.1: the last fragment never comes
        await client.send(Opcode.TEXT, "κόσμε".encode(), fin=False)
        await client.send(Opcode.CONTINUATION, INVALID, fin=False)
    elif case == "first-fragment":
        await client.send(Opcode.TEXT, INVALID, fin=False)
    else:  # Autobahn 6.4.3: one frame, only the part up to the invalid bytes is sent
        frame = encode_frame(Opcode.TEXT, INVALID + b"x" * 1000, mask_key=KEY)
        header = 8  # two bytes, a 16-bit length, the masking key
        await client.stream.send_all(frame[:header + INVALID.index(b"edited")])
    assert await close_code(client) == CloseCode.INVALID_DATA


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return encode_frame(opcode, payload, fin=fin, mask_key=KEY)


def test_the_frame_reader_checks_text_as_it_arrives() -> None:
    reader = FrameReader(4096)
    assert reader.feed(client_frame(Opcode.TEXT, "κό".encode(), fin=False)) == []
    with pytest.raises(ProtocolError) as raised:
        reader.feed(client_frame(Opcode.CONTINUATION, b"\xed\xa0\x80", fin=False))
    assert raised.value.code == CloseCode.INVALID_DATA
    chopped = client_frame(Opcode.TEXT, b"ab\xff" + b"c" * 500)
    with pytest.raises(ProtocolError):
        FrameReader(4096).feed(chopped[:12])  # the rest of the frame never needed


def test_a_character_split_across_fragments_and_reads_is_accepted() -> None:
    text = "κόσμε €𝄞" * 50
    data = text.encode()
    frames = (client_frame(Opcode.TEXT, data[:7], fin=False)
              + client_frame(Opcode.PING, b"p")
              + client_frame(Opcode.CONTINUATION, data[7:301], fin=False)
              + client_frame(Opcode.CONTINUATION, data[301:]))
    reader, events = FrameReader(4096), []
    for start in range(0, len(frames), 3):  # three bytes a read: every split point is crossed
        events += reader.feed(frames[start:start + 3])
    assert [e for e in events if isinstance(e, Message)] == [Message(text)]
    assert len(events) == 2  # and the ping between the fragments
    with pytest.raises(ProtocolError) as raised:  # a character cut at the end of the message
        FrameReader(4096).feed(client_frame(Opcode.TEXT, "€".encode()[:2]))
    assert raised.value.code == CloseCode.INVALID_DATA


# -- an idle-connection flood with a low open-files limit ---------------------------------------

DAEMON_FILES = (512, 1024)  # the daemon lifts its soft limit to the hard one: 1024
FLOOD = 3000
PER_CLIENT = 100


def test_the_connection_cap_stays_below_the_open_files_limit() -> None:
    assert connection_cap(0, 1024, 256) == 768
    assert connection_cap(500, 1024, 256) == 500
    assert connection_cap(5000, 1024, 256) == 768  # a configured cap never reaches the limit
    assert connection_cap(0, 300, 256) == 150  # a tiny limit: half of it
    assert connection_cap(0, -1, 256) == 0  # unlimited descriptors: no cap unless configured
    held = Concurrency(total=1, per_key=1)
    assert held.acquire("a") is None and held.acquire("b") == "total"
    assert held.acquire("b", over_total=True) is None  # room made by closing another
    assert held.acquire("b", over_total=True) == "client"  # the address's cap still holds


def low_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, DAEMON_FILES)


@contextlib.asynccontextmanager
async def daemon_with_few_files(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    config = write_config(tmp_path, {"demo": {"interval_s": 0.05, "seed": 3}},
                          limits={"max_connections_per_client": PER_CLIENT, "idle_timeout_s": 120.0,
                                  "header_timeout_s": 120.0})
    log = tmp_path / "daemon.log"
    with log.open("ab") as errors:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "northstard", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=errors, preexec_fn=low_open_files)
    try:
        yield await read_printed(process, log)
    finally:
        process.kill()
        await process.wait()


async def flood(url: str, sources: list[str], count: int) -> list[trio.socket.SocketType]:
    """``count`` idle connections, spread over ``sources``; every socket stays open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = int(url.rsplit(":", 1)[1])
    sockets = []
    for index in range(count):
        sock = trio.socket.socket()
        await sock.bind((sources[index % len(sources)], 0))
        await sock.connect(("127.0.0.1", port))
        sockets.append(sock)
    return sockets


async def answer_of(sock: trio.socket.SocketType) -> bytes:
    data = b""
    with trio.fail_after(GUARD_S), contextlib.suppress(ConnectionResetError):
        while chunk := await sock.recv(4096):
            data += chunk
    return data


async def grpc_seq(address: str) -> int:
    async def call() -> int:
        async with open_channel(address) as channel:
            return int((await PnlClient(channel).current()).seq)

    return await on_asyncio(call)


async def follow(client: RawClient, frames: trio.MemorySendChannel[int]) -> None:
    with contextlib.suppress(trio.BrokenResourceError, AssertionError):
        while True:
            opcode, _ = await client.frame()
            await frames.send(opcode)


async def still_streaming(frames: trio.MemoryReceiveChannel[int], count: int = 3) -> None:
    """``count`` frames more than those already received."""
    with contextlib.suppress(trio.WouldBlock):
        while True:
            frames.receive_nowait()
    with trio.fail_after(GUARD_S):
        for _ in range(count):
            assert await frames.receive() == Opcode.TEXT


@pytest.mark.slow
@pytest.mark.parametrize("addresses", [1, 30], ids=["one-address", "many-addresses"])
async def test_an_idle_connection_flood_leaves_health_streams_and_grpc_served(
    tmp_path: Path, addresses: int
) -> None:
    async with daemon_with_few_files(tmp_path) as printed, trio.open_nursery() as nursery:
        url, grpc_address = printed["northstard dashboard"], printed["northstard grpc"]
        stream, line, _ = await ws(url, source="127.0.1.1")
        assert line.startswith("HTTP/1.1 101")
        send, frames = trio.open_memory_channel[int](math.inf)
        nursery.start_soon(follow, stream, send)
        await still_streaming(frames)
        sources = [f"127.0.2.{n}" for n in range(1, addresses + 1)]
        with trio.fail_after(120):  # a hang guard: without caps the daemon stops accepting
            idle = await flood(url, sources, FLOOD)
        await still_streaming(frames)  # the stream opened before the flood goes on
        assert await grpc_seq(grpc_address) > 0
        if addresses == 1:  # the address's cap: a 429; any other address is served
            assert {(await answer_of(sock))[:12] for sock in idle[-10:]} == {b"HTTP/1.1 429"}
            assert await health_from("127.0.1.2", url) == 200
            assert await refused(url, "connections_client") >= FLOOD - PER_CLIENT - 10
        else:  # the total cap, below the open-files limit: the longest idle make room
            assert await health_from("127.0.1.2", url) == 200
            assert {await answer_of(sock) for sock in idle[:10]} == {b""}  # closed, unanswered
            assert await refused(url, "connections_evicted") >= FLOOD - connection_cap(0, 1024, 256)
        for sock in idle:
            sock.close()
        nursery.cancel_scope.cancel()


async def health_from(source: str, url: str) -> int:
    async with http_from(source, timeout=GUARD_S) as http:
        return (await http.get(f"{url}/api/health")).status_code


async def test_a_stream_request_pipelined_after_a_rest_request_goes_to_its_edge(start_daemon: Any) -> None:
    daemon = await start_daemon()
    client = await open_raw(daemon.url)
    await client.stream.send_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET /api/pnl/stream HTTP/1.1\r\nHost: x\r\n\r\n")
    with trio.fail_after(GUARD_S):
        line, _, _ = await client.request("")
        assert line.startswith("HTTP/1.1 200")
        line, headers, _ = await client.request("")
    assert line.startswith("HTTP/1.1 200") and headers["content-type"].startswith("text/event-stream")
