"""Issue 16's gaps: gRPC history on an edge, Redis AUTH, and an edge's resync after a Redis restart.

Real redis-servers on loopback ports, the real core daemon and edge nodes, real clients.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
import trio.testing
from test_backplane import BEAT, _async, _published, edge_running, get, until
from trio_websocket import open_websocket_url

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.actors.backplane.client import read_tls
from northstard.actors.backplane.follower import RETRY_MAX_S, Batch, Feed, run_follower
from northstard.core.backplane.follow import MARK, Followed, Reset
from northstard.core.backplane.settings import BackplaneSettings
from northstard.core.change import Change
from northstard.edge_node import EdgeNode, run_edge
from northstard.edges.grpc.client import PREFIX, PnlClient, open_channel
from northstard.errors import ConfigError
from northstard.status.backplane import EdgeStatus

from certs import self_signed
from clients import Follower, ws_url
from conftest import build_config, debug_logs, running
from grpc_helpers import on_asyncio, until_serving
from redis_server import free_port, needs_redis, redis_running

pytestmark = needs_redis
PASSWORD = "correct-horse-battery-staple"
WRONG = "not-the-password-at-all"


@asynccontextmanager
async def edge_with(folder: Path, backplane: dict[str, Any]) -> AsyncIterator[EdgeNode]:
    await trio.Path(folder).mkdir(parents=True, exist_ok=True)
    config = build_config(folder, {}, backplane={"core_url": "http://core.test", **BEAT, **backplane})
    async with trio.open_nursery() as nursery:
        node: EdgeNode = await nursery.start(functools.partial(run_edge, config, handle_signals=False))
        try:
            yield node
        finally:
            node.stop()


async def test_grpc_history_on_an_edge_is_unavailable_naming_the_core(tmp_path: Path) -> None:
    async with redis_running(tmp_path / "redis") as redis, \
            running(tmp_path, backplane={"url": redis.url, **BEAT}), \
            edge_running(tmp_path / "e1", redis.url) as edge:
        assert edge.grpc_address is not None

        async def ask() -> list[tuple[grpc.StatusCode, str]]:
            answers = []
            async with open_channel(edge.grpc_address or "") as channel:
                await until_serving(channel)
                client = PnlClient(channel)
                await client.current()  # what needs no database is served
                explain = channel.unary_unary(PREFIX + "Explain",
                                              request_serializer=pb.ExplainRequest.SerializeToString,
                                              response_deserializer=pb.ExplainResponse.FromString)
                for call in (client.history(pb.GetHistoryRequest(resolution="1m")),
                             explain(pb.ExplainRequest())):
                    try:
                        await call
                    except grpc.aio.AioRpcError as exc:
                        answers.append((exc.code(), exc.details() or ""))
            return answers

        answers = await on_asyncio(ask)
        assert len(answers) == 2
        for code, details in answers:
            assert code == grpc.StatusCode.UNAVAILABLE
            assert details.startswith("served_by_core: ")
            assert "http://core.test" in details and "[backplane] core_url" in details


@pytest.mark.parametrize("where", ["password_file", "credentials_directory"])
async def test_redis_auth_the_core_publishes_and_an_edge_follows(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secrets"
    secret.mkdir()
    if where == "password_file":
        (secret / "redis.password").write_text(PASSWORD + "\n")
        auth: dict[str, Any] = {"password_file": str(secret / "redis.password")}
    else:
        (secret / "backplane.password").write_text(PASSWORD + "\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(secret))
        auth = {}
    async with redis_running(tmp_path / "redis", password=PASSWORD) as redis, \
            running(tmp_path, backplane={"url": redis.url, **BEAT, **auth}) as core:
        await until(await _published(core), core)
        async with edge_with(tmp_path / "e1", {"url": redis.url, **auth}) as edge:
            start = core.hub.seq
            await until(lambda: _async(edge.hub.seq > start + 3), core)
            assert edge.hub.epoch == core.hub.epoch and edge.status.redis == "ok"


async def test_a_wrong_redis_password_is_said_without_the_password(tmp_path: Path) -> None:
    (tmp_path / "wrong.password").write_text(WRONG)
    logs_scope = debug_logs()
    logs = logs_scope.__enter__()
    async with redis_running(tmp_path / "redis", password=PASSWORD) as redis, \
            running(tmp_path, backplane={"url": redis.url, **BEAT,
                                         "password_file": str(tmp_path / "wrong.password")}) as core:
        hub_send, hub_receive = trio.open_memory_channel[Batch](16)
        cache_send, cache_receive = trio.open_memory_channel[Change](16)
        feed = Feed(hub_send, cache_send, EdgeStatus())
        settings = BackplaneSettings(redis.url, heartbeat_s=1.0, timeout_s=3.0, password=WRONG)
        async with trio.open_nursery() as nursery:
            await nursery.start(run_follower, settings, feed)

            async def refused() -> bool:
                _, health = await get(f"{core.url}/api/health")
                return "refused to authenticate" in str(health["backplane"].get("error"))
            await until(refused, core)  # the core serves on locally meanwhile
            await until(lambda: _async("refused to authenticate" in str(feed.status.error)), core)
            _, health = await get(f"{core.url}/api/health")
            nursery.cancel_scope.cancel()
        hub_receive.close()
        cache_receive.close()
    logs_scope.__exit__(None, None, None)
    assert health["backplane"]["redis"] == "unreachable"
    assert "backplane.password_file" in health["backplane"]["error"]
    assert feed.status.redis == "unreachable" and feed.followed is None
    said = [entry for entry in logs if "refused to authenticate" in str(entry.get("error"))]
    assert {e["event"] for e in said} >= {
        "edge: Redis unreachable; serving the last state",
        "backplane: Redis unreachable; serving locally, republishing on return"}
    events = [entry["event"] for entry in logs]
    assert events.count("backplane: Redis unreachable; serving locally, republishing on return") == 1
    assert "backplane: Redis reachable; publishing" not in events  # said once, not once per retry
    assert WRONG not in json.dumps(health) and WRONG not in repr(logs)
    assert WRONG not in repr(settings) and WRONG not in str(feed.status.document())


async def test_an_edge_continues_from_its_position_after_a_redis_restart_with_aof(tmp_path: Path) -> None:
    async with redis_running(tmp_path / "redis", persistent=True) as redis, \
            running(tmp_path, backplane={"url": redis.url, **BEAT}) as core, \
            edge_running(tmp_path / "e1", redis.url) as edge:
        await until(await _published(core), core)
        follower = Follower()
        async with open_websocket_url(ws_url(edge.url)) as ws:
            while len(follower.seqs) < 3:
                follower.apply(json.loads(await ws.get_message()))
            resyncs = edge.status.resyncs
            logs_scope = debug_logs()
            logs = logs_scope.__enter__()
            await redis.restart()  # SIGKILL, then the same port and AOF: the edge's position is kept
            restarted_at = core.hub.seq
            while follower.seq <= restarted_at + 5 or edge.status.redis != "ok":
                with trio.fail_after(30):
                    follower.apply(json.loads(await ws.get_message()))
            logs_scope.__exit__(None, None, None)
        assert follower.kinds[0] == "snapshot" and set(follower.kinds[1:]) == {"delta"}  # no snapshot
        assert follower.epoch == core.hub.epoch and edge.status.resyncs == resyncs
        said = [entry["event"] for entry in logs]
        assert "edge: continuing the stream from its position" in said
        assert "edge: loaded the snapshot" not in said


async def test_redis_away_marks_the_clients_only_after_the_cores_liveness_would_expire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub_send, hub_receive = trio.open_memory_channel[Batch](16)
    cache_send, _cache_receive = trio.open_memory_channel[Change](16)
    feed = Feed(hub_send, cache_send, EdgeStatus(redis="ok"))
    feed.followed = Followed("e", 5, 0, {"net_pnl": "1.00"})
    settings = BackplaneSettings(f"redis://127.0.0.1:{free_port()}", heartbeat_s=1.0, timeout_s=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_follower, settings, feed)
        began = trio.current_time()
        batch = await hub_receive.receive()  # nothing listens on that port: Redis is away
        marked_after = trio.current_time() - began
        nursery.cancel_scope.cancel()
    assert len(batch) == 1 and isinstance(batch[0], Reset) and batch[0].epoch == "e" + MARK
    assert marked_after >= settings.core_ttl_ms / 1000  # a blip shorter than 3 heartbeats: unmarked
    assert marked_after < settings.core_ttl_ms / 1000 + RETRY_MAX_S + settings.timeout_s
    assert feed.status.redis == "unreachable" and feed.status.core == "unreachable"


async def test_a_tls_redis_carries_the_stream_with_the_ca_file_and_is_refused_without_it(
    tmp_path: Path,
) -> None:
    """rediss:// against a redis-server with a certificate of a private CA: with
    ``[backplane] ca_file`` the core publishes and an edge follows over TLS; without it the
    server is not trusted, and the core says so (serving locally meanwhile)."""
    cert, key = self_signed(tmp_path)
    for folder in ("core", "untrusting"):
        (tmp_path / folder).mkdir()
    async with redis_running(tmp_path / "redis", tls=(cert, key)) as redis:
        assert redis.url.startswith("rediss://")
        async with running(tmp_path / "core", backplane={"url": redis.url, **BEAT,
                                                         "ca_file": str(cert)}) as core, \
                edge_with(tmp_path / "e1", {"url": redis.url, "ca_file": str(cert)}) as edge:
            await until(await _published(core), core)
            start = core.hub.seq
            await until(lambda: _async(edge.hub.seq > start + 3), core)
            assert edge.hub.epoch == core.hub.epoch and edge.status.redis == "ok"
        async with running(tmp_path / "untrusting", backplane={"url": redis.url, **BEAT}) as core:
            async def untrusted() -> bool:
                _, health = await get(f"{core.url}/api/health")
                return "not trusted" in str(health["backplane"].get("error"))
            await until(untrusted, core)
            _, health = await get(f"{core.url}/api/health")
    assert health["backplane"]["redis"] == "unreachable" and health["status"] != "failing"
    assert "certificate verify failed" in health["backplane"]["error"]
    assert "backplane.ca_file" in health["backplane"]["error"]


def test_ca_file_is_only_for_rediss_and_must_be_readable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"backplane\.ca_file.*only with a rediss://"):
        read_tls("redis://127.0.0.1:6379", tmp_path / "ca.pem")
    with pytest.raises(ConfigError, match=r"backplane\.ca_file.*cannot read CA certificates"):
        read_tls("rediss://127.0.0.1:6379", tmp_path / "missing.pem")
    assert read_tls("rediss://127.0.0.1:6379", None) is None
