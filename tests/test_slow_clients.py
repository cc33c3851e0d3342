"""Slow WebSocket clients: the fast one is not delayed, memory stays bounded."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from clients import Follower, ws_url
from conftest import write_config
from proc import DaemonProcess

pytestmark = pytest.mark.slow

STALLED = 20


async def stalled_client(url: str, task_status: trio.TaskStatus[None]) -> None:
    """Connects, then never reads: once the socket buffers fill, the server must cope."""
    stream = await trio.open_tcp_stream("127.0.0.1", int(url.rsplit(":", 1)[1]))
    request = (
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await stream.send_all(request.encode())
    response = await stream.receive_some(4096)
    assert response.startswith(b"HTTP/1.1 101"), response[:80]
    task_status.started()
    await trio.sleep_forever()


async def test_slow_clients_do_not_delay_a_fast_one_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path,
        {"demo": {"interval_s": 0.004, "seed": 5, "markets": 30}},
        hub={"slow_client_timeout_s": 600.0},
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    url = await daemon.start()
    process = psutil.Process(daemon.pid)
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(STALLED):
                await nursery.start(stalled_client, url)
            follower = Follower()
            async with open_websocket_url(ws_url(url)) as ws:
                while len(follower.seqs) < 200:
                    follower.apply(json.loads(await ws.get_message()))
                baseline = process.memory_info().rss
                first = follower.seq
                while follower.seq < first + 1500:
                    follower.apply(json.loads(await ws.get_message()))
                grown = process.memory_info().rss - baseline
            nursery.cancel_scope.cancel()
    finally:
        await daemon.kill()
    # the fast client got the changes one by one, not merged behind the stalled ones
    singles = sum(1 for a, b in zip(follower.seqs, follower.seqs[1:], strict=False) if b == a + 1)
    assert singles > 0.5 * (len(follower.seqs) - 1)
    # 1,500 changes x 20 stalled clients held in queues would be tens of MB
    assert grown < 25 * 1024 * 1024, f"RSS grew {grown / 1e6:.1f} MB"


async def test_a_client_blocked_too_long_is_closed_and_can_resume(start_daemon: object) -> None:
    daemon = await start_daemon(  # type: ignore[operator]
        {"demo": {"interval_s": 0.004, "seed": 9, "markets": 30}},
        hub={"slow_client_timeout_s": 0.5},
    )
    follower = Follower()
    async with open_websocket_url(ws_url(daemon.url), message_queue_size=0) as ws:
        follower.apply(json.loads(await ws.get_message()))
        with daemon.hub.subscribe("test", daemon.hub.position) as watcher:
            while "ws" not in {s for s in daemon.hub.clients if daemon.hub.clients[s]} or (
                daemon.hub.seq < follower.seq + 3000
            ):
                await watcher.next_message()
        code = None
        try:
            while True:
                follower.apply(json.loads(await ws.get_message()))
        except ConnectionClosed as exc:
            code = exc.reason.code
    assert code == 4008
    async with open_websocket_url(ws_url(daemon.url, f"/ws?since={follower.since}")) as ws:
        follower.apply(json.loads(await ws.get_message()))
