"""``northstar.v1.PnlStream`` on the gRPC server's asyncio loop.

Everything here runs on that one loop thread. A stream is a position and a
loop (``pump``): catch up from the ``EventRing`` (pre-encoded bytes, sent as
they are: the method handlers have no response serializer), then wait for the
next publish. ``context.write`` waits while the client's HTTP/2 window is
full, so a slow stream holds one event and its position, and gets one merged
delta when it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.actors.hub import RESUME_BUDGET, RING_MAX_BYTES, Position, ResumeBudget
from northstard.edges.grpc.queries import history_response, read_history, request_range, sources_response
from northstard.edges.grpc.ring import EventRing, Published
from northstard.policy.auth import bearer, digest
from northstard.policy.limits import Limits, LimitSettings, RateLimiter

__all__ = ["SERVICE", "Backend", "Feed", "method_handlers", "pump"]

SERVICE = "northstar.v1.PnlStream"
Context = grpc.aio.ServicerContext[Any, Any]


class Feed:
    """The ring, and the wake-up of every waiting stream when something is published."""

    def __init__(self, ring_size: int, ring_max_bytes: int = RING_MAX_BYTES) -> None:
        self.ring = EventRing(ring_size, ring_max_bytes)
        self.closing = False
        self.streams = 0
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Feed {self.ring!r} streams={self.streams} closing={self.closing}>"

    def publish(self, item: Published) -> None:
        self.ring.publish(item)
        self._wake()

    def close(self) -> None:
        """Every stream ends (with OK) at its next step."""
        self.closing = True
        self._closed.set()
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the feed closes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)


async def pump(
    feed: Feed,
    position: Position | None,
    write: Callable[[bytes], Awaitable[None]],
    interval: float = 0.0,
    sent: Callable[[str], None] = lambda kind: None,
) -> None:
    """Send a stream what it lacks, whenever it can take more, until the feed closes."""
    while not feed.closing:
        event = feed.ring.catch_up(position)
        if event is None:
            await feed.wait_changed()
            continue
        await write(event.data)
        position = event.position
        sent(event.kind)
        if interval:
            await feed.pause(interval)


@dataclass(frozen=True)
class Backend:
    """What the handlers read besides the feed; every callable is safe to call on the loop."""

    db_path: Path
    sources: Callable[[], Awaitable[list[dict[str, Any]]]]
    max_rate_hz: float = 0.0
    streams_changed: Callable[[int], None] = lambda delta: None
    sent: Callable[[str], None] = lambda kind: None
    limits: LimitSettings = field(default_factory=LimitSettings)  # the stream caps of [limits]
    token_keys: bool = False  # auth is on: a stream counts against its bearer token's cap
    refused: Callable[[str], None] = lambda reason: None


def _interval(requested: float, cap: float) -> float:
    """Seconds between events: the lower of the requested and the server's rate (0 = none)."""
    rates = [r for r in (requested, cap) if r > 0]
    return 1.0 / min(rates) if rates else 0.0


def peer_host(peer: str) -> str:
    """The address in a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``); empty for Unix."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return ""
    return rest.rpartition(":")[0].strip("[]")


def _token_id(context: Context) -> str | None:
    """The short id (as ``northstard.policy.auth`` names tokens) of the call's bearer token."""
    for key, value in context.invocation_metadata() or ():
        if key.lower() == "authorization" and isinstance(value, str):
            token = bearer(value)
            return digest(token)[:16] if token else None
    return None


class PnlStream:
    def __init__(self, feed: Feed, backend: Backend, resume: ResumeBudget = RESUME_BUDGET) -> None:
        self.feed = feed
        self.backend = backend
        self.limits = Limits(backend.limits)
        # resumes per connection (the peer string names one: address and port), bounded LRU
        self.resumes = RateLimiter(resume.rate_per_s, resume.burst,
                                   backend.limits.max_tracked_clients)

    async def subscribe(self, request: pb.SubscribeRequest, context: Context) -> None:
        rate = request.max_rate_hz
        if not math.isfinite(rate) or rate < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "max_rate_hz: must be >= 0")
        position = None
        if request.HasField("resume"):
            position = Position(request.resume.epoch, request.resume.seq)
            await self._spend_resume(context)
        backend, feed = self.backend, self.feed
        key = await self._take_slot(context)
        feed.streams += 1
        backend.streams_changed(1)
        try:
            await pump(feed, position, context.write, _interval(rate, backend.max_rate_hz),
                       backend.sent)
        finally:
            self.limits.streams.release(key)
            feed.streams -= 1
            backend.streams_changed(-1)

    async def _spend_resume(self, context: Context) -> None:
        """One resume from this connection's budget; RESOURCE_EXHAUSTED when it is spent."""
        wait = self.resumes.take(context.peer(), asyncio.get_running_loop().time())
        if wait:
            self.backend.refused("grpc_resumes")
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"too many resumes on this connection; retry in {wait:.1f} s")

    async def _take_slot(self, context: Context) -> str | None:
        """A stream slot (total, and per token or address); RESOURCE_EXHAUSTED over a cap."""
        principal = _token_id(context) if self.backend.token_keys else None
        key = self.limits.stream_key(peer_host(context.peer()), principal)
        cap = self.limits.streams.acquire(key)
        if cap is not None:
            self.backend.refused(f"grpc_streams_{cap}")
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self.limits.stream_refusal(cap, key))
        return key

    async def get_current(self, request: pb.GetCurrentRequest, context: Context) -> bytes:
        ring = self.feed.ring
        if not ring.ready:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no snapshot yet")
        return ring.snapshot().data

    async def get_history(
        self, request: pb.GetHistoryRequest, context: Context
    ) -> pb.GetHistoryResponse:
        try:
            resolution, from_ms, to_ms = request_range(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        rows = await asyncio.to_thread(read_history, self.backend.db_path, resolution, from_ms,
                                       to_ms)
        return history_response(resolution, from_ms, to_ms, rows)

    async def list_sources(
        self, request: pb.ListSourcesRequest, context: Context
    ) -> pb.ListSourcesResponse:
        return sources_response(await self.backend.sources())


def method_handlers(service: PnlStream) -> grpc.GenericRpcHandler:
    """The service's handlers; Subscribe and GetCurrent send pre-encoded bytes as they are."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Subscribe": grpc.unary_stream_rpc_method_handler(
            service.subscribe,
            request_deserializer=pb.SubscribeRequest.FromString,
        ),
        "GetCurrent": grpc.unary_unary_rpc_method_handler(
            service.get_current,
            request_deserializer=pb.GetCurrentRequest.FromString,
        ),
        "GetHistory": grpc.unary_unary_rpc_method_handler(
            service.get_history,
            request_deserializer=pb.GetHistoryRequest.FromString,
            response_serializer=pb.GetHistoryResponse.SerializeToString,
        ),
        "ListSources": grpc.unary_unary_rpc_method_handler(
            service.list_sources,
            request_deserializer=pb.ListSourcesRequest.FromString,
            response_serializer=pb.ListSourcesResponse.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)
