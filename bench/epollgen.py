"""A leaner load generator for bench/fanout.py: the same clients on one epoll loop, no tasks.

    python bench/epollgen.py --transport ws|sse --host 127.0.0.1 --port P --clients N
                             [--connect-timeout T] [--max-seconds T]

Same command line, stdin/stdout protocol, wire handling and figures as
bench/loadgen.py (it reuses its ``Stats``, ``Client`` and percentiles), but
where loadgen.py wakes one trio task per client per message (~50 µs of its
own CPU per message on the development machine), this one reads every ready
socket from a single ``select.epoll`` loop (a few µs). With 10,000 clients
a broadcast is 10,000 messages arriving at once: loadgen.py needs about half
a second to read them, which then shows up as latency; this one does not.

Receipt time is the kernel's receive timestamp of the data (``SO_TIMESTAMPNS``
on every socket): when the bytes reached the client's socket, as a client
with a process of its own would read them, not when this one process got
round to that socket. (loadgen.py takes ``time.time()`` after its read.)

Clients connect one after another with blocking sockets (the handshake is a
loopback round trip), then turn non-blocking. Traffic only to loopback.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import select
import socket
import struct
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadgen import CLOSE_FRAME_MASK, Client, Stats, _percentile

RECEIVE_BYTES = 262144
SO_TIMESTAMPNS = 35  # Linux (asm-generic/socket.h); the socket module does not name it
TIMESTAMP_SPACE = socket.CMSG_SPACE(16)


class Conn:
    """One client's socket and the bytes of a message not yet complete."""

    __slots__ = ("chunked", "client", "pending", "raw", "sock")

    def __init__(self, sock: socket.socket, client: Client, chunked: bool) -> None:
        self.sock = sock
        self.client = client
        self.chunked = chunked
        self.pending = b""  # ws: a partial frame; sse: a partial event
        self.raw = b""  # sse: a partial chunk


def _request(transport: str, host: str, port: int) -> bytes:
    if transport == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        return (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    return (f"GET /api/pnl/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n").encode()


def open_client(transport: str, host: str, port: int, stats: Stats) -> Conn:
    sock = socket.create_connection((host, port), timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_request(transport, host, port))
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during handshake")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    expected = b"HTTP/1.1 101" if transport == "ws" else b"HTTP/1.1 200"
    if not head.startswith(expected):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    conn = Conn(sock, Client(stats), b"transfer-encoding: chunked" in head.lower())
    feed(conn, rest, transport, time.time())
    return conn


def feed_ws(conn: Conn, data: bytes, received: float) -> None:
    if conn.pending:
        data = conn.pending + data
    pos, size = 0, len(data)
    while size - pos >= 2:
        length, head = data[pos + 1] & 0x7F, 2
        if length == 126:
            if size - pos < 4:
                break
            length, head = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
        elif length == 127:
            if size - pos < 10:
                break
            length, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
        end = pos + head + length
        if end > size:
            break
        opcode = data[pos] & 0x0F
        if opcode in (0x1, 0x2):
            conn.client.message(data[pos + head:end], received)
        elif opcode == 0x8:
            conn.client.stats.errors["server_close"] += 1
        pos = end
    conn.pending = data[pos:]


def _dechunk(conn: Conn, data: bytes) -> bytes:
    raw, out, pos = conn.raw + data, [], 0
    while (line_end := raw.find(b"\r\n", pos)) >= 0:
        size = int(raw[pos:line_end].split(b";", 1)[0] or b"0", 16)
        if len(raw) < line_end + 2 + size + 2:
            break
        out.append(raw[line_end + 2:line_end + 2 + size])
        pos = line_end + 2 + size + 2
    conn.raw = raw[pos:]
    return b"".join(out)


def feed_sse(conn: Conn, data: bytes, received: float) -> None:
    events = conn.pending + (_dechunk(conn, data) if conn.chunked else data)
    start = 0
    while (end := events.find(b"\n\n", start)) >= 0:
        for line in events[start:end].split(b"\n"):
            if line.startswith(b"data:"):
                conn.client.message(line[5:].lstrip(b" "), received)
                break
        start = end + 2
    conn.pending = events[start:]


def feed(conn: Conn, data: bytes, transport: str, received: float) -> None:
    (feed_ws if transport == "ws" else feed_sse)(conn, data, received)


def connect_all(args: argparse.Namespace, stats: Stats) -> tuple[dict[int, Conn], list[int]]:
    conns: dict[int, Conn] = {}
    timeline: list[int] = []
    started = time.monotonic()
    for _ in range(args.clients):
        if time.monotonic() - started > args.connect_timeout:
            stats.gave_up = args.clients - stats.connected - stats.failed
            break
        try:
            conn = open_client(args.transport, args.host, args.port, stats)
        except (OSError, ConnectionError) as exc:
            stats.failed += 1
            stats.errors[f"connect:{type(exc).__name__}"] += 1
            continue
        conns[conn.sock.fileno()] = conn
        stats.connected += 1
        while len(timeline) < time.monotonic() - started:
            timeline.append(stats.connected)
    return conns, timeline


def result(stats: Stats, window_start: float, seq_start: int, ts_start: int) -> dict[str, Any]:
    ordered = sorted(stats.latencies)
    return {
        "event": "result", "window_s": round(time.time() - window_start, 3),
        "connected": stats.connected, "failed": stats.failed,
        "still_open": stats.connected - stats.disconnected, "disconnected": stats.disconnected,
        "messages": stats.messages, "deltas": stats.deltas, "snapshots": stats.snapshots,
        "unparsed": stats.other, "seq_violations": stats.seq_violations,
        "published_changes": stats.max_seq - seq_start,
        "published_span_ms": stats.max_seq_ts - ts_start,
        "latency_ms": {
            "p50": _percentile(ordered, 0.50), "p90": _percentile(ordered, 0.90),
            "p99": _percentile(ordered, 0.99),
            "max": round(ordered[-1], 2) if ordered else None,
            "mean": round(sum(ordered) / len(ordered), 2) if ordered else None,
            "samples": len(ordered),
        },
        "bytes_in": stats.bytes_in, "errors": dict(stats.errors),
    }


def arrival(ancillary: list[tuple[int, int, bytes]], fallback: float) -> float:
    """The kernel's receive time of the data just read (its last segment)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    return fallback


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def serve(args: argparse.Namespace, conns: dict[int, Conn], stats: Stats) -> None:
    """Read every socket until ``stop`` arrives on stdin (or --max-seconds)."""
    poller = select.epoll()
    stdin = sys.stdin.fileno()
    poller.register(stdin, select.EPOLLIN)
    for fd in conns:
        poller.register(fd, select.EPOLLIN)
    deadline = time.monotonic() + args.max_seconds
    window = (0.0, 0, 0)
    # one receive buffer for every read: recvmsg(256 KiB) would allocate (mmap) 256 KiB per call
    buffer = bytearray(RECEIVE_BYTES)
    view = memoryview(buffer)
    while time.monotonic() < deadline:
        ready = poller.poll(1.0)
        received = time.time()
        for fd, _ in ready:
            if fd == stdin:
                word = os.read(stdin, 1024).decode().strip()
                if "start" in word:
                    stats.measuring = True
                    window = (time.time(), stats.max_seq, stats.max_seq_ts)
                if "stop" in word or not word:
                    stats.measuring = False
                    emit(result(stats, *window))
                    return
                continue
            conn = conns[fd]
            try:
                size, ancillary, _, _ = conn.sock.recvmsg_into([buffer], TIMESTAMP_SPACE)
            except BlockingIOError:
                continue
            except OSError:
                size, ancillary = 0, []
            data = view[:size].tobytes()
            if not data:
                stats.disconnected += 1
                poller.unregister(fd)
                continue
            stats.bytes_in += len(data)
            feed(conn, data, args.transport, arrival(ancillary, received))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="epoll WebSocket/SSE clients for bench/fanout.py")
    parser.add_argument("--transport", choices=("ws", "sse"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("traffic only to loopback")
    stats = Stats()
    started = time.monotonic()
    conns, timeline = connect_all(args, stats)
    emit({"event": "connected", "connected": stats.connected, "failed": stats.failed,
          "gave_up": stats.gave_up, "connect_s": round(time.monotonic() - started, 3),
          "connected_by_second": timeline, "errors": dict(stats.errors)})
    serve(args, conns, stats)
    for conn in conns.values():
        if args.transport == "ws":
            with contextlib.suppress(OSError):
                conn.sock.send(b"\x88\x82" + CLOSE_FRAME_MASK + b"\x03\xe8")
        conn.sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
