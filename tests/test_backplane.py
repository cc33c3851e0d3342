"""The backplane in-process: the real core daemon and real edges (``run_edge``) over a real
redis-server, with real WebSocket and HTTP clients."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import coredis
import httpx
import trio
from trio_websocket import open_websocket_url

from northstard.core.backplane.wire import parse_entry
from northstard.daemon import Daemon
from northstard.edge_node import EdgeNode, run_edge
from northstard.edges.grpc.client import PnlClient, open_channel

from clients import Follower, sse_events, ws_url
from conftest import build_config, debug_logs, running
from grpc_helpers import on_asyncio, until_serving
from redis_server import RedisServer, needs_redis, redis_running

pytestmark = needs_redis
BEAT = {"heartbeat_s": 1.0, "timeout_s": 3.0}  # expires after 3 s: core and edges share one loop here


@asynccontextmanager
async def edge_running(folder: Path, url: str) -> AsyncIterator[EdgeNode]:
    await trio.Path(folder).mkdir(parents=True, exist_ok=True)
    config = build_config(folder, {}, backplane={"url": url, "core_url": "http://core.test", **BEAT})
    async with trio.open_nursery() as nursery:
        node: EdgeNode = await nursery.start(functools.partial(run_edge, config, handle_signals=False))
        try:
            yield node
        finally:
            node.stop()


async def until(check: Callable[[], Awaitable[bool]], core: Daemon, limit: float = 30) -> None:
    """Check again after each change the core publishes (the demo makes one every 20 ms)."""
    with trio.fail_after(limit), core.hub.subscribe("test", core.hub.position) as subscription:
        while not await check():
            await subscription.next_message()


async def get(url: str) -> Any:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    return response.status_code, response.json()


async def follow(url: str, count: int, docs: dict[tuple[str, int], Any]) -> Follower:
    follower = Follower()
    async with open_websocket_url(ws_url(url)) as ws:
        while len(follower.seqs) < count:
            follower.apply(json.loads(await ws.get_message()))
            docs[follower.epoch or "", follower.seq] = follower.doc
    return follower


async def stream_entries(url: str) -> list[Any]:
    client: coredis.Redis[str] = coredis.Redis.from_url(url, decode_responses=True)
    async with client:
        return [parse_entry(e.field_values) for e in await client.xrange("northstard:stream")]


async def test_edges_send_the_cores_documents_at_every_seq(tmp_path: Path) -> None:
    async with redis_running(tmp_path / "redis") as redis, \
            running(tmp_path, backplane={"url": redis.url, **BEAT}) as core, \
            edge_running(tmp_path / "e1", redis.url) as e1, edge_running(tmp_path / "e2", redis.url) as e2:
        seen: list[dict[tuple[str, int], Any]] = [{}, {}, {}]
        async with trio.open_nursery() as nursery:
            for url, docs in zip((core.url, e1.url, e2.url), seen, strict=True):
                nursery.start_soon(follow, url, 40, docs)
        common = set(seen[0]) & set(seen[1]) & set(seen[2])
        assert len(common) >= 5  # a client behind gets merged deltas: not every seq is seen by all
        for seq in common:
            assert seen[1][seq] == seen[0][seq] == seen[2][seq], seq  # (epoch, seq)
        status, body = await get(f"{e1.url}/api/pnl/current")
        assert status == 200 and body["epoch"] == core.hub.epoch
        status, body = await get(f"{e1.url}/api/pnl/history")
        assert status == 503 and body["error"] == "served_by_core" and "http://core.test" in body["detail"]
        _, health = await get(f"{e2.url}/api/health")
        assert health["backplane"]["role"] == "edge" and health["backplane"]["core"] == "ok"
        _, health = await get(f"{core.url}/api/health")
        assert health["backplane"]["role"] == "core" and health["backplane"]["redis"] == "ok"


async def _published(core: Daemon) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        _, health = await get(f"{core.url}/api/health")
        backplane = health["backplane"]
        return bool(backplane["redis"] == "ok" and backplane["unpublished"] == 0
                    and backplane["published"] > 0)
    return check


async def test_redis_outage_is_republished_from_sqlite_without_a_gap(tmp_path: Path) -> None:
    async with redis_running(tmp_path / "redis", persistent=True) as redis, \
            running(tmp_path, backplane={"url": redis.url, **BEAT}) as core, \
            edge_running(tmp_path / "e1", redis.url) as edge:
        await until(await _published(core), core)
        logs_scope = debug_logs()
        logs = logs_scope.__enter__()
        await redis.stop()

        async def counting() -> bool:
            _, health = await get(f"{core.url}/api/health")
            return bool(health["backplane"]["redis"] == "unreachable"
                        and health["backplane"]["unpublished"] >= 5)
        await until(counting, core)  # the core serves on meanwhile, counting what Redis lacks
        await redis.start()  # the same port and data folder: the stream is back from its AOF
        top = core.hub.seq
        await until(await _published(core), core)
        await until(lambda: _stream_reaches(redis, top), core)
        entries = await stream_entries(redis.url)
        assert entries[0].kind == "snapshot"  # the daemon's start
        deltas = [e for e in entries if e.kind == "delta"]
        assert [e.kind for e in entries[1:]] == ["delta"] * len(deltas)
        for before, after in zip(entries, deltas, strict=False):
            assert after.prev == before.seq, "a hole in the stream"
        await until(lambda: _async(edge.hub.seq >= top and edge.status.redis == "ok"), core)
        assert edge.hub.epoch == core.hub.epoch  # resynced: back on the core's epoch, past the outage
        logs_scope.__exit__(None, None, None)
        said = [entry["event"] for entry in logs]
        assert said.count("backplane: Redis unreachable; serving locally, republishing on return") == 1
        assert "backplane: republishing from SQLite" in said


async def _stream_reaches(redis: RedisServer, seq: int) -> bool:
    entries = await stream_entries(redis.url)
    return bool(entries) and entries[-1].seq >= seq


async def test_redis_restart_without_persistence_resyncs_the_edges(tmp_path: Path) -> None:
    async with redis_running(tmp_path / "redis") as redis, \
            running(tmp_path, backplane={"url": redis.url, **BEAT}) as core, \
            edge_running(tmp_path / "e1", redis.url) as edge:
        await until(await _published(core), core)
        before = edge.status.resyncs
        await redis.restart()  # empty: no stream, no current
        await until(lambda: _async(edge.status.resyncs > before and edge.hub.seq > core.hub.seq - 50), core)
        entries = await stream_entries(redis.url)
        assert entries[0].kind == "snapshot"  # what the core writes into an empty Redis
        docs: list[dict[tuple[str, int], Any]] = [{}, {}]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, core.url, 15, docs[0])
            nursery.start_soon(follow, edge.url, 15, docs[1])
        common = set(docs[0]) & set(docs[1])
        assert common and all(docs[0][s] == docs[1][s] for s in common)
        assert edge.hub.epoch == core.hub.epoch
        client: coredis.Redis[str] = coredis.Redis.from_url(redis.url, decode_responses=True)
        async with client:
            await client.xadd("northstard:stream", {"someone": "else"})  # not ours: skipped
        seq = edge.hub.seq
        await until(lambda: _async(edge.hub.seq > seq + 3), core)


async def _async(value: bool) -> bool:
    return value


async def test_a_core_position_resumes_on_an_edge_over_sse_long_poll_and_grpc(tmp_path: Path) -> None:
    async with redis_running(tmp_path / "redis") as redis, \
            running(tmp_path, backplane={"url": redis.url, **BEAT}) as core, \
            edge_running(tmp_path / "e1", redis.url) as edge:
        position = core.hub.position  # on the core, after the edge loaded: resumed on the edge
        await until(lambda: _async(edge.hub.seq > position.seq + 2), core)
        status, body = await get(f"{edge.url}/api/pnl/changes?since={position}")
        assert status == 200 and body["type"] == "delta" and body["epoch"] == position.epoch
        assert body["prev"] <= position.seq < body["seq"]
        async with httpx.AsyncClient(timeout=10) as client:
            events = sse_events(client, f"{edge.url}/api/pnl/stream",
                                headers={"Last-Event-ID": str(position)})
            event_id, kind, data = await anext(aiter(events))
            await events.aclose()  # type: ignore[attr-defined]
        assert kind == "delta" and data["prev"] <= position.seq < data["seq"] and event_id.startswith(
            position.epoch + ":")
        assert edge.grpc_address is not None

        async def grpc_current() -> tuple[str, int]:
            async with open_channel(edge.grpc_address or "") as channel:
                await until_serving(channel)
                event = await PnlClient(channel).current()
                return event.epoch, event.seq

        epoch, seq = await on_asyncio(grpc_current)
        assert epoch == position.epoch and seq > position.seq
