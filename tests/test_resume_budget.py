"""The per-connection resume budget on a real daemon: WebSocket, long-poll and gRPC.

An abusive client (a burst of resumes from distinct old positions) is refused
or closed; everyone else keeps getting their deltas.
"""

from __future__ import annotations

import json
import os
from typing import Any

import grpc
import httpx
from test_fastws import RawClient
from trio_websocket import open_websocket_url

from northstard.actors.hub import MERGED_MAX_ENTRIES, RECENT_CHANGES, Hub, Position
from northstard.core.change import Change
from northstard.core.wsframes import Opcode, encode_frame
from northstard.daemon import Daemon
from northstard.edges.grpc.client import PnlClient
from northstard.edges.stream.broadcast import FRAMES_KEPT, Broadcaster
from northstard.status.metrics import Metrics

from clients import Follower, ws_url
from conftest import DEMO_FAST
from grpc_helpers import GRPC, with_client

BURST = 1100
TIGHT = {"resume_burst": 5, "resume_rate_per_s": 0.01}  # no refill within a test


async def held_changes(daemon: Daemon, count: int) -> None:
    """Wait (without sleeping) until the hub has published ``count`` changes."""
    with daemon.hub.subscribe("test", daemon.hub.position) as sub:
        while daemon.hub.seq < count:
            await sub.next_message()


def resume_burst(epoch: str) -> bytes:
    """1,100 resume frames, each from another position, in one buffer (~65 KB)."""
    return b"".join(
        encode_frame(Opcode.TEXT, json.dumps({"type": "resume", "epoch": epoch, "seq": seq}).encode(),
                     mask_key=os.urandom(4))
        for seq in range(BURST)
    )


async def test_a_burst_of_resumes_closes_that_client_and_the_others_stream_on(
    daemon: Daemon,
) -> None:
    await held_changes(daemon, 30)
    watcher = Follower()
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        watcher.apply(json.loads(await ws.get_message()))
        attacker = await RawClient.connect(daemon.url)
        await attacker.upgrade()
        first = await attacker.message()
        at_burst = daemon.hub.seq
        await attacker.stream.send_all(resume_burst(first["epoch"]))
        replies: list[dict[str, Any]] = []
        while (opcode_payload := await attacker.frame())[0] != Opcode.CLOSE:
            opcode, payload = opcode_payload
            if opcode == Opcode.TEXT:
                replies.append(json.loads(payload))
        code = int.from_bytes(opcode_payload[1][:2], "big")
        assert code == 1008
        assert replies[-1]["type"] == "error" and replies[-1]["error"] == "too_many_resumes"
        streamed = [r for r in replies if r["type"] in ("delta", "snapshot")]
        # the budget's resumes were answered, and the deltas published meanwhile; nothing more
        assert len(streamed) <= daemon.hub.budget.burst + 1 + (daemon.hub.seq - at_burst)
        target = daemon.hub.seq + 5
        while watcher.seq < target:
            watcher.apply(json.loads(await ws.get_message()))
    assert watcher.kinds[0] == "snapshot" and set(watcher.kinds[1:]) == {"delta"}
    assert watcher.seqs == sorted(set(watcher.seqs))  # no gap, no duplicate (Follower checks)


async def test_long_poll_resumes_past_the_budget_get_429_and_polls_at_now_are_free(
    start_daemon: Any,
) -> None:
    daemon = await start_daemon(DEMO_FAST, hub=TIGHT)
    await held_changes(daemon, RECENT_CHANGES + 10)  # positions 1..8 are resumes, not polls
    epoch = daemon.hub.epoch
    async with httpx.AsyncClient(base_url=daemon.url) as http:  # one keep-alive connection
        statuses = []
        for seq in range(1, 9):
            response = await http.get("/api/pnl/changes", params={"since": f"{epoch}:{seq}"})
            statuses.append(response.status_code)
        assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}
        assert response.json()["error"] == "too_many_resumes"
        assert int(response.headers["retry-after"]) >= 1
        for _ in range(10):  # polls from (about) now are not resumes: not budgeted
            now = daemon.hub.position
            current = await http.get("/api/pnl/changes", params={"since": str(now)})
            assert current.status_code == 200
    async with httpx.AsyncClient(base_url=daemon.url) as other:  # another connection, own budget
        response = await other.get("/api/pnl/changes", params={"since": f"{epoch}:1"})
        assert response.status_code == 200 and response.json()["type"] in ("delta", "snapshot")


async def test_grpc_resumes_past_the_budget_are_refused_on_that_connection(
    start_daemon: Any,
) -> None:
    daemon = await start_daemon(DEMO_FAST, grpc=GRPC, hub=TIGHT)
    await held_changes(daemon, 10)
    old = Position(daemon.hub.epoch, 2)

    async def resumes(client: PnlClient) -> list[str]:
        outcomes = []
        for _ in range(8):
            call = client.subscribe(old)
            try:
                async for event in call:
                    outcomes.append(event.WhichOneof("body"))
                    break
            except grpc.aio.AioRpcError as exc:
                outcomes.append(exc.code().name)
            call.cancel()
        return outcomes

    outcomes = await with_client(daemon, resumes)
    assert set(outcomes[:5]) <= {"delta", "snapshot"}
    assert outcomes[5:] == ["RESOURCE_EXHAUSTED"] * 3
    fresh = await with_client(daemon, resumes)  # a new connection has its own budget
    assert set(fresh[:5]) <= {"delta", "snapshot"}


async def test_resumes_within_the_budget_are_all_answered_and_the_connection_stays(
    daemon: Daemon,
) -> None:
    await held_changes(daemon, 30)
    client = await RawClient.connect(daemon.url)
    await client.upgrade()
    epoch = (await client.message())["epoch"]
    burst = daemon.hub.budget.burst
    frames = b"".join(
        encode_frame(Opcode.TEXT, json.dumps({"type": "resume", "epoch": epoch, "seq": seq}).encode(),
                     mask_key=os.urandom(4))
        for seq in range(1, burst + 1)
    )
    await client.stream.send_all(frames + encode_frame(
        Opcode.TEXT, b'{"type":"ping","id":"after"}', mask_key=os.urandom(4)))
    prevs = []
    while (message := await client.message())["type"] != "pong":
        assert message["type"] in ("delta", "snapshot"), message
        prevs.append(message.get("prev"))
    assert message["id"] == "after"
    assert set(range(1, burst + 1)) <= set(prevs)  # each resume got its merged delta


def test_the_frames_kept_for_catch_ups_are_bounded() -> None:
    hub = Hub()
    hub.reset("e1", 0, {}, 0)
    for seq in range(1, 200):
        hub.publish(Change("e1", seq, seq, {"n": str(seq)}, {"n": str(seq)}))
    broadcaster = Broadcaster(hub, "ws", lambda message: message.text.encode(), Metrics())
    for seq in range(1, 198):  # a merged delta from each of many positions, at one hub position
        message = hub.catch_up(Position("e1", seq))
        assert message is not None
        assert broadcaster.frame(message) == message.text.encode()
    assert len(broadcaster._frames) == FRAMES_KEPT
    assert len(hub._merged) <= MERGED_MAX_ENTRIES


async def test_the_daemon_bounds_both_rings_in_bytes_and_an_old_position_gets_a_snapshot(
    start_daemon: Any,
) -> None:
    daemon = await start_daemon(DEMO_FAST, grpc=GRPC, hub={"ring_max_bytes": 8192})
    await held_changes(daemon, 60)
    ring = daemon.hub.ring
    assert ring.max_bytes == 8192 and ring.nbytes <= 8192
    first = ring.first_prev
    assert first is not None and first > 1  # the oldest went first
    assert daemon.grpc.server is not None and daemon.grpc.server.feed is not None
    assert daemon.grpc.server.feed.ring.ring.max_bytes == 8192
    async with open_websocket_url(ws_url(daemon.url, f"/ws?since={daemon.hub.epoch}:1")) as ws:
        assert json.loads(await ws.get_message())["type"] == "snapshot"  # never a silent gap
    oldest = daemon.hub.ring.first_prev
    assert oldest is not None
    held = (oldest + daemon.hub.seq) // 2  # a dozen changes from falling out: room to connect
    async with open_websocket_url(ws_url(daemon.url, f"/ws?since={daemon.hub.epoch}:{held}")) as ws:
        message = json.loads(await ws.get_message())
        assert message["type"] == "delta" and message["prev"] == held
