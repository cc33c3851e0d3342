"""Helpers of the limits and hostile-client tests: raw sockets from any loopback address."""

from __future__ import annotations

import re
import socket

import httpx
import trio
from test_fastws import KEY, RawClient

WS_HEAD = ("GET {path} HTTP/1.1\nHost: 127.0.0.1\nUpgrade: websocket\nConnection: Upgrade\n"
           f"Sec-WebSocket-Key: {KEY}\nSec-WebSocket-Version: 13\n{{extra}}\n")
SSE_HEAD = "GET /api/pnl/stream HTTP/1.1\nHost: 127.0.0.1\n{extra}\n"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


async def open_raw(url: str, *, source: str = "127.0.0.1", receive_buffer: int = 0,
                   send_buffer: int = 0) -> RawClient:
    """A raw client connected from ``source`` (any of 127.0.0.0/8 is a distinct client)."""
    sock = trio.socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port_of(url)))
    return RawClient(trio.SocketStream(sock))


async def ws(url: str, source: str = "127.0.0.1", extra: str = "") -> tuple[RawClient, str, bytes]:
    """Open ``/ws`` from ``source``: the client, the status line and the body of a refusal."""
    client = await open_raw(url, source=source)
    line, _headers, body = await client.request(WS_HEAD.format(path="/ws", extra=extra))
    return client, line, body


async def sse(url: str, source: str = "127.0.0.1", extra: str = "") -> tuple[RawClient, str, bytes]:
    """Open the SSE stream; for a 200 the body read so far stays in ``client.buffer``."""
    client = await open_raw(url, source=source)
    await client.stream.send_all(SSE_HEAD.format(extra=extra).replace("\n", "\r\n").encode())
    while b"\r\n\r\n" not in client.buffer:
        assert await client._fill(), "closed before the response head"
    head, _, rest = bytes(client.buffer).partition(b"\r\n\r\n")
    line = head.decode().split("\r\n")[0]
    if not line.startswith("HTTP/1.1 200"):
        length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
        while len(rest) < length:
            assert await client._fill()
            rest = bytes(client.buffer).partition(b"\r\n\r\n")[2]
    client.buffer = bytearray(rest)
    return client, line, rest


def http_from(source: str, timeout: float = 10) -> httpx.AsyncClient:
    """An httpx client whose connections come from ``source``."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=source), timeout=timeout)


async def refused(url: str, reason: str, source: str = "127.0.0.9") -> float:
    """``northstard_refused_total{reason=...}`` from /metrics (asked from an address of its own)."""
    async with http_from(source) as http:
        text = (await http.get(f"{url}/metrics")).text
    match = re.search(rf'^northstard_refused_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0
