"""Issue 11 items 2-3: one WebSocket client's burst of resumes against everyone else's latency.

    python bench/resume_burst.py [--changes 10000] [--burst 1100] [--rate 500] [--json-out FILE]

1. Starts the real daemon (``python -m northstard``, demo source at ``--rate``
   changes/s, gRPC on a free port so its copy of the ring fills too, every
   other setting the daemon's default) and waits until it has published
   ``--changes`` changes (a full default ring), noting its RSS before and after.
2. A watcher WebSocket client streams deltas and stamps each message's arrival.
3. An attacker WebSocket client sends ``--burst`` resume messages, each from a
   distinct old position (``seq`` = now-2, now-3, ...), in one write (~65 KB),
   then reads until the server closes it (or ``--window`` s).
4. Prints JSON: the watcher's longest gap between messages from 1 s before the
   burst to ``--window`` s after it, and from 0.5 s before the burst to 0.5 s
   after the attacker's last message (the burst's own effect, without the
   rest of the window's noise) (and, for comparison, its longest and median gap in
   the 3.5 s before the burst, with no burst), what the attacker got (deltas,
   snapshots, errors, close code), the time from the burst to the attacker's
   last message, the long-poll latency of merged catch-ups from old positions,
   and the daemon's RSS.

All traffic is on 127.0.0.1; every wait is bounded. Runs against whatever
``northstard`` is importable from the repository this script sits in.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import trio
from fanout import _start_daemon, _stop

MASK = b"\x00\x00\x00\x00"


def write_config(directory: Path, rate: float) -> Path:
    path = directory / "northstard.toml"
    path.write_text(f"""\
[server]
host = "127.0.0.1"
port = 0
shutdown_grace_s = 2.0

[storage]
path = {json.dumps(str(directory / "northstard.db"))}

[grpc]
port = 0

[log]
level = "warning"
format = "json"

[sources.demo]
interval_s = {1.0 / rate!r}
seed = 1
""")
    return path


def text_frame(payload: bytes) -> bytes:
    """A masked client text frame (zero mask: the payload goes as it is)."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x81, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
    return head + MASK + payload


class WsClient:
    """A bare WebSocket client: handshake, then whole server frames."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, url: str) -> WsClient:
        host, _, port = url.split("://", 1)[1].rpartition(":")
        client = cls(await trio.open_tcp_stream(host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        await client.stream.send_all(
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        while b"\r\n\r\n" not in client.buffer:
            client.buffer += await client.stream.receive_some(65536)
        head, _, rest = bytes(client.buffer).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        client.buffer = bytearray(rest)
        return client

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame; (-1, b"") at end of stream."""
        while True:
            if len(self.buffer) >= 2:
                length, start = self.buffer[1] & 0x7F, 2
                if length >= 126:
                    start = 4 if length == 126 else 10
                    length = int.from_bytes(self.buffer[2:start], "big")
                if len(self.buffer) >= start + length:
                    opcode = self.buffer[0] & 0x0F
                    payload = bytes(self.buffer[start:start + length])
                    del self.buffer[:start + length]
                    return opcode, payload
            data = await self.stream.receive_some(1 << 20)
            if not data:
                return -1, b""
            self.buffer += data


async def wait_for_changes(http: httpx.AsyncClient, count: int, limit_s: float) -> dict[str, Any]:
    with trio.fail_after(limit_s):
        while True:
            current = (await http.get("/api/pnl/current")).json()
            if current.get("seq", 0) >= count:
                return dict(current)
            await trio.sleep(0.5)


async def watch(client: WsClient, arrivals: list[float], done: trio.Event) -> None:
    while not done.is_set():
        opcode, _ = await client.frame()
        if opcode == -1:
            return
        if opcode == 0x1:
            arrivals.append(time.monotonic())


async def attack(client: WsClient, epoch: str, now_seq: int, burst: int,
                 window_s: float) -> dict[str, Any]:
    frames = b"".join(
        text_frame(json.dumps({"type": "resume", "epoch": epoch, "seq": max(0, now_seq - 2 - i)})
                   .encode())
        for i in range(burst)
    )
    kinds: dict[str, int] = {}
    close_code = None
    started = time.monotonic()
    last = started
    await client.stream.send_all(frames)
    with trio.move_on_after(window_s):
        while True:
            opcode, payload = await client.frame()
            if opcode in (-1, 0x8):
                close_code = int.from_bytes(payload[:2], "big") if opcode == 0x8 else None
                break
            if opcode == 0x1:
                last = time.monotonic()
                kind = json.loads(payload)["type"]
                kinds[kind] = kinds.get(kind, 0) + 1
    return {"bytes_sent": len(frames), "received": kinds, "close_code": close_code,
            "last_message_after_s": round(last - started, 3)}


async def long_poll_merges(http: httpx.AsyncClient, epoch: str, now_seq: int,
                           count: int) -> dict[str, Any]:
    """Latency of ``/api/pnl/changes?since=`` from distinct old positions (merged catch-ups)."""
    times, kinds = [], {}
    for i in range(count):
        since = f"{epoch}:{max(0, now_seq - 9000 + i * 400)}"
        started = time.monotonic()
        response = await http.get("/api/pnl/changes", params={"since": since})
        times.append(time.monotonic() - started)
        kind = response.json().get("type", response.json().get("error", "?"))
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"requests": count, "median_ms": round(statistics.median(times) * 1000, 2),
            "max_ms": round(max(times) * 1000, 2), "answers": kinds}


def gaps_ms(arrivals: list[float], start: float, end: float) -> list[float]:
    window = [t for t in arrivals if start <= t <= end]
    return [(b - a) * 1000 for a, b in itertools.pairwise(window)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="resume-burst-") as tmp:
        directory = Path(tmp)
        process, url = await _start_daemon(write_config(directory, args.rate), directory / "log")
        try:
            daemon = psutil.Process(process.pid)
            await trio.sleep(1.0)
            rss_start = daemon.memory_info().rss
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                current = await wait_for_changes(http, args.changes, args.changes / args.rate * 4 + 60)
                rss_full = daemon.memory_info().rss
                epoch = current["epoch"]
                watcher = await WsClient.connect(url)
                arrivals: list[float] = []
                done = trio.Event()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch, watcher, arrivals, done)
                    await trio.sleep(4.0)
                    attacker = await WsClient.connect(url)
                    _opcode, first = await attacker.frame()
                    now_seq = json.loads(first)["seq"]
                    burst_at = time.monotonic()
                    outcome = await attack(attacker, epoch, now_seq, args.burst, args.window)
                    await trio.sleep(max(0.0, burst_at + args.window - time.monotonic()))
                    done.set()
                    nursery.cancel_scope.cancel()
                now_seq = (await http.get("/api/pnl/current")).json()["seq"]
                polls = await long_poll_merges(http, epoch, now_seq, 15)
            during = gaps_ms(arrivals, burst_at - 1.0, burst_at + args.window)
            answered = burst_at + outcome["last_message_after_s"]
            near = gaps_ms(arrivals, burst_at - 0.5, answered + 0.5)
            before = gaps_ms(arrivals, burst_at - 3.5, burst_at - 0.05)
            return {
                "changes_before_burst": now_seq,
                "burst": args.burst,
                "watcher": {
                    "messages_in_window": len(during) + 1,
                    "longest_gap_ms": round(max(during), 1) if during else None,
                    "longest_gap_near_burst_ms": round(max(near), 1) if near else None,
                    "longest_gap_before_ms": round(max(before), 1) if before else None,
                    "median_gap_before_ms": round(statistics.median(before), 2) if before else None,
                },
                "attacker": outcome,
                "long_poll_merged_catch_up": polls,
                "daemon_rss_mb": {"start": round(rss_start / 2**20, 1),
                                  "full_ring": round(rss_full / 2**20, 1)},
            }
        finally:
            await _stop(process, 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10000, help="changes published first")
    parser.add_argument("--burst", type=int, default=1100, help="resume messages in the burst")
    parser.add_argument("--rate", type=float, default=500.0, help="demo changes per second")
    parser.add_argument("--window", type=float, default=30.0,
                        help="seconds from the burst during which the gaps are measured")
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = trio.run(run, args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
