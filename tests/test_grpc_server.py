"""The grpc.aio server on its own: health before the first snapshot, TLS (no daemon)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from northstard.core.pnl import Book
from northstard.edges.grpc.client import PnlClient, open_channel
from northstard.edges.grpc.ring import Published
from northstard.edges.grpc.server import GrpcServer, GrpcSettings
from northstard.edges.grpc.service import Backend

from certs import self_signed
from unit_helpers import T0

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def no_sources() -> list[dict[str, Any]]:
    return []


def server(tmp_path: Path, **settings: Any) -> GrpcServer:
    return GrpcServer(GrpcSettings(port=0, shutdown_grace_s=0.5, **settings),
                      Backend(db_path=tmp_path / "none.db", sources=no_sources))


def first_change() -> Published:
    book = Book()
    return Published("delta", "e", 1, 0, 1000, book.document(T0), {"as_of": "x"})


def test_health_not_serving_until_a_snapshot_then_not_serving_on_stop(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[int], grpc.StatusCode]:
        grpc_server = server(tmp_path)
        address = await grpc_server.start()
        assert grpc_server.feed is not None
        grpc_server.deliver(Published("snapshot", "e", 0, 0, 0, {}, {}))  # an empty store
        statuses: list[int] = []
        async with open_channel(address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await PnlClient(channel).current()
            unavailable = raised.value.code()
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="northstar.v1.PnlStream"))
            statuses.append((await watch.read()).status)
            grpc_server.deliver(first_change())
            statuses.append((await watch.read()).status)
            stopping = asyncio.create_task(grpc_server.stop())
            statuses.append((await watch.read()).status)
            await stopping
        return statuses, unavailable

    statuses, unavailable = asyncio.run(scenario())
    assert statuses == [NOT_SERVING, SERVING, NOT_SERVING]
    assert unavailable == grpc.StatusCode.UNAVAILABLE


def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)

    async def scenario() -> tuple[int, grpc.StatusCode]:
        grpc_server = server(tmp_path, tls_cert=cert, tls_key=key)
        address = await grpc_server.start()
        grpc_server.deliver(first_change())
        async with open_channel(f"grpcs://{address}", root_certificates=cert.read_bytes()) as channel:
            event = await PnlClient(channel).current()
        async with open_channel(address) as plain:  # no TLS: the handshake fails
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await PnlClient(plain).current()
        await grpc_server.stop()
        return event.seq, raised.value.code()

    seq, refused = asyncio.run(scenario())
    assert seq == 1 and refused == grpc.StatusCode.UNAVAILABLE
