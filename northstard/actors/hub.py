"""The hub: the current document, a ring of recent deltas, and the subscribers.

A subscriber is only a position ``(epoch, seq)``: no per-client queue. When
it can take a message it asks the hub to ``catch_up`` from its position and
gets the newest delta (pre-encoded once for everyone), a merged delta over
several changes (merge patches compose; the merge is encoded once per
starting point), or a fresh snapshot when its position is no longer in the
ring or belongs to another epoch. A slow client therefore holds O(1) memory,
never slows the others, and still ends on the exact current state.

The ring (``patchring.PatchRing``) is bounded in entries (``[hub] ring_size``)
and in bytes (``[hub] ring_max_bytes``), oldest first, and merges from any
held position in O(log n) compositions. The merged deltas already encoded are
kept per starting position until the next publish, at most
``MERGED_MAX_ENTRIES`` of them and ``MERGED_MAX_BYTES`` in all (oldest first).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import trio

from northstard.core.change import Change, delta_message, snapshot_message
from northstard.core.mergepatch import Doc
from northstard.core.money import DIGITS
from northstard.core.patchring import MergedCache, PatchRing
from northstard.core.tokenbucket import TokenBucket

__all__ = [
    "RESUME_BUDGET", "RING_MAX_BYTES", "Hub", "HubClosed", "Position", "ResumeBudget",
    "Subscription", "parse_position", "run_hub",
]

RING_MAX_BYTES = 8 * 1024 * 1024  # the default of [hub] ring_max_bytes (one copy)
MERGED_MAX_ENTRIES = 256  # encoded merged deltas kept between two publishes
MERGED_MAX_BYTES = 4 * 1024 * 1024  # ... and their bytes at most
RECENT_CHANGES = 64  # a poll from within this many changes of now is a poller's step, not a resume


class HubClosed(Exception):
    """The daemon is shutting down: streams end."""


@dataclass(frozen=True)
class Position:
    epoch: str
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.seq}"


def parse_position(text: str) -> Position:
    """``EPOCH:SEQ`` to a Position; ValueError when malformed."""
    epoch, sep, seq = text.strip().strip('"').rpartition(":")
    if not sep or not epoch or DIGITS.fullmatch(seq) is None or len(seq) > 18:
        raise ValueError("expected EPOCH:SEQ")
    return Position(epoch, int(seq))


@dataclass(frozen=True)
class ResumeBudget:
    """What one connection may ask to be caught up from an old position: a token bucket.

    ``[hub] resume_rate_per_s`` tokens a second, at most ``resume_burst``; each
    resume costs one. Over it, the edge refuses (WebSocket: error then close
    1008; REST: 429 with Retry-After; gRPC: RESOURCE_EXHAUSTED).
    """

    rate_per_s: float = 5.0
    burst: int = 20

    def bucket(self) -> TokenBucket:
        return TokenBucket.full(self.rate_per_s, self.burst)


RESUME_BUDGET = ResumeBudget()  # the defaults of [hub] resume_rate_per_s and resume_burst


@dataclass(frozen=True)
class Message:
    """What a subscriber is sent next: text, and the position it moves the client to."""

    text: str
    kind: str
    position: Position


class Hub:
    def __init__(self, ring_size: int = 10000, ring_max_bytes: int = RING_MAX_BYTES,
                 budget: ResumeBudget = RESUME_BUDGET) -> None:
        self.ring_size = ring_size
        self.ring_max_bytes = ring_max_bytes
        self.budget = budget
        self.epoch = ""
        self.seq = 0
        self.ts_ms = 0
        self.doc: Doc = {}
        self._latest: Change | None = None
        self._snapshot: str | None = None
        self.ring = PatchRing(ring_size, ring_max_bytes)
        self._merged: MergedCache[str] = MergedCache(MERGED_MAX_ENTRIES, MERGED_MAX_BYTES)
        self._waiting: set[Subscription] = set()
        self.closed = False
        self.clients: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"<Hub {self.epoch}:{self.seq} ring={len(self.ring)} bytes={self.ring.nbytes} "
            f"clients={dict(self.clients)} closed={self.closed}>"
        )

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.seq)

    def reset(self, epoch: str, seq: int, doc: Doc, ts_ms: int) -> None:
        """Start from a recovered document (no deltas held yet)."""
        self.epoch, self.seq, self.doc, self.ts_ms = epoch, seq, doc, ts_ms
        self.ring.clear()
        self._merged.clear()
        self._latest = None
        self._snapshot = None

    def publish(self, change: Change) -> None:
        if change.epoch != self.epoch or change.seq != self.seq + 1:
            self.ring.clear()  # a jump: nothing before it can be merged across
        self.epoch, self.seq, self.doc, self.ts_ms = (
            change.epoch, change.seq, change.doc, change.ts_ms
        )
        self.ring.append(change.prev, change.seq, change.patch_json, change.patch)
        self._latest = change
        self._snapshot = None
        self._merged.clear()
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, set()
        for subscription in waiting:
            subscription.poke()

    def snapshot(self) -> Message:
        if self._snapshot is None:
            if self._latest is not None:
                self._snapshot = self._latest.snapshot_message
            else:
                self._snapshot = snapshot_message(self.epoch, self.seq, self.ts_ms, self.doc)
        return Message(self._snapshot, "snapshot", self.position)

    def holds(self, position: Position) -> bool:
        """Whether the changes after ``position`` are all in the ring."""
        if position.epoch != self.epoch or position.seq > self.seq:
            return False
        return position.seq == self.seq or self.ring.holds(position.seq)

    def is_resume(self, position: Position | None) -> bool:
        """Whether a poll from ``position`` is a resume to budget: a merge from further back
        than ``RECENT_CHANGES`` (a poller's usual step, or a snapshot, is not)."""
        return (position is not None and self.holds(position)
                and self.seq - position.seq > RECENT_CHANGES)

    def catch_up(self, position: Position | None) -> Message | None:
        """The message that brings a client at ``position`` to now; None if it is current."""
        if position is None or not self.holds(position):
            return self.snapshot()
        if position.seq == self.seq:
            return None
        if position.seq == self.seq - 1 and self._latest is not None:
            return Message(self._latest.delta_message, "delta", self.position)
        text = self._merged.get(position.seq)
        if text is None:
            prev, patch = self.ring.merged(position.seq)
            text = delta_message(self.epoch, self.seq, prev, self.ts_ms, patch)
            self._merged.put(position.seq, text)
        return Message(text, "delta", self.position)

    def subscribe(
        self, transport: str, since: Position | None = None, max_rate_hz: float = 0.0
    ) -> Subscription:
        return Subscription(self, transport, since, max_rate_hz)


class Subscription:
    """One client's position in the stream; ``next_message`` waits for the next message."""

    def __init__(
        self, hub: Hub, transport: str, since: Position | None, max_rate_hz: float
    ) -> None:
        self.hub = hub
        self.transport = transport
        self.position = since
        self.interval = 1.0 / max_rate_hz if max_rate_hz > 0 else 0.0
        self.last_sent = -float("inf")
        self._event = trio.Event()

    def __repr__(self) -> str:
        return f"<Subscription {self.transport} at {self.position}>"

    def __enter__(self) -> Subscription:
        self.hub.clients[self.transport] += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub.clients[self.transport] -= 1

    def poke(self) -> None:
        self._event.set()

    async def _wait(self) -> None:
        self._event = trio.Event()
        self.hub._waiting.add(self)
        try:
            await self._event.wait()
        finally:
            self.hub._waiting.discard(self)

    async def next_message(self) -> Message:
        """Wait until the client is behind, then the message that catches it up."""
        while True:
            if self.hub.closed:
                raise HubClosed
            if self.interval and self.position is not None:
                await trio.sleep_until(self.last_sent + self.interval)
            message = self.hub.catch_up(self.position)
            if message is not None:
                self.position = message.position
                self.last_sent = trio.current_time()
                self.hub.sent[message.kind] += 1
                return message
            await self._wait()


async def run_hub(
    hub: Hub,
    receive: trio.MemoryReceiveChannel[Change],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Publish every committed change until the writer closes the channel."""
    task_status.started()
    async for change in receive:
        hub.publish(change)
