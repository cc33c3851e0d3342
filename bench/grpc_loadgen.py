"""Load generator for bench/fanout_grpc.py: N ``Subscribe`` streams over C channels, one process.

    python bench/grpc_loadgen.py --target HOST:PORT --streams N [--channels C] [--max-seconds T]

Real grpc.aio clients (asyncio). Channels get a local subchannel pool each,
so C channels are C TCP connections; streams are spread round-robin. Each
event is parsed (``PnlEvent.FromString``); for each delta inside the window
the client records ``time.time() - ts`` (ms) and checks that ``seq``
increases per stream.

Protocol with the parent (JSON lines out, words in), as bench/loadgen.py:
    out {"event":"connected",...}   when every stream had its first event, or the timeout
    in  start                       the measuring window opens
    in  stop                        it closes; out {"event":"result",...}; streams end; exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from northstard._proto.northstar.v1 import pnl_pb2 as pb

SUBSCRIBE = "/northstar.v1.PnlStream/Subscribe"
LATENCY_CAP = 5_000_000


@dataclass
class Stats:
    measuring: bool = False
    connected: int = 0
    disconnected: int = 0
    messages: int = 0
    deltas: int = 0
    snapshots: int = 0
    seq_violations: int = 0
    max_seq: int = 0
    max_seq_ts: int = 0
    bytes_in: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)


async def stream(subscribe: Any, stats: Stats, all_in: asyncio.Event, total: int) -> None:
    last = -1
    call = subscribe(pb.SubscribeRequest())
    try:
        async for raw in call:
            received = time.time()
            event = pb.PnlEvent.FromString(raw)
            if last < 0:
                stats.connected += 1
                if stats.connected == total:
                    all_in.set()
            ts_ms = event.ts.seconds * 1000 + event.ts.nanos // 1_000_000
            if event.seq > stats.max_seq:
                stats.max_seq, stats.max_seq_ts = event.seq, ts_ms
            if stats.measuring:
                stats.messages += 1
                stats.bytes_in += len(raw)
                if event.HasField("delta"):
                    stats.deltas += 1
                    if event.seq <= last:
                        stats.seq_violations += 1
                    if len(stats.latencies) < LATENCY_CAP:
                        stats.latencies.append(received * 1000 - ts_ms)
                else:
                    stats.snapshots += 1
            last = event.seq
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:
            stats.disconnected += 1
            stats.errors[exc.code().name] += 1
    finally:
        call.cancel()


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 2)


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _result(stats: Stats, window: float, seq_start: int, ts_start: int) -> dict[str, Any]:
    ordered = sorted(stats.latencies)
    return {
        "event": "result", "window_s": round(window, 3), "connected": stats.connected,
        "still_open": stats.connected - stats.disconnected, "disconnected": stats.disconnected,
        "messages": stats.messages, "deltas": stats.deltas, "snapshots": stats.snapshots,
        "seq_violations": stats.seq_violations, "published_changes": stats.max_seq - seq_start,
        "published_span_ms": stats.max_seq_ts - ts_start,
        "latency_ms": {"p50": _percentile(ordered, 0.50), "p90": _percentile(ordered, 0.90),
                       "p99": _percentile(ordered, 0.99),
                       "max": round(ordered[-1], 2) if ordered else None,
                       "mean": round(sum(ordered) / len(ordered), 2) if ordered else None,
                       "samples": len(ordered)},
        "bytes_in": stats.bytes_in, "errors": dict(stats.errors),
    }


async def main_async(args: argparse.Namespace) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    channels = [grpc.aio.insecure_channel(args.target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(args.channels)]
    subscribes = [c.unary_stream(SUBSCRIBE, request_serializer=pb.SubscribeRequest.SerializeToString)
                  for c in channels]
    all_in = asyncio.Event()
    started = time.monotonic()
    tasks = [asyncio.create_task(stream(subscribes[i % len(subscribes)], stats, all_in, args.streams))
             for i in range(args.streams)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_in.wait(), args.connect_timeout)
    _emit({"event": "connected", "connected": stats.connected, "failed": 0, "gave_up": 0,
           "connect_s": round(time.monotonic() - started, 3), "connected_by_second": [],
           "channels": args.channels, "errors": dict(stats.errors)})
    window_start, seq_start, ts_start = 0.0, 0, 0
    while line := await reader.readline():
        word = line.decode().strip()
        if word == "start":
            stats.measuring = True
            window_start, seq_start, ts_start = time.time(), stats.max_seq, stats.max_seq_ts
        elif word == "stop":
            stats.measuring = False
            _emit(_result(stats, time.time() - window_start, seq_start, ts_start))
            break
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="grpc.aio Subscribe streams for bench/fanout_grpc.py")
    parser.add_argument("--target", required=True, help="HOST:PORT of the daemon's gRPC edge")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)

    async def bounded() -> None:
        await asyncio.wait_for(main_async(args), args.max_seconds)

    asyncio.run(bounded())
    return 0


if __name__ == "__main__":
    sys.exit(main())
