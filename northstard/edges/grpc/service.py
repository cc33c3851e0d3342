"""``northstar.v1.PnlStream`` on the gRPC server's asyncio loop.

Everything here runs on that one loop thread. A stream is a position and a
loop (``pump``): catch up through the ``Feed`` (the hub's messages, their
protobuf encoding built once for every stream and sent as it is: the method
handlers have no response serializer), then wait for the next publish.
``context.write`` waits while the client's HTTP/2 window is full, so a slow
stream holds one event and its position, and gets one merged delta when it
drains.
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
from northstard.actors.hub import RESUME_BUDGET, ResumeBudget
from northstard.core.backplane.settings import served_by_core
from northstard.core.message import DELTA, SNAPSHOT, Message
from northstard.core.position import Position
from northstard.edges.grpc.alertwatch import AlertBoard, watch
from northstard.edges.grpc.convert import delta_event, snapshot_event
from northstard.edges.grpc.queries import (
    explain_response,
    history_response,
    read_explain,
    read_history,
    request_range,
    sources_response,
)
from northstard.errors import RequestError
from northstard.policy.auth import bearer, digest
from northstard.policy.limits import Limits, LimitSettings, RateLimiter

__all__ = ["SERVICE", "TRANSPORT", "Backend", "CatchUp", "Feed", "method_handlers", "pump"]

SERVICE = "northstar.v1.PnlStream"
TRANSPORT = "grpc"
ASKED_MAX = 256  # hub answers shared between two publishes (one per starting position), at most
Context = grpc.aio.ServicerContext[object, object]
CatchUp = Callable[[Position | None], Awaitable[Message | None]]
"""Ask the hub (on trio's thread) for the message that brings ``position`` to now."""


async def _no_hub(position: Position | None) -> Message | None:
    return None


class Feed:
    """The hub's newest message on the loop, and the wake-up of every waiting stream.

    The gRPC edge keeps no ring of its own: the feeder hands over the hub's
    newest ``Message`` and the hub's snapshot ``Message`` at the same position
    (the same objects the WebSocket/SSE edges send, with their encodings
    cached per transport). A stream at the newest delta's start (or inside a
    merged one) gets that delta; a new stream, or one from another epoch, gets
    the snapshot; a stream further behind asks the hub itself (``catch_up``,
    one hop to trio's thread, shared by every stream asking from the same
    position until the next publish), which merges from its one ring and keeps
    the merged message for every client at that place, whatever its transport.
    Held: two messages (references, no copy) and at most ``ASKED_MAX`` answers.
    """

    def __init__(self, catch_up: CatchUp = _no_hub) -> None:
        self.latest: Message | None = None
        self.current: Message | None = None  # the snapshot at latest's position
        self.encoded = 0  # protobuf events built (each message once)
        self.closing = False
        self.streams = 0
        self._catch_up = catch_up
        self._asked: dict[Position, asyncio.Future[Message | None]] = {}  # until the next publish
        self.changed = asyncio.Event()  # set (and replaced) at the next publish
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Feed {self.latest!r} streams={self.streams} closing={self.closing}>"

    @property
    def ready(self) -> bool:
        """Whether there is a snapshot to send (an empty store has none until the first change)."""
        return self.current is not None and bool(self.current.doc)

    def publish(self, message: Message, snapshot: Message) -> None:
        self.latest, self.current = message, snapshot
        self._asked = {}
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        """Every stream ends (with OK) at its next step."""
        self.closing = True
        self._closed.set()
        self.changed.set()

    async def next_for(self, position: Position | None) -> Message | None:
        """The message that brings a stream at ``position`` up to date; None when it is
        (or while the store is empty)."""
        latest, current = self.latest, self.current
        if latest is None or current is None or not self.ready:
            return None
        if position is None or position.epoch != latest.position.epoch:
            return current
        if position.seq == latest.position.seq:
            return None
        if latest.kind == DELTA and latest.prev <= position.seq < latest.position.seq:
            return latest
        # behind the newest delta (the hub's ring merges), or ahead of the feed (the hub
        # answered this stream directly, or a resume from a position that never was)
        return await self._ask(position)

    async def _ask(self, position: Position) -> Message | None:
        """The hub's answer for ``position``: one hop shared by every stream asking the same
        until the next publish (a burst of late streams costs one hop per starting point)."""
        asked = self._asked.get(position)
        if asked is None:
            if len(self._asked) >= ASKED_MAX:
                return await self._catch_up(position)
            asked = self._asked[position] = asyncio.ensure_future(self._catch_up(position))
        return await asyncio.shield(asked)  # a stream that goes away does not cancel the others

    def encode(self, message: Message) -> bytes:
        """The PnlEvent bytes of ``message``, built once for every stream."""
        return message.encoded(TRANSPORT, self._encode)

    def _encode(self, message: Message) -> bytes:
        self.encoded += 1
        epoch, seq = message.position.epoch, message.position.seq
        if message.kind == SNAPSHOT:
            return snapshot_event(epoch, seq, message.ts_ms, message.doc)
        return delta_event(epoch, seq, message.prev, message.ts_ms, message.patch)

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
        changed = feed.changed  # taken before looking: a publish while asking the hub wakes us
        message = await feed.next_for(position)
        if message is None:
            await changed.wait()
            continue
        await write(feed.encode(message))
        position = message.position
        sent(message.kind)
        if interval:
            await feed.pause(interval)


@dataclass(frozen=True)
class Backend:
    """What the handlers read besides the feed; every callable is safe to call on the loop."""

    db_path: Path
    sources: Callable[[], Awaitable[list[dict[str, object]]]]
    max_rate_hz: float = 0.0
    streams_changed: Callable[[int], None] = lambda delta: None
    sent: Callable[[str], None] = lambda kind: None
    limits: LimitSettings = field(default_factory=LimitSettings)  # the stream caps of [limits]
    token_keys: bool = False  # auth is on: a stream counts against its bearer token's cap
    refused: Callable[[str], None] = lambda reason: None
    catch_up: CatchUp = _no_hub  # the hub's catch_up, one hop to trio's thread
    core_url: str | None = None  # an edge (no database): the core's [backplane] core_url, maybe ""


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
    def __init__(self, feed: Feed, backend: Backend, resume: ResumeBudget = RESUME_BUDGET,
                 alerts: AlertBoard | None = None) -> None:
        self.feed = feed
        self.backend = backend
        self.alerts = alerts
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

    async def watch_alerts(self, request: pb.WatchAlertsRequest, context: Context) -> None:
        """The alerts now, then each transition; a stream slot like ``Subscribe``."""
        if self.alerts is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this daemon runs no alerts")
        key = await self._take_slot(context)
        self.backend.streams_changed(1)  # a client of this transport, as Subscribe's are
        try:
            await watch(self.alerts, context.write)
        finally:
            self.limits.streams.release(key)
            self.backend.streams_changed(-1)

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
        current = self.feed.current
        if current is None or not self.feed.ready:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no snapshot yet")
        return self.feed.encode(current)

    async def get_history(
        self, request: pb.GetHistoryRequest, context: Context
    ) -> pb.GetHistoryResponse:
        try:
            resolution, from_ms, to_ms = request_range(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await self._needs_database(context, "history")
        rows = await asyncio.to_thread(read_history, self.backend.db_path, resolution, from_ms,
                                       to_ms)
        return history_response(resolution, from_ms, to_ms, rows)

    async def _needs_database(self, context: Context, what: str) -> None:
        """On an edge (no database): UNAVAILABLE naming the core, as REST's 503 ``served_by_core``."""
        if self.backend.core_url is not None:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"served_by_core: {served_by_core(self.backend.core_url, what)}")

    async def list_sources(
        self, request: pb.ListSourcesRequest, context: Context
    ) -> pb.ListSourcesResponse:
        return sources_response(await self.backend.sources())

    async def explain(self, request: pb.ExplainRequest, context: Context) -> pb.ExplainResponse:
        await self._needs_database(context, "explain")
        try:
            body = await asyncio.to_thread(read_explain, self.backend.db_path, request)
        except RequestError as exc:
            code = grpc.StatusCode.OUT_OF_RANGE if exc.status == 410 else grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, f"{exc.error}: {exc.detail}")
        return explain_response(body)


def method_handlers(service: PnlStream) -> grpc.GenericRpcHandler:
    """The service's handlers; Subscribe, WatchAlerts and GetCurrent send pre-encoded bytes."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Subscribe": grpc.unary_stream_rpc_method_handler(
            service.subscribe,
            request_deserializer=pb.SubscribeRequest.FromString,
        ),
        "WatchAlerts": grpc.unary_stream_rpc_method_handler(
            service.watch_alerts,
            request_deserializer=pb.WatchAlertsRequest.FromString,
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
        "Explain": grpc.unary_unary_rpc_method_handler(
            service.explain,
            request_deserializer=pb.ExplainRequest.FromString,
            response_serializer=pb.ExplainResponse.SerializeToString,
        ),
        "ListSources": grpc.unary_unary_rpc_method_handler(
            service.list_sources,
            request_deserializer=pb.ListSourcesRequest.FromString,
            response_serializer=pb.ListSourcesResponse.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)
