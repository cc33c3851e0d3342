"""Load generator for bench/fanout.py: N cheap streaming clients in one trio process.

    python bench/loadgen.py --transport ws|sse --host 127.0.0.1 --port P --clients N
                            [--connect-concurrency C] [--max-seconds T]

Clients are raw TCP streams (no WebSocket or HTTP library), so that 5,000 of
them fit in one process:

- ws: the HTTP/1.1 upgrade handshake is written by hand; server frames
  (unmasked) are parsed minimally: opcode + 7/16/64-bit length. Nothing is
  sent after the handshake except a masked close frame at the end.
- sse: ``GET /api/pnl/stream HTTP/1.1``; chunked transfer decoding; events
  split on blank lines; the ``data:`` line is the message.

Each message is JSON starting ``{"type":...,"epoch":...,"seq":N,...,"ts":MS``;
``seq`` and ``ts`` are read with one anchored regex (json.loads as a fallback).
For each delta received inside the measuring window the client records
``time.time() - ts`` (ms) and checks that ``seq`` increases per client.

Protocol with the parent on stdin/stdout (JSON lines out, words in):
    out {"event":"connected",...}   when every client connected or gave up
    in  start                       the measuring window opens
    in  stop                        it closes; out {"event":"result",...}; clients close; exit
Everything is bounded by --max-seconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import sys
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import trio

HEADER = re.compile(
    rb'^\{"type":"(snapshot|delta)","epoch":"[^"]*","seq":(\d+),(?:"prev":\d+,)?"ts":(\d+)'
)
RECEIVE_BYTES = 16384
LATENCY_CAP = 5_000_000  # samples kept at most (bounded memory)
CLOSE_FRAME_MASK = b"\x00\x00\x00\x00"


@dataclass
class Stats:
    """Counters shared by every client (one trio thread: no locks)."""

    measuring: bool = False
    connected: int = 0
    failed: int = 0
    gave_up: int = 0
    finished_connecting: int = 0
    disconnected: int = 0
    messages: int = 0
    deltas: int = 0
    snapshots: int = 0
    other: int = 0
    seq_violations: int = 0
    total_messages: int = 0
    max_seq: int = 0
    max_seq_ts: int = 0
    bytes_in: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)


class Client:
    """One subscriber's view: last seq seen."""

    __slots__ = ("last_seq", "stats")

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.last_seq = -1

    def message(self, text: bytes, received: float) -> None:
        stats = self.stats
        stats.total_messages += 1
        match = HEADER.match(text)
        if match is not None:
            kind, seq, ts = match.group(1), int(match.group(2)), int(match.group(3))
        else:
            try:
                body = json.loads(text)
                kind, seq, ts = body["type"].encode(), int(body["seq"]), int(body["ts"])
            except (ValueError, KeyError, TypeError, AttributeError):
                stats.other += 1
                return
        if seq <= self.last_seq and kind == b"delta":
            stats.seq_violations += 1
        self.last_seq = seq
        if seq > stats.max_seq:
            stats.max_seq = seq
            stats.max_seq_ts = ts
        if not stats.measuring:
            return
        stats.messages += 1
        if kind == b"delta":
            stats.deltas += 1
            if len(stats.latencies) < LATENCY_CAP:
                stats.latencies.append(received * 1000.0 - ts)
        else:
            stats.snapshots += 1


async def _connect(host: str, port: int, attempts: int = 5) -> trio.SocketStream:
    delay = 0.05
    for attempt in range(attempts):
        try:
            with trio.fail_after(10):
                return await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError):
            if attempt == attempts - 1:
                raise
            await trio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


async def _read_head(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """The response head (status line + headers) and whatever body bytes came with it."""
    buffer = b""
    with trio.fail_after(15):
        while b"\r\n\r\n" not in buffer:
            chunk = await stream.receive_some(RECEIVE_BYTES)
            if not chunk:
                raise ConnectionError("closed during handshake")
            buffer += chunk
            if len(buffer) > 65536:
                raise ConnectionError("response head too long")
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def _status(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0]


async def ws_open(stream: trio.SocketStream, host: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await stream.send_all(request.encode())
    head, rest = await _read_head(stream)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"upgrade refused: {_status(head)!r}")
    return rest


async def ws_receive(stream: trio.SocketStream, client: Client, buffer: bytes) -> None:
    """Parse server frames until the connection ends or a close frame arrives."""
    stats = client.stats
    data = bytearray(buffer)
    fragments = bytearray()
    received = time.time()
    while True:
        pos = 0
        size = len(data)
        while size - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:
                head += 4  # a masked server frame is a protocol error; skip the key anyway
            end = pos + head + length
            if end > size:
                break
            opcode = b0 & 0x0F
            payload = bytes(data[pos + head : end])
            pos = end
            if opcode in (0x0, 0x1, 0x2):
                if not b0 & 0x80:
                    fragments += payload
                    continue
                if fragments:
                    payload = bytes(fragments) + payload
                    fragments.clear()
                client.message(payload, received)
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                stats.errors[f"server_close_{code}"] += 1
                return
            # ping/pong: reply to nothing
        if pos:
            del data[:pos]
        chunk = await stream.receive_some(RECEIVE_BYTES)
        if not chunk:
            stats.errors["ws_eof"] += 1
            return
        received = time.time()
        stats.bytes_in += len(chunk)
        data += chunk


async def sse_open(stream: trio.SocketStream, host: str, port: int) -> tuple[bytes, bool]:
    request = (
        f"GET /api/pnl/stream HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    )
    await stream.send_all(request.encode())
    head, rest = await _read_head(stream)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"stream refused: {_status(head)!r}")
    chunked = b"transfer-encoding: chunked" in head.lower()
    return rest, chunked


def _sse_events(events: bytearray, client: Client, received: float) -> None:
    """Consume complete events (blank-line separated) from ``events``."""
    start = 0
    while (end := events.find(b"\n\n", start)) >= 0:
        block = bytes(events[start:end])
        start = end + 2
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                client.message(line[5:].lstrip(b" "), received)
                break
    if start:
        del events[:start]


async def sse_receive(
    stream: trio.SocketStream, client: Client, buffer: bytes, chunked: bool
) -> None:
    stats = client.stats
    raw = bytearray(buffer)
    events = bytearray()
    received = time.time()
    while True:
        if chunked:
            pos = 0
            while True:
                line_end = raw.find(b"\r\n", pos)
                if line_end < 0:
                    break
                size = int(bytes(raw[pos:line_end]).split(b";", 1)[0] or b"0", 16)
                if size == 0:
                    stats.errors["sse_end_of_body"] += 1
                    return
                if len(raw) < line_end + 2 + size + 2:
                    break
                events += raw[line_end + 2 : line_end + 2 + size]
                pos = line_end + 2 + size + 2
            if pos:
                del raw[:pos]
        else:
            events += raw
            raw.clear()
        _sse_events(events, client, received)
        chunk = await stream.receive_some(RECEIVE_BYTES)
        if not chunk:
            stats.errors["sse_eof"] += 1
            return
        received = time.time()
        stats.bytes_in += len(chunk)
        raw += chunk


@dataclass
class Run:
    transport: str
    host: str
    port: int
    clients: int
    stats: Stats = field(default_factory=Stats)
    connecting: trio.Semaphore = field(default_factory=lambda: trio.Semaphore(64))
    all_connected: trio.Event = field(default_factory=trio.Event)
    closing: trio.Event = field(default_factory=trio.Event)
    pending: set[trio.CancelScope] = field(default_factory=set)

    def give_up_connecting(self) -> None:
        """Stop every connect still under way (they would load the daemon during the window)."""
        for scope in list(self.pending):
            scope.cancel()

    def _connect_finished(self) -> None:
        self.stats.finished_connecting += 1
        if self.stats.finished_connecting >= self.clients:
            self.all_connected.set()

    async def _open(self) -> tuple[trio.SocketStream, bytes, bool]:
        """Connect and handshake, retrying a refused or cut attempt (bounded)."""
        for attempt in range(3):
            stream = await _connect(self.host, self.port)
            try:
                with trio.fail_after(30):
                    if self.transport == "ws":
                        return stream, await ws_open(stream, self.host, self.port), False
                    rest, chunked = await sse_open(stream, self.host, self.port)
                    return stream, rest, chunked
            except (OSError, ConnectionError, trio.BrokenResourceError, trio.TooSlowError) as exc:
                stream.socket.close()
                self.stats.errors[f"retry:{type(exc).__name__}"] += 1
                if attempt == 2:
                    raise
                await trio.sleep(0.1 * (attempt + 1))
            except BaseException:  # cancelled (given up): no socket left behind
                stream.socket.close()
                raise
        raise AssertionError("unreachable")

    async def client(self) -> None:
        stats = self.stats
        client = Client(stats)
        with trio.CancelScope() as connecting:
            self.pending.add(connecting)
            try:
                async with self.connecting:
                    stream, rest, chunked = await self._open()
            except (OSError, ConnectionError, trio.TooSlowError, trio.BrokenResourceError) as exc:
                stats.failed += 1
                stats.errors[f"connect:{type(exc).__name__}"] += 1
                self._connect_finished()
                return
            finally:
                self.pending.discard(connecting)
        if connecting.cancelled_caught:
            stats.gave_up += 1
            return
        stats.connected += 1
        self._connect_finished()
        try:
            async with stream:
                async with trio.open_nursery() as nursery:
                    async def watch_close() -> None:
                        await self.closing.wait()
                        nursery.cancel_scope.cancel()

                    async def receive() -> None:
                        if self.transport == "ws":
                            await ws_receive(stream, client, rest)
                        else:
                            await sse_receive(stream, client, rest, chunked)
                        if not self.closing.is_set():
                            stats.disconnected += 1
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(watch_close)
                    nursery.start_soon(receive)
                if self.transport == "ws" and self.closing.is_set():
                    with trio.move_on_after(2):
                        # a masked close frame, code 1000, zero mask
                        await stream.send_all(b"\x88\x82" + CLOSE_FRAME_MASK + b"\x03\xe8")
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if not self.closing.is_set():
                stats.disconnected += 1
                stats.errors[f"stream:{type(exc).__name__}"] += 1


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index], 2)


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def _commands(stdin: trio.lowlevel.FdStream) -> AsyncIterator[str]:
    """Yield words from stdin, one per line (bounded by the caller's deadline)."""
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = await stdin.receive_some(1024)
            if not chunk:
                return
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        yield line.decode().strip()


async def main_async(args: argparse.Namespace) -> None:
    run = Run(args.transport, args.host, args.port, args.clients)
    run.connecting = trio.Semaphore(args.connect_concurrency)
    stats = run.stats
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    with trio.move_on_after(args.max_seconds):
        async with trio.open_nursery() as nursery:
            connect_started = time.monotonic()
            for _ in range(args.clients):
                nursery.start_soon(run.client)
            if args.clients == 0:
                run.all_connected.set()
            timeline: list[int] = []  # clients connected at each whole second
            with trio.move_on_after(args.connect_timeout):
                while not run.all_connected.is_set() and len(timeline) < 600:
                    with trio.move_on_after(1.0):
                        await run.all_connected.wait()
                    timeline.append(stats.connected)
            run.give_up_connecting()
            _emit({"event": "connected", "connected": stats.connected, "failed": stats.failed,
                   "gave_up": len(run.pending) + stats.gave_up,
                   "connect_s": round(time.monotonic() - connect_started, 3),
                   "connected_by_second": timeline,
                   "errors": dict(stats.errors)})
            window_start = 0.0
            seq_start = ts_start = 0
            commands = _commands(stdin)
            async for word in commands:
                if word == "start":
                    stats.measuring = True
                    window_start = time.time()
                    seq_start, ts_start = stats.max_seq, stats.max_seq_ts
                elif word == "stop":
                    stats.measuring = False
                    window = time.time() - window_start if window_start else 0.0
                    ordered = sorted(stats.latencies)
                    _emit({
                        "event": "result",
                        "window_s": round(window, 3),
                        "connected": stats.connected,
                        "failed": stats.failed,
                        "still_open": stats.connected - stats.disconnected,
                        "disconnected": stats.disconnected,
                        "messages": stats.messages,
                        "deltas": stats.deltas,
                        "snapshots": stats.snapshots,
                        "unparsed": stats.other,
                        "seq_violations": stats.seq_violations,
                        "published_changes": stats.max_seq - seq_start,
                        # engine time between the newest change seen at start and at stop
                        "published_span_ms": stats.max_seq_ts - ts_start,
                        "latency_ms": {
                            "p50": _percentile(ordered, 0.50),
                            "p90": _percentile(ordered, 0.90),
                            "p99": _percentile(ordered, 0.99),
                            "max": round(ordered[-1], 2) if ordered else None,
                            "mean": round(sum(ordered) / len(ordered), 2) if ordered else None,
                            "samples": len(ordered),
                        },
                        "bytes_in": stats.bytes_in,
                        "errors": dict(stats.errors),
                    })
                    break
            run.closing.set()  # every client sends its close (ws) and ends
    await stdin.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="raw-TCP WebSocket/SSE clients for bench/fanout.py")
    parser.add_argument("--transport", choices=("ws", "sse"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--connect-concurrency", type=int, default=50,
                        help="handshakes in flight; keep it under the listen backlog (server.backlog)")
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("traffic only to loopback")
    trio.run(main_async, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
