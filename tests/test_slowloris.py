"""Slowloris: trickled request heads, idle and half-sent keep-alive requests, SSE readers that never read.

Each kind of client is timed out and closed; while they hang on, a normal
client is served (real daemon, small ``[limits]`` timeouts).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio
import trio.testing
from hostile import open_raw, refused
from test_fastws import new_hub as hub_with_one_change
from test_fastws import publish, serving
from trio_websocket import open_websocket_url

from northstard.config import default_settings
from northstard.edges.stream.fastsse import SseEdge
from northstard.status.metrics import Metrics

from clients import Follower, ws_url
from conftest import write_config
from proc import DaemonProcess

HEADER_TIMEOUT_S = 0.5
IDLE_TIMEOUT_S = 1.0
TRICKLERS = 200
LIMITS = {"header_timeout_s": HEADER_TIMEOUT_S, "idle_timeout_s": IDLE_TIMEOUT_S}


async def trickle(url: str, start: bytes, outcome: dict[str, Any],
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Send ``start``, then one header byte every 0.1 s, never ending the head, until closed."""
    client = await open_raw(url)
    await client.stream.send_all(start)
    began = trio.current_time()
    task_status.started()
    async with trio.open_nursery() as nursery:

        async def drip() -> None:
            for byte in b"X-Slow: " + b"a" * 10_000:
                await trio.sleep(0.1)  # the client's own pace, not a wait for the server
                try:
                    await client.stream.send_all(bytes([byte]))
                except trio.BrokenResourceError:
                    return

        nursery.start_soon(drip)
        with contextlib.suppress(trio.BrokenResourceError):  # reset: a byte came as it closed
            await client.eof()
        outcome["seconds"] = trio.current_time() - began
        outcome["answer"] = bytes(client.buffer)
        nursery.cancel_scope.cancel()


async def test_trickled_heads_time_out_and_do_not_hold_up_a_normal_client(start_daemon: Any) -> None:
    daemon = await start_daemon(limits=LIMITS)
    outcomes: list[dict[str, Any]] = [{} for _ in range(TRICKLERS)]
    starts = [b"GET /api/health HTTP/1.1\r\nHost: x\r\n", b"GET /ws HTTP/1.1\r\nHost: x\r\n",
              b"GET /api/pnl/str", b"GET /"]
    async with trio.open_nursery() as nursery:
        for index, outcome in enumerate(outcomes):
            await nursery.start(trickle, daemon.url, starts[index % len(starts)], outcome)
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{daemon.url}/api/health")).status_code == 200
        async with open_websocket_url(ws_url(daemon.url)) as ws:
            assert json.loads(await ws.get_message())["type"] == "snapshot"
    for outcome in outcomes:
        assert outcome["seconds"] >= HEADER_TIMEOUT_S
        answer = outcome["answer"]
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]  # b"": reset
    assert sum(o["answer"].startswith(b"HTTP/1.1 408") for o in outcomes) > TRICKLERS // 2
    assert await refused(daemon.url, "header_timeout") == TRICKLERS


async def test_an_idle_connection_is_closed_after_the_idle_timeout(start_daemon: Any) -> None:
    daemon = await start_daemon(limits=LIMITS)
    client = await open_raw(daemon.url)
    began = trio.current_time()
    assert await client.eof() and client.buffer == b""  # nothing was asked: nothing is answered
    assert trio.current_time() - began >= IDLE_TIMEOUT_S


@pytest.mark.parametrize(("next_start", "answer", "limit"), [
    (b"", b"", IDLE_TIMEOUT_S),  # idle after a response: the keep-alive timer
    (b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-", b"HTTP/1.1 408", HEADER_TIMEOUT_S),  # every head:
    (b"GET /ws HTTP/1.1\r\nHost: x\r\nX-", b"HTTP/1.1 408", HEADER_TIMEOUT_S),  # the front's timer
], ids=["idle", "half-sent-rest", "half-sent-stream"])
async def test_a_keep_alive_connection_is_closed_when_idle_or_half_sent(
    start_daemon: Any, next_start: bytes, answer: bytes, limit: float
) -> None:
    # longpoll_max_s far away: only the keep-alive or head timer can close the connection
    daemon = await start_daemon(limits=LIMITS, server={"longpoll_max_s": 3600.0})
    client = await open_raw(daemon.url)
    line, _, _ = await client.request("GET /api/health HTTP/1.1\nHost: x\n\n")
    assert line.startswith("HTTP/1.1 200")
    await client.stream.send_all(next_start)
    began = trio.current_time()
    with trio.fail_after(60):  # a hang guard, not a speed check
        assert await client.eof()
    assert bytes(client.buffer).startswith(answer)
    assert trio.current_time() - began >= limit


async def test_sse_readers_that_never_read_are_closed_after_the_blocked_limit(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.05  # virtual time moves only when every task waits
    hub = hub_with_one_change()
    server = replace(default_settings().server, sse_keepalive_s=3600.0, sse_retry_ms=100,
                     shutdown_grace_s=1.0, ws_blocked_close_after_s=5.0, send_threads=1)
    edge = SseEdge(hub, Metrics(), server)
    async with serving([edge]) as url:
        stuck = [await open_raw(url, receive_buffer=4096) for _ in range(20)]
        for client in stuck:
            await client.stream.send_all(b"GET /api/pnl/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = Follower()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_sse, await open_raw(url), reader)
            peers = edge.chunked.peers
            for _ in range(5000):  # large changes until every stuck socket is full
                if len(peers) == len(stuck) + 1 and sum(p.draining for p in peers) == len(stuck):
                    break
                publish(hub, pad=500)
                await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(7)  # virtual: past the blocked limit and the close grace
            assert len(peers) == 1  # only the reader is left
            for client in stuck:
                assert await client.eof()
            publish(hub)
            await trio.testing.wait_all_tasks_blocked()
            assert reader.seq == hub.seq
            assert reader.doc == hub.doc
            hub.close()


async def read_sse(client: Any, follower: Follower) -> None:
    """Follow an SSE stream on a raw client (chunked body) until it ends."""
    await client.stream.send_all(b"GET /api/pnl/stream HTTP/1.1\r\nHost: x\r\n\r\n")
    data = bytearray()
    while await client._fill():
        data += client.buffer
        client.buffer.clear()
        while (end := data.find(b"\n\n")) >= 0:
            event, data = bytes(data[:end]), data[end + 2:]
            for line in event.split(b"\n"):
                if line.startswith(b"data: "):
                    follower.apply(json.loads(line[6:]))



STUCK_SSE = 100


async def never_reading_sse(url: str, task_status: trio.TaskStatus[None]) -> None:
    client = await open_raw(url, receive_buffer=4096)
    await client.stream.send_all(b"GET /api/pnl/stream HTTP/1.1\r\nHost: x\r\n\r\n")
    task_status.started()
    await trio.sleep_forever()


async def sse_clients(url: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{url}/metrics")).text
    match = re.search(r'^northstard_clients{transport="sse"} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.slow
async def test_sse_readers_that_never_read_are_closed_and_memory_stays_bounded(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"interval_s": 0.004, "seed": 5, "markets": 30}},
                          server={"ws_blocked_close_after_s": 1.0}, hub={"ring_size": 200})
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    url = await daemon.start()
    process = psutil.Process(daemon.pid)
    try:
        with trio.fail_after(180):  # a hang guard, not a speed check
            async with trio.open_nursery() as nursery:
                for _ in range(STUCK_SSE):
                    await nursery.start(never_reading_sse, url)
                follower = Follower()
                async with open_websocket_url(ws_url(url)) as ws:
                    while len(follower.seqs) < 200:
                        follower.apply(json.loads(await ws.get_message()))
                    baseline = process.memory_info().rss
                    first = follower.seq
                    while follower.seq < first + 500:
                        follower.apply(json.loads(await ws.get_message()))
                    grown = process.memory_info().rss - baseline
                for _ in range(600):  # another process: its gauge is polled, there is nothing to await
                    if await sse_clients(url) == 0:
                        break
                    await trio.sleep(0.2)
                else:
                    raise AssertionError("readers that never read are still connected")
                nursery.cancel_scope.cancel()
    finally:
        await daemon.kill()
    assert grown < 25 * 1024 * 1024, f"RSS grew {grown / 1e6:.1f} MB"
