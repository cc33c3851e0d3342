"""End to end on an ephemeral port: WebSocket, SSE and polling against the real daemon."""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from northstard.actors.hub import Position
from northstard.daemon import Daemon

from clients import Follower, sse_events, ws_url


async def wait_for_seq(daemon: Daemon, seq: int) -> None:
    """Wait (without sleeping) until the daemon has published ``seq``."""
    with daemon.hub.subscribe("test", daemon.hub.position) as sub:
        while daemon.hub.seq < seq:
            await sub.next_message()


async def current(daemon: Daemon) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{daemon.url}/api/pnl/current")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def follow_ws(url: str, follower: Follower, count: int) -> None:
    async with open_websocket_url(url) as ws:
        for _ in range(count):
            follower.apply(json.loads(await ws.get_message()))


async def test_ws_snapshot_then_gap_free_deltas(daemon: Daemon) -> None:
    follower = Follower()
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        for _ in range(30):
            follower.apply(json.loads(await ws.get_message()))
        assert follower.kinds[0] == "snapshot"
        assert set(follower.kinds[1:]) == {"delta"}
        assert follower.seqs == sorted(set(follower.seqs))
        target = follower.seq + 3
        while follower.seq < target:
            follower.apply(json.loads(await ws.get_message()))
    server = daemon.hub
    if server.seq == follower.seq:
        assert follower.doc == server.doc
    stored = await current(daemon)
    assert stored["seq"] >= follower.seq


async def test_ws_state_equals_server_state(start_daemon: Any) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from northstard.core.records import Cost

    from scripted import FEEDS

    daemon = await start_daemon({"feed": {"plugin": "scripted"}})
    follower = Follower()
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        follower.apply(json.loads(await ws.get_message()))
        for i in range(1, 6):
            cost = Cost(id=f"c{i}", amount=Decimal("1.10") * i, category="ai",
                        model="claude-sonnet-4", ts=datetime.now(UTC))
            await FEEDS["feed"].push([cost])
        while follower.doc.get("costs", {}).get("total") != "16.50":
            follower.apply(json.loads(await ws.get_message()))
    assert follower.doc["costs"]["by_model"] == {"claude-sonnet-4": "16.50"}
    assert follower.doc["net_pnl"] == "-16.50"
    body = await current(daemon)
    if body["seq"] == follower.seq:
        assert body["data"] == follower.doc


async def test_sse_snapshot_then_gap_free_deltas(daemon: Daemon) -> None:
    follower = Follower()
    ids = []
    async with httpx.AsyncClient(timeout=10) as client:
        async for event_id, event, data in sse_events(client, f"{daemon.url}/api/pnl/stream"):
            assert event == data["type"]
            follower.apply(data)
            ids.append(event_id)
            if len(ids) == 25:
                break
    assert follower.kinds[0] == "snapshot" and set(follower.kinds[1:]) == {"delta"}
    assert ids[-1] == follower.since


async def test_ws_resume_by_url_gets_exactly_what_was_missed(daemon: Daemon) -> None:
    follower = Follower()
    await follow_ws(ws_url(daemon.url), follower, 5)
    await wait_for_seq(daemon, follower.seq + 10)
    async with open_websocket_url(ws_url(daemon.url, f"/ws?since={follower.since}")) as ws:
        first = json.loads(await ws.get_message())
        assert first["type"] == "delta"
        assert first["prev"] == follower.seq
        follower.apply(first)
        for _ in range(5):
            follower.apply(json.loads(await ws.get_message()))
    assert "snapshot" not in follower.kinds[1:]


async def test_ws_resume_message_after_snapshot(daemon: Daemon) -> None:
    first = Follower()
    await follow_ws(ws_url(daemon.url), first, 3)
    await wait_for_seq(daemon, first.seq + 5)
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        snapshot = json.loads(await ws.get_message())
        assert snapshot["type"] == "snapshot"
        await ws.send_message(json.dumps({"type": "resume", "epoch": first.epoch, "seq": first.seq}))
        while True:
            message = json.loads(await ws.get_message())
            if message["type"] == "delta" and message["prev"] == first.seq:
                break
        first.apply(message)
        for _ in range(3):
            first.apply(json.loads(await ws.get_message()))


async def test_ws_resume_from_unknown_epoch_gets_snapshot(daemon: Daemon) -> None:
    async with open_websocket_url(ws_url(daemon.url, "/ws?since=nope:3")) as ws:
        message = json.loads(await ws.get_message())
    assert message["type"] == "snapshot"
    assert message["epoch"] == daemon.hub.epoch


async def test_sse_resume_with_last_event_id(daemon: Daemon) -> None:
    follower = Follower()
    async with httpx.AsyncClient(timeout=10) as client:
        async for _, _, data in sse_events(client, f"{daemon.url}/api/pnl/stream"):
            follower.apply(data)
            if len(follower.seqs) == 4:
                break
        await wait_for_seq(daemon, follower.seq + 8)
        headers = {"Last-Event-ID": follower.since}
        count = 0
        async for _, event, data in sse_events(client, f"{daemon.url}/api/pnl/stream", headers):
            if count == 0:
                assert event == "delta" and data["prev"] == follower.seq
            follower.apply(data)
            count += 1
            if count == 4:
                break


async def test_polling_etag_and_changes(daemon: Daemon) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{daemon.url}/api/pnl/current")
        etag = response.headers["etag"]
        body = response.json()
        assert etag == f'"{body["epoch"]}:{body["seq"]}"'
        position = Position(body["epoch"], body["seq"])
        with daemon.hub.subscribe("test", position) as sub:
            again = await client.get(
                f"{daemon.url}/api/pnl/current", headers={"If-None-Match": etag}
            )
            if daemon.hub.seq == body["seq"]:
                assert again.status_code == 304
            await sub.next_message()
        newer = await client.get(f"{daemon.url}/api/pnl/current", headers={"If-None-Match": etag})
        assert newer.status_code == 200 and newer.headers["etag"] != etag
        follower = Follower()
        follower.apply(body)
        changes = await client.get(
            f"{daemon.url}/api/pnl/changes", params={"since": follower.since, "wait": "5"}
        )
        change = changes.json()
        assert change["type"] == "delta" and change["prev"] == follower.seq
        follower.apply(change)


async def test_long_poll_waits_for_the_next_change(start_daemon: Any) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from northstard.core.records import RevenueTotal

    from scripted import FEEDS

    daemon = await start_daemon({"feed": {"plugin": "scripted"}})
    async with httpx.AsyncClient(timeout=20) as client:
        body = (await client.get(f"{daemon.url}/api/pnl/current")).json()
        since = f"{body['epoch']}:{body['seq']}"
        unchanged = await client.get(f"{daemon.url}/api/pnl/changes", params={"since": since})
        if daemon.hub.seq == body["seq"]:
            assert unchanged.json() == {"type": "unchanged", "epoch": body["epoch"],
                                        "seq": body["seq"]}
        follower = Follower()
        follower.apply(body)
        kinds: list[str] = []

        async def poll() -> None:
            position = since  # the source's own status change may come first: poll on from it
            while follower.doc["revenue"]["invoiced"] != "100.00" and len(kinds) < 5:
                response = await client.get(
                    f"{daemon.url}/api/pnl/changes", params={"since": position, "wait": "15"}
                )
                message = response.json()
                kinds.append(message["type"])
                follower.apply(message)
                position = f"{message['epoch']}:{message['seq']}"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.testing.wait_all_tasks_blocked(0.05)
            total = RevenueTotal(id="t", invoiced=Decimal("100.00"), collected=Decimal("40"),
                                 ts=datetime.now(UTC))
            await FEEDS["feed"].push([total])
    assert kinds and set(kinds) == {"delta"}  # each poll waited for a change and got its delta
    assert follower.doc["revenue"]["invoiced"] == "100.00"


async def test_bad_parameters_are_json_400(daemon: Daemon) -> None:
    cases = [
        "/api/pnl/history?resolution=2m",
        "/api/pnl/history?from=yesterday",
        "/api/pnl/history?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "/api/pnl/history?from=0&to=99999999999999&resolution=1m",
        "/api/pnl/changes",
        "/api/pnl/changes?since=garbage",
        "/api/pnl/changes?since=e:1&wait=-1",
        "/api/pnl/changes?since=e:1&wait=nan",
        "/api/pnl/stream?since=e:x",
    ]
    async with httpx.AsyncClient(timeout=10) as client:
        for path in cases:
            response = await client.get(daemon.url + path)
            assert response.status_code == 400, path
            body = response.json()
            assert set(body) == {"error", "detail"} and body["detail"], path
        missing = await client.get(f"{daemon.url}/api/nope")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_malformed_ws_messages_get_errors_and_the_connection_survives(
    daemon: Daemon,
) -> None:
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        assert json.loads(await ws.get_message())["type"] == "snapshot"
        bad: list[str | bytes] = [
            "not json", b"\x00\x01binary", "[1,2]", '{"type":"dance"}', '{"no":"type"}',
            '{"type":"resume","epoch":"e","seq":"x"}', '{"type":"resume","epoch":5,"seq":1}',
        ]
        for frame in bad:
            await ws.send_message(frame)
        errors = []
        while len(errors) < len(bad):
            message = json.loads(await ws.get_message())
            if message["type"] == "error":
                errors.append(message)
        assert all(e["error"] in {"bad_message", "unknown_type"} for e in errors)
        await ws.send_message('{"type":"ping","id":7}')
        while (message := json.loads(await ws.get_message()))["type"] != "pong":
            pass
        assert message["id"] == 7


async def test_oversized_ws_frame_is_refused_with_1009(start_daemon: Any) -> None:
    daemon = await start_daemon(server={"ws_max_message_bytes": 1024})
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        await ws.get_message()
        await ws.send_message("x" * 5000)
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as closed:
            assert closed.reason.code == 1009


async def test_history_has_buckets_after_the_demo_ran(daemon: Daemon) -> None:
    await wait_for_seq(daemon, daemon.hub.seq + 5)
    async with httpx.AsyncClient(timeout=10) as client:
        for resolution in ("1m", "5m", "1h", "1d"):
            response = await client.get(
                f"{daemon.url}/api/pnl/history", params={"resolution": resolution}
            )
            assert response.status_code == 200
            body = response.json()
            assert body["resolution"] == resolution
            assert body["buckets"], resolution
            bucket = body["buckets"][-1]
            assert set(bucket) >= {"start", "start_ms", "net", "trading", "revenue", "costs"}
            net = bucket["net"]
            assert float(net["min"]) <= float(net["close"]) <= float(net["max"])
        stats = (await client.get(f"{daemon.url}/api/cache/stats")).json()
        assert stats["misses"] >= 4


async def test_rest_routes_describe_the_daemon(daemon: Daemon) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        health = (await client.get(f"{daemon.url}/api/health")).json()
        assert health["actors"]["engine"]["state"] == "running"
        sources = (await client.get(f"{daemon.url}/api/sources")).json()["sources"]
        assert sources[0]["name"] == "demo" and sources[0]["breaker"] == "closed"
        breakdown = (await client.get(f"{daemon.url}/api/pnl/breakdown")).json()
        assert {"trading", "revenue", "costs", "agents"} <= set(breakdown)
        metrics = (await client.get(f"{daemon.url}/metrics")).text
        assert "northstard_changes_total" in metrics
        assert "northstard_writer_batch_seconds_bucket" in metrics
        spec = (await client.get(f"{daemon.url}/openapi.json")).json()
        assert "/api/pnl/history" in spec["paths"]
        page = await client.get(f"{daemon.url}/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_a_failing_source_is_marked_while_the_others_stream(start_daemon: Any) -> None:
    from scripted import FEEDS

    daemon = await start_daemon(
        {"demo": {"interval_s": 0.02, "seed": 3},
         "broken": {"plugin": "scripted", "interval_s": 0.05, "failure_threshold": 100}}
    )
    FEEDS["broken"].fail("upstream said 503")
    follower = Follower()
    async with open_websocket_url(ws_url(daemon.url)) as ws:
        while follower.doc.get("sources", {}).get("broken", {}).get("status") != "failing":
            follower.apply(json.loads(await ws.get_message()))
        broken = follower.doc["sources"]["broken"]
        assert broken["stale"] is True and "503" in broken["last_error"]
        seq = follower.seq
        while follower.seq < seq + 5:
            follower.apply(json.loads(await ws.get_message()))
        assert follower.doc["sources"]["demo"]["status"] == "ok"
