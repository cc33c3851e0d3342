"""Slow WebSocket clients: the fast one is not delayed, memory stays bounded."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psutil
import pytest
import trio
from trio_websocket import open_websocket_url

from clients import Follower, ws_url
from conftest import write_config
from proc import DaemonProcess

pytestmark = pytest.mark.slow

STALLED = 100


async def stalled_client(url: str, task_status: trio.TaskStatus[None]) -> None:
    """Connects, then never reads: once the socket buffers fill, the server must cope."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    stream = trio.SocketStream(sock)
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
        hub={"ring_size": 200},
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    url = await daemon.start()
    process = psutil.Process(daemon.pid)
    result: dict[str, int] = {}
    try:
        with trio.fail_after(180):  # a fast client held up behind the stalled ones never finishes
            await _stream_beside_stalled(url, process, result)
    finally:
        await daemon.kill()
    assert result["grown"] < 25 * 1024 * 1024, f"RSS grew {result['grown'] / 1e6:.1f} MB"


async def _stream_beside_stalled(url: str, process: psutil.Process, result: dict[str, int]) -> None:
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
            result["grown"] = process.memory_info().rss - baseline
        nursery.cancel_scope.cancel()
