"""A typed grpc.aio client for ``northstar.v1.PnlStream``, and a stream follower.

    async with open_channel("grpc://127.0.0.1:8081") as channel:
        client = PnlClient(channel, token="...")
        state = StreamState()
        async for event in client.subscribe(resume=state.position):
            state.apply(event)          # state.doc is the snapshot document at state.seq

Used by ``northstard tail``, the tests and the benchmark. Calls go through
``channel.unary_unary`` / ``unary_stream`` with the message classes, so no
untyped generated stub is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.actors.hub import Position
from northstard.core.mergepatch import Doc, apply_patch
from northstard.edges.grpc.convert import doc_from_snapshot, patch_from_struct

__all__ = ["GapError", "PnlClient", "StreamState", "open_channel", "parse_target"]

PREFIX = "/northstar.v1.PnlStream/"
CLIENT_OPTIONS = [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 10_000)]


def parse_target(url: str) -> tuple[str, bool]:
    """``host:port``, ``grpc://host:port`` or ``grpcs://host:port`` (TLS) -> (target, tls)."""
    for scheme, tls in (("grpcs://", True), ("grpc://", False), ("https://", True), ("http://", False)):
        if url.startswith(scheme):
            return url[len(scheme):].rstrip("/"), tls
    return url, False


@asynccontextmanager
async def open_channel(
    url: str, root_certificates: bytes | None = None, options: list[tuple[str, object]] | None = None
) -> AsyncIterator[grpc.aio.Channel]:
    target, tls = parse_target(url)
    opts = CLIENT_OPTIONS + (options or [])
    if tls or root_certificates is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates)
        channel = grpc.aio.secure_channel(target, credentials, options=opts)
    else:
        channel = grpc.aio.insecure_channel(target, options=opts)
    async with channel:
        yield channel


class PnlClient:
    def __init__(self, channel: grpc.aio.Channel, token: str | None = None) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._subscribe = channel.unary_stream(
            PREFIX + "Subscribe", request_serializer=pb.SubscribeRequest.SerializeToString,
            response_deserializer=pb.PnlEvent.FromString,
        )
        self._current = channel.unary_unary(
            PREFIX + "GetCurrent", request_serializer=pb.GetCurrentRequest.SerializeToString,
            response_deserializer=pb.PnlEvent.FromString,
        )
        self._history = channel.unary_unary(
            PREFIX + "GetHistory", request_serializer=pb.GetHistoryRequest.SerializeToString,
            response_deserializer=pb.GetHistoryResponse.FromString,
        )
        self._alerts = channel.unary_stream(
            PREFIX + "WatchAlerts", request_serializer=pb.WatchAlertsRequest.SerializeToString,
            response_deserializer=pb.AlertEvent.FromString,
        )
        self._sources = channel.unary_unary(
            PREFIX + "ListSources", request_serializer=pb.ListSourcesRequest.SerializeToString,
            response_deserializer=pb.ListSourcesResponse.FromString,
        )

    def subscribe(
        self, resume: Position | None = None, max_rate_hz: float = 0.0
    ) -> grpc.aio.UnaryStreamCall[object, pb.PnlEvent]:
        request = pb.SubscribeRequest(max_rate_hz=max_rate_hz)
        if resume is not None:
            request.resume.epoch, request.resume.seq = resume.epoch, resume.seq
        call: grpc.aio.UnaryStreamCall[Any, pb.PnlEvent] = self._subscribe(
            request, metadata=self.metadata
        )
        return call

    def watch_alerts(self) -> grpc.aio.UnaryStreamCall[Any, pb.AlertEvent]:
        call: grpc.aio.UnaryStreamCall[Any, pb.AlertEvent] = self._alerts(
            pb.WatchAlertsRequest(), metadata=self.metadata)
        return call

    async def current(self) -> pb.PnlEvent:
        event: pb.PnlEvent = await self._current(pb.GetCurrentRequest(), metadata=self.metadata)
        return event

    async def history(self, request: pb.GetHistoryRequest) -> pb.GetHistoryResponse:
        response: pb.GetHistoryResponse = await self._history(request, metadata=self.metadata)
        return response

    async def sources(self) -> pb.ListSourcesResponse:
        response: pb.ListSourcesResponse = await self._sources(
            pb.ListSourcesRequest(), metadata=self.metadata
        )
        return response


class GapError(Exception):
    """A delta does not apply to the state held (another epoch, or it starts after it)."""


@dataclass
class StreamState:
    """The client side of the protocol: apply snapshots and deltas, refuse a gap."""

    epoch: str = ""
    seq: int = -1
    doc: Doc = field(default_factory=dict)

    @property
    def position(self) -> Position | None:
        return Position(self.epoch, self.seq) if self.seq >= 0 else None

    def apply(self, event: pb.PnlEvent) -> str:
        """Apply ``event``; returns its kind ("snapshot", "delta", or "old" for one already held)."""
        kind = str(event.WhichOneof("body"))
        if kind == "snapshot":
            self.epoch, self.seq = event.epoch, event.seq
            self.doc = doc_from_snapshot(event.snapshot)
            return "snapshot"
        if kind != "delta":
            raise GapError(f"an event with no body at {event.epoch}:{event.seq}")
        if event.epoch != self.epoch or event.prev_seq > self.seq:
            raise GapError(f"at {self.epoch}:{self.seq}, a delta {event.epoch}:{event.prev_seq}..{event.seq}")
        if event.seq <= self.seq:
            return "old"
        self.doc = apply_patch(self.doc, patch_from_struct(event.delta.patch))
        self.seq = event.seq
        return "delta"
