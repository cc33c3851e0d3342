"""Helpers of the gRPC tests: run grpc.aio client code from trio, wait for the hub."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import grpc
import trio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from northstard.core.mergepatch import Doc
from northstard.core.records import Cost
from northstard.daemon import Daemon
from northstard.edges.grpc.client import PnlClient, open_channel

T = TypeVar("T")
GRPC = {"port": 0, "shutdown_grace_s": 1.0}
CLIENT_LIMIT_S = 30


async def on_asyncio(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``function(*args)`` on a fresh asyncio loop in a worker thread (bounded in time)."""

    async def bounded() -> T:
        return await asyncio.wait_for(function(*args), CLIENT_LIMIT_S)

    return await trio.to_thread.run_sync(asyncio.run, bounded())


async def until_serving(channel: grpc.aio.Channel) -> None:
    """Wait until health says SERVING (the edge has had its first snapshot)."""
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
    async for answer in watch:
        if answer.status == health_pb2.HealthCheckResponse.SERVING:
            break
    watch.cancel()


async def with_client(daemon: Daemon, use: Callable[[PnlClient], Awaitable[T]],
                      token: str | None = None) -> T:
    """``use(client)`` on a channel to the daemon's gRPC edge once it serves, from a trio test."""
    assert daemon.grpc_address is not None

    async def session() -> T:
        async with open_channel(daemon.grpc_address or "") as channel:
            await until_serving(channel)
            return await use(PnlClient(channel, token))

    return await on_asyncio(session)


async def wait_until(daemon: Daemon, done: Callable[[Doc], bool]) -> None:
    """Wait (without sleeping) until the hub's document satisfies ``done``."""
    with daemon.hub.subscribe("test", daemon.hub.position) as sub:
        while not done(daemon.hub.doc):
            await sub.next_message()


def cost(i: int, amount: str = "1.10") -> Cost:
    return Cost(id=f"c{i}", amount=Decimal(amount) * i, category="ai", model="claude-sonnet-4",
                ts=datetime.now(UTC))


def costs_total(doc: Doc) -> str | None:
    total: str | None = doc.get("costs", {}).get("total")
    return total


def code_of(exc: BaseException) -> grpc.StatusCode:
    assert isinstance(exc, grpc.aio.AioRpcError), exc
    return exc.code()
