"""gRPC WatchAlerts: a real grpc.aio client against the running daemon gets the firing alerts
first, then each transition with the fields of GET /api/alerts; the token is required; the stream
ends with OK when the daemon stops; a stream that falls behind the server's ring drops to the
latest state, never a queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import httpx
import trio
from google.protobuf import json_format

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.core.records import Cost
from northstard.edges.grpc.alertwatch import AlertBoard, watch
from northstard.edges.grpc.auth import digest
from northstard.edges.grpc.client import PnlClient, open_channel
from northstard.edges.grpc.convert import ms_from_timestamp

from grpc_helpers import GRPC, on_asyncio, until_serving, wait_until
from scripted import FEEDS

SOURCES = {"feed": {"plugin": "scripted"}}
RULES = {
    "budget": {"metric": "costs.by_category.ai", "window": "day", "above": "10.00",
               "severity": "critical"},
    "drawdown": {"metric": "net_pnl", "below": "-20.00"},
}
TOKEN = "s3cret"


def cost(i: int, amount: str) -> Cost:
    return Cost(id=f"c{i}", amount=Decimal(amount), category="ai", model="claude-sonnet-4",
                ts=datetime.now(UTC))


async def alert_events(url: str, after: int = 0, wait: float = 10) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        body = (await http.get("/api/alerts", params={"after": after, "wait": wait})).json()
    events: list[dict[str, Any]] = body["events"]
    return events


async def health_clients(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        clients: dict[str, int] = (await http.get("/api/health")).json()["clients"]
    return clients


def as_body(event: pb.AlertEvent) -> dict[str, Any]:
    """The WebSocket / REST form of an AlertEvent (``ts`` in ms, no ``current``)."""
    body = json_format.MessageToDict(event, preserving_proto_field_name=True)
    body.pop("current", None)
    body["id"], body["seq"] = int(body["id"]), int(body["seq"])
    body["ts"] = ms_from_timestamp(event.ts)
    return body


async def test_watch_alerts_sends_the_firing_ones_first_then_each_transition(start_daemon: Any) -> None:
    daemon = await start_daemon(SOURCES, grpc={**GRPC, "tokens": [digest(TOKEN)]}, alerts=RULES)
    await wait_until(daemon, lambda doc: doc.get("sources", {}).get("feed", {}).get("status") == "ok")
    await FEEDS["feed"].push([cost(1, "12.00")])
    with trio.fail_after(20):
        while not [e for e in await alert_events(daemon.url) if e["event"] == "firing"]:
            pass
    got: list[pb.AlertEvent] = []
    token = trio.lowlevel.current_trio_token()
    codes: dict[str, grpc.StatusCode] = {}
    stored: list[dict[str, Any]] = []
    clients: list[dict[str, int]] = []

    async def session() -> None:
        async with open_channel(daemon.grpc_address or "") as channel:
            await until_serving(channel)
            try:
                async for _ in PnlClient(channel, "guess").watch_alerts():
                    pass
            except grpc.aio.AioRpcError as exc:
                codes["wrong token"] = exc.code()
            call = PnlClient(channel, TOKEN).watch_alerts()
            got.append(await call.read())
            clients.append(await asyncio.to_thread(trio.from_thread.run, health_clients, daemon.url,
                                                   trio_token=token))
            # the stream is open: this cost takes the net P&L to -22.00, past the drawdown
            await asyncio.to_thread(trio.from_thread.run, FEEDS["feed"].push, [cost(2, "10.00")],
                                    trio_token=token)
            got.append(await call.read())
            stored.extend(await asyncio.to_thread(trio.from_thread.run, alert_events, daemon.url, 0, 0,
                                                  trio_token=token))
            await asyncio.to_thread(trio.from_thread.run_sync, daemon.stop, trio_token=token)
            assert await call.read() is grpc.aio.EOF
            codes["end"] = await call.code()

    await on_asyncio(session)
    assert codes == {"wrong token": grpc.StatusCode.UNAUTHENTICATED,
                     "end": grpc.StatusCode.OK}  # the daemon stopping ends the stream with OK
    assert clients[0].get("grpc") == 1  # the open WatchAlerts stream is a gRPC client
    first, second = got
    assert (first.alert, first.event, first.current, first.value) == ("budget", "firing", True, "12.00")
    assert (second.alert, second.event, second.current, second.value) == (
        "drawdown", "firing", False, "-22.00")
    epoch, seq = second.epoch, second.seq
    assert second.explain == f"/api/pnl/explain?from={epoch}:{seq - 1}&to={epoch}:{seq}"
    by_id = {e["id"]: e for e in stored}
    assert as_body(first) == by_id[first.id]  # the same fields as the WebSocket message
    assert as_body(second) == by_id[second.id]


def body(i: int, alert: str = "budget", event: str = "firing") -> dict[str, Any]:
    return {"id": i, "alert": alert, "event": event, "severity": "warning", "kind": "threshold",
            "ts": 1_796_000_000_000 + i, "epoch": "e", "seq": i, "description": "d", "text": "t",
            "explain": f"/api/pnl/explain?from=e:{i - 1}&to=e:{i}", "value": f"{i}.00"}


def test_a_stream_behind_the_ring_drops_to_the_latest_state() -> None:
    async def scenario() -> tuple[list[pb.AlertEvent], int]:
        board = AlertBoard(size=8)
        board.publish([body(1)], [body(1)])
        sent: list[pb.AlertEvent] = []
        gate = asyncio.Event()

        async def write(data: bytes) -> None:  # a client whose window is full until the gate opens
            sent.append(pb.AlertEvent.FromString(data))
            if len(sent) == 2:
                await gate.wait()

        stream = asyncio.ensure_future(watch(board, write))
        await asyncio.sleep(0)  # the stream sends the current alert, then waits for more
        board.publish([body(2, "drawdown")], [body(1), body(2, "drawdown")])
        for _ in range(3):
            await asyncio.sleep(0)  # the stream is stuck writing event 2
        for i in range(3, 30):  # 27 events while it is stuck: more than the ring holds
            board.publish([body(i, "drawdown", "resolved" if i % 2 else "firing")],
                          [body(1)] + ([body(i, "drawdown")] if i % 2 == 0 else []))
        held = len(board.ring)
        gate.set()
        for _ in range(5):
            await asyncio.sleep(0)
        board.publish([body(30, "drawdown", "resolved")], [body(1)])
        for _ in range(5):
            await asyncio.sleep(0)
        board.close()
        await stream
        return sent, held

    sent, held = asyncio.run(scenario())
    assert held == 8
    assert [(e.id, e.current) for e in sent] == [(1, True), (2, False), (1, True), (30, False)]


def test_events_lost_before_the_board_drop_every_stream_to_the_latest_state() -> None:
    async def scenario() -> list[tuple[int, bool]]:
        board = AlertBoard()
        board.publish([body(1)], [body(1)])
        sent: list[tuple[int, bool]] = []

        async def write(data: bytes) -> None:
            event = pb.AlertEvent.FromString(data)
            sent.append((event.id, event.current))

        stream = asyncio.ensure_future(watch(board, write))
        await asyncio.sleep(0)
        board.publish([body(2)], [body(2)])  # in order: sent as it is
        await asyncio.sleep(0)
        board.publish([body(9), body(10)], [body(2), body(10, "drawdown")], gap=True)
        await asyncio.sleep(0)
        board.close()
        await stream
        return sent

    assert asyncio.run(scenario()) == [(1, True), (2, False), (2, True), (10, True)]
