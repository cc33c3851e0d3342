"""End to end: a real grpc.aio client against the running daemon (gRPC on port 0)."""

from __future__ import annotations

import time
from typing import Any

import grpc
import httpx
import pytest
import trio
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.actors.hub import Position
from northstard.core.mergepatch import apply_patch
from northstard.edges.grpc.auth import digest
from northstard.edges.grpc.client import PnlClient, StreamState, open_channel
from northstard.edges.grpc.convert import (
    doc_from_snapshot,
    snapshot_from_doc,
    timestamp_from_iso,
    timestamp_from_ms,
)

from conftest import DEMO_FAST
from grpc_helpers import (
    GRPC,
    code_of,
    cost,
    costs_total,
    on_asyncio,
    until_serving,
    wait_until,
    with_client,
)
from scripted import FEEDS

SCRIPTED = {"feed": {"plugin": "scripted"}}


async def scripted(start_daemon: Any, grpc: dict[str, Any] | None = None, **sections: Any) -> Any:
    """A daemon whose only source changes when the test pushes (its first poll already in)."""
    daemon = await start_daemon(SCRIPTED, grpc=grpc or GRPC, **sections)
    await wait_until(daemon, lambda doc: doc.get("sources", {}).get("feed", {}).get("status") == "ok")
    return daemon


async def rest(daemon: Any, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(daemon.url + path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def read(call: Any, count: int) -> list[pb.PnlEvent]:
    events = []
    async for event in call:
        events.append(event)
        if len(events) == count:
            break
    call.cancel()
    return events


# -- the stream ------------------------------------------------------------------------


async def test_snapshot_then_gap_free_deltas(start_daemon: Any) -> None:
    daemon = await start_daemon(DEMO_FAST, grpc=GRPC)
    events = await with_client(daemon, lambda client: read(client.subscribe(), 30))
    assert events[0].WhichOneof("body") == "snapshot"
    assert {e.WhichOneof("body") for e in events[1:]} == {"delta"}
    assert len({e.epoch for e in events}) == 1
    state = StreamState()
    typed = pb.Snapshot()
    for previous, current in zip([None, *events], events, strict=False):
        if previous is not None:
            assert current.seq > previous.seq and current.prev_seq <= previous.seq
            patch = json_format.MessageToDict(current.delta.patch)
            patched = apply_patch(json_format.MessageToDict(typed, preserving_proto_field_name=True), patch)
            typed = json_format.ParseDict(patched, pb.Snapshot())  # as a client in any language
        else:
            typed.CopyFrom(current.snapshot)
        state.apply(current)
        assert current.ts.seconds > 0
    assert typed == snapshot_from_doc(state.doc)


async def test_state_equals_rest_current_at_the_same_seq(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon)

    async def follow(client: PnlClient) -> StreamState:
        state = StreamState()
        call = client.subscribe()
        async for event in call:
            state.apply(event)
            if costs_total(state.doc) == "16.50":
                break
        call.cancel()
        return state

    async with trio.open_nursery() as nursery:
        result: dict[str, StreamState] = {}

        async def client() -> None:
            result["state"] = await with_client(daemon, follow)

        nursery.start_soon(client)
        for i in range(1, 6):
            await FEEDS["feed"].push([cost(i)])
    state = result["state"]
    body = await rest(daemon, "/api/pnl/current")
    assert (body["epoch"], body["seq"]) == (state.epoch, state.seq)
    assert body["data"] == state.doc
    assert state.doc["costs"]["by_model"] == {"claude-sonnet-4": "16.50"}
    current = await with_client(daemon, lambda client: client.current())
    assert current.seq == state.seq and doc_from_snapshot(current.snapshot) == state.doc


async def test_resume_after_disconnect_gets_exactly_what_was_missed(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon)
    (first,) = await with_client(daemon, lambda client: read(client.subscribe(), 1))
    state = StreamState()
    state.apply(first)
    for i in range(1, 4):
        await FEEDS["feed"].push([cost(i)])
    await wait_until(daemon, lambda doc: costs_total(doc) == "6.60")
    resume = state.position
    (missed,) = await with_client(daemon, lambda client: read(client.subscribe(resume), 1))
    assert missed.WhichOneof("body") == "delta"
    assert (missed.prev_seq, missed.seq) == (first.seq, daemon.hub.seq)
    state.apply(missed)
    assert state.doc == daemon.hub.doc
    for position in (Position("another-epoch", 3), Position(first.epoch, daemon.hub.seq + 5)):
        (fresh,) = await with_client(daemon, lambda client, p=position: read(client.subscribe(p), 1))
        assert fresh.WhichOneof("body") == "snapshot" and fresh.seq == daemon.hub.seq


async def test_resume_beyond_the_ring_gets_a_snapshot(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon, hub={"ring_size": 2})
    (first,) = await with_client(daemon, lambda client: read(client.subscribe(), 1))
    for i in range(1, 5):
        await FEEDS["feed"].push([cost(i, "1.00")])
        await wait_until(daemon, lambda doc, i=i: costs_total(doc) == f"{i * (i + 1) // 2}.00")
    resume = Position(first.epoch, first.seq)
    (event,) = await with_client(daemon, lambda client: read(client.subscribe(resume), 1))
    assert event.WhichOneof("body") == "snapshot"
    assert doc_from_snapshot(event.snapshot) == daemon.hub.doc


async def test_each_event_is_encoded_once_for_every_stream(start_daemon: Any) -> None:
    daemon = await start_daemon(DEMO_FAST, grpc=GRPC)

    async def five_streams(client: PnlClient) -> list[list[pb.PnlEvent]]:
        import asyncio

        return list(await asyncio.gather(*(read(client.subscribe(), 15) for _ in range(5))))

    streams = await with_client(daemon, five_streams)
    sent = [(e.WhichOneof("body"), e.prev_seq, e.seq) for events in streams for e in events]
    assert daemon.grpc.server is not None
    encoded = daemon.grpc.server.feed.encoded
    assert len(sent) == 75
    assert encoded <= len(set(sent)) + 5 < len(sent)


async def test_a_rate_limited_stream_gets_merged_deltas(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon)
    snapshot_in = trio.Event()
    totals = ["1.10", "3.30", "6.60", "11.00", "16.50"]

    async def follow(client: PnlClient) -> list[pb.PnlEvent]:
        call = client.subscribe(max_rate_hz=1.0)  # one event a second at most
        events = [await call.read()]
        trio.from_thread.run_sync(snapshot_in.set)
        state = StreamState()
        state.apply(events[0])
        while costs_total(state.doc) != totals[-1]:
            events.append(await call.read())
            state.apply(events[-1])
        call.cancel()
        return events

    async with trio.open_nursery() as nursery:
        result: dict[str, list[pb.PnlEvent]] = {}

        async def client() -> None:
            result["events"] = await with_client(daemon, follow)

        nursery.start_soon(client)
        await snapshot_in.wait()
        start = daemon.hub.seq
        for i, total in enumerate(totals, start=1):  # five changes, inside the first second
            await FEEDS["feed"].push([cost(i)])
            await wait_until(daemon, lambda doc, t=total: costs_total(doc) == t)
    first, *deltas = result["events"]
    assert first.WhichOneof("body") == "snapshot"
    assert daemon.hub.seq - start == 5
    assert len(deltas) < 5 and deltas[0].prev_seq <= start and deltas[-1].seq == daemon.hub.seq


async def test_a_bad_rate_is_an_invalid_argument(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon)

    async def subscribe(client: PnlClient) -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await read(client.subscribe(max_rate_hz=-1.0), 1)
        return code_of(raised.value)

    assert await with_client(daemon, subscribe) == grpc.StatusCode.INVALID_ARGUMENT


async def test_shutdown_ends_streams_with_ok(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon)
    reading = trio.Event()

    async def follow(client: PnlClient) -> tuple[grpc.StatusCode, float]:
        call = client.subscribe()
        await call.read()
        trio.from_thread.run_sync(reading.set)
        started = time.monotonic()
        while await call.read() is not grpc.aio.EOF:
            pass
        return await call.code(), time.monotonic() - started

    async with trio.open_nursery() as nursery:
        result: dict[str, Any] = {}

        async def client() -> None:
            result["end"] = await with_client(daemon, follow)

        nursery.start_soon(client)
        await reading.wait()
        daemon.stop()
    code, seconds = result["end"]
    assert code == grpc.StatusCode.OK and seconds < GRPC["shutdown_grace_s"]


# -- health, reflection, auth ------------------------------------------------------------


async def test_health_serving_then_not_serving_on_shutdown(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon)
    serving = trio.Event()

    async def watch() -> list[int]:
        async with open_channel(daemon.grpc_address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            statuses, seen_serving = [], False
            async for answer in stub.Watch(health_pb2.HealthCheckRequest(service="")):
                statuses.append(answer.status)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    check = await stub.Check(
                        health_pb2.HealthCheckRequest(service="northstar.v1.PnlStream"))
                    assert check.status == health_pb2.HealthCheckResponse.SERVING
                    with pytest.raises(grpc.aio.AioRpcError) as raised:
                        await stub.Check(health_pb2.HealthCheckRequest(service="nope"))
                    assert code_of(raised.value) == grpc.StatusCode.NOT_FOUND
                    seen_serving = True
                    trio.from_thread.run_sync(serving.set)
                elif seen_serving:
                    break
        return statuses

    async with trio.open_nursery() as nursery:
        result: dict[str, list[int]] = {}

        async def client() -> None:
            result["statuses"] = await on_asyncio(watch)

        nursery.start_soon(client)
        await serving.wait()
        daemon.stop()
    statuses = result["statuses"]  # NOT_SERVING first if the first snapshot was not in yet
    assert statuses[-2:] == [health_pb2.HealthCheckResponse.SERVING,
                             health_pb2.HealthCheckResponse.NOT_SERVING]
    assert set(statuses[:-2]) <= {health_pb2.HealthCheckResponse.NOT_SERVING}


async def test_reflection_lists_and_describes_the_service(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon)

    async def reflect() -> list[Any]:
        async with open_channel(daemon.grpc_address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                        reflection_pb2.ServerReflectionRequest(
                            file_containing_symbol="northstar.v1.PnlStream")]
            return [answer async for answer in stub.ServerReflectionInfo(iter(requests))]

    listing, described = await on_asyncio(reflect)
    names = {s.name for s in listing.list_services_response.service}
    assert {"northstar.v1.PnlStream", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= names
    from google.protobuf import descriptor_pb2

    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in described.file_descriptor_response.file_descriptor_proto]
    pnl = next(f for f in files if f.name == "northstar/v1/pnl.proto")
    assert [m.name for m in pnl.service[0].method] == ["Subscribe", "GetCurrent", "GetHistory",
                                                       "ListSources", "Explain", "WatchAlerts"]


async def test_calls_without_the_token_are_unauthenticated(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon, {**GRPC, "tokens": [digest("s3cret")]})

    async def calls() -> dict[str, Any]:
        codes: dict[str, Any] = {}
        async with open_channel(daemon.grpc_address) as channel:
            await until_serving(channel)  # health needs no token
            for name, token in (("none", None), ("wrong", "guess")):
                client = PnlClient(channel, token)
                for call in ("current", "stream"):
                    try:
                        if call == "current":
                            await client.current()
                        else:
                            await read(client.subscribe(), 1)
                    except grpc.aio.AioRpcError as exc:
                        codes[f"{call}:{name}"] = (exc.code(), exc.details())
            good = PnlClient(channel, "s3cret")
            codes["current:good"] = (await good.current()).seq
            codes["stream:good"] = (await read(good.subscribe(), 1))[0].WhichOneof("body")
            reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
            try:
                async for _ in reflect.ServerReflectionInfo(
                        iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
                    pass
            except grpc.aio.AioRpcError as exc:
                codes["reflection:none"] = exc.code()
            health = health_pb2_grpc.HealthStub(channel)
            codes["health:none"] = (await health.Check(health_pb2.HealthCheckRequest())).status
        return codes

    codes = await on_asyncio(calls)
    for key in ("current:none", "current:wrong", "stream:none", "stream:wrong"):
        code, details = codes[key]
        assert code == grpc.StatusCode.UNAUTHENTICATED, key
        assert "s3cret" not in details and "guess" not in details
    assert codes["current:good"] == daemon.hub.seq
    assert codes["stream:good"] == "snapshot"
    assert codes["reflection:none"] == grpc.StatusCode.UNAUTHENTICATED
    assert codes["health:none"] == health_pb2.HealthCheckResponse.SERVING


# -- history and sources -----------------------------------------------------------------------


async def test_history_matches_rest_for_the_same_range(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon)
    for i in range(1, 4):
        await FEEDS["feed"].push([cost(i)])
    await wait_until(daemon, lambda doc: costs_total(doc) == "6.60")
    now_ms = int(time.time() * 1000)
    for resolution, span in (("1m", 3_600_000), ("5m", 7_200_000), ("1h", 86_400_000),
                             ("1d", 5 * 86_400_000)):
        body = await rest(daemon, "/api/pnl/history", resolution=resolution,
                          **{"from": str(now_ms - span), "to": str(now_ms + 60_000)})
        request = pb.GetHistoryRequest(resolution=resolution, from_time=timestamp_from_ms(now_ms - span),
                                       to_time=timestamp_from_ms(now_ms + 60_000))
        answer = await with_client(daemon, lambda client, r=request: client.history(r))
        assert answer.resolution == body["resolution"] == resolution
        assert answer.from_time == timestamp_from_iso(body["from"])
        assert answer.to_time == timestamp_from_iso(body["to"])
        assert body["buckets"], resolution
        assert len(answer.buckets) == len(body["buckets"])
        for typed, plain in zip(answer.buckets, body["buckets"], strict=True):
            assert typed.start == timestamp_from_ms(plain["start_ms"])
            for series in ("net", "trading", "revenue", "costs"):
                assert json_format.MessageToDict(getattr(typed, series)) == plain[series], series


async def test_bad_history_ranges_are_invalid_arguments(start_daemon: Any) -> None:
    daemon = await scripted(start_daemon)
    bad = [pb.GetHistoryRequest(resolution="2m"),
           pb.GetHistoryRequest(from_time=timestamp_from_ms(2000), to_time=timestamp_from_ms(1000)),
           pb.GetHistoryRequest(from_time=timestamp_from_ms(0),
                                to_time=timestamp_from_ms(99_999_999_999_999))]

    async def ask(client: PnlClient) -> list[tuple[grpc.StatusCode, str]]:
        answers = []
        for request in bad:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await client.history(request)
            answers.append((raised.value.code(), raised.value.details() or ""))
        return answers

    answers = await with_client(daemon, ask)
    assert [code for code, _ in answers] == [grpc.StatusCode.INVALID_ARGUMENT] * 3
    assert "resolution" in answers[0][1] and "before" in answers[1][1] and "too long" in answers[2][1]


async def test_sources_match_rest(start_daemon: Any) -> None:
    daemon = await start_daemon({**SCRIPTED, **DEMO_FAST}, grpc=GRPC)
    await wait_until(daemon, lambda doc: [s.get("status") for s in doc.get("sources", {}).values()]
                     == ["ok", "ok"])
    listed = await with_client(daemon, lambda client: client.sources())
    body = await rest(daemon, "/api/sources")
    typed = [json_format.MessageToDict(s, preserving_proto_field_name=True,
                                       always_print_fields_with_no_presence=True)
             for s in listed.sources]
    assert [s["name"] for s in typed] == [s["name"] for s in body["sources"]] == ["demo", "feed"]
    stable = ("name", "plugin", "interval_s", "enabled", "breaker", "streaming")
    for mine, theirs in zip(typed, body["sources"], strict=True):
        assert {k: mine[k] for k in stable} == {k: theirs[k] for k in stable}
        assert set(theirs) <= set(mine)
