"""The daemon as a process: kill -9 loses nothing acknowledged; SIGTERM stops cleanly."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from clients import Follower, sse_events, ws_url
from conftest import write_config
from proc import DaemonProcess

pytestmark = pytest.mark.slow


def crash_config(tmp_path: Path, enabled: bool = True, snapshot_every: int = 1) -> Path:
    return write_config(
        tmp_path,
        {"demo": {"interval_s": 0.01, "seed": 11, "enabled": enabled}},
        storage={"snapshot_every": snapshot_every, "synchronous": "full"},
    )


def stored(db: Path) -> tuple[str, int, dict[str, Any], sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    epoch, seq, doc = conn.execute("SELECT epoch, seq, doc FROM current").fetchone()
    return epoch, seq, json.loads(doc), conn


MONEY = ("net_pnl", "trading", "revenue", "costs", "agents", "gross_margin_pct")


async def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    daemon = DaemonProcess(crash_config(tmp_path), tmp_path / "daemon.log")
    url = await daemon.start()
    follower = Follower()
    try:
        async with open_websocket_url(ws_url(url)) as ws:
            while len(follower.seqs) < 60:
                follower.apply(json.loads(await ws.get_message()))
            await daemon.kill()
    except ConnectionClosed:
        pass
    finally:
        await daemon.kill()
    db = tmp_path / "northstard.db"
    epoch, seq, _, conn = stored(db)
    assert epoch == follower.epoch
    assert seq >= follower.seq, "a change the client saw is not on disk"
    with conn:
        row = conn.execute(
            "SELECT doc FROM snapshots WHERE epoch = ? AND seq = ?", (epoch, follower.seq)
        ).fetchone()
        kinds = conn.execute("SELECT count(*) FROM rec_position").fetchone()[0]
        deltas = [s for (s,) in conn.execute("SELECT seq FROM deltas WHERE epoch = ?", (epoch,))]
    conn.close()
    assert json.loads(row[0]) == follower.doc
    assert kinds > 0
    assert deltas == list(range(1, seq + 1)), "the stored sequence has a gap"

    # restart with the source off: the daemon serves exactly what it had stored
    quiet = DaemonProcess(crash_config(tmp_path, enabled=False), tmp_path / "daemon2.log")
    url = await quiet.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            body = (await client.get(f"{url}/api/pnl/current")).json()
    finally:
        quiet.send_signal(signal.SIGTERM)
        assert await quiet.wait() == 0
    _, seq_after, doc_after, conn = stored(db)
    conn.close()
    assert body["epoch"] == epoch and body["seq"] >= seq
    assert {k: body["data"].get(k) for k in MONEY} == {k: doc_after.get(k) for k in MONEY}

    # restart with the source on: the sequence continues in the same epoch
    again = DaemonProcess(crash_config(tmp_path), tmp_path / "daemon3.log")
    url = await again.start()
    try:
        async with open_websocket_url(ws_url(url)) as ws:
            resumed = Follower()
            for _ in range(5):
                resumed.apply(json.loads(await ws.get_message()))
    finally:
        await again.kill()
    assert resumed.epoch == epoch
    assert resumed.seqs[0] >= seq_after and resumed.seqs[-1] > seq_after


async def test_sigterm_closes_streams_cleanly_and_exits_0(tmp_path: Path) -> None:
    config = crash_config(tmp_path, snapshot_every=100000)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    url = await daemon.start()
    closed: dict[str, Any] = {}

    async def websocket_client(task_status: trio.TaskStatus[None]) -> None:
        async with open_websocket_url(ws_url(url)) as ws:
            await ws.get_message()
            task_status.started()
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed as exc:
                closed["ws"] = exc.reason.code

    async def sse_client(task_status: trio.TaskStatus[None]) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            count = 0
            async for _ in sse_events(client, f"{url}/api/pnl/stream"):
                count += 1
                if count == 1:
                    task_status.started()
            closed["sse"] = count

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(websocket_client)
            await nursery.start(sse_client)
            started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            code = await daemon.wait(limit=10)
            elapsed = time.monotonic() - started
    finally:
        await daemon.kill()
    assert code == 0
    assert elapsed < 5.0, f"stopping took {elapsed:.2f} s"
    assert closed["ws"] == 1001
    assert closed["sse"] >= 1
    # the writer flushed: the last change is stored, with a shutdown snapshot of it
    epoch, seq, doc, conn = stored(tmp_path / "northstard.db")
    with conn:
        row = conn.execute(
            "SELECT doc FROM snapshots WHERE epoch = ? AND seq = ?", (epoch, seq)
        ).fetchone()
    conn.close()
    assert row is not None and json.loads(row[0]) == doc
