"""The hub: the current document, a ring of recent deltas, and the subscribers.

A subscriber is only a position ``(epoch, seq)``: no per-client queue. When
it can take a message it asks the hub to ``catch_up`` from its position and
gets the newest delta (pre-encoded once for everyone), a merged delta over
several changes (merge patches compose; the merge is encoded once per
starting point), or a fresh snapshot when its position is no longer in the
ring or belongs to another epoch. A slow client therefore holds O(1) memory,
never slows the others, and still ends on the exact current state.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import trio

from .change import Change, delta_message, snapshot_message
from .mergepatch import Doc, compose
from .money import DIGITS

__all__ = ["Hub", "HubClosed", "Position", "Subscription", "parse_position", "run_hub"]


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
class _Held:
    """What the ring keeps of a change: its patch and its encoded delta, not the document."""

    seq: int
    patch: Doc
    text: str


@dataclass(frozen=True)
class Message:
    """What a subscriber is sent next: text, and the position it moves the client to."""

    text: str
    kind: str
    position: Position


class Hub:
    def __init__(self, ring_size: int = 10000) -> None:
        self.ring_size = ring_size
        self.epoch = ""
        self.seq = 0
        self.ts_ms = 0
        self.doc: Doc = {}
        self._latest: Change | None = None
        self._snapshot: str | None = None
        self._ring: deque[_Held] = deque(maxlen=ring_size)
        self._merged: dict[int, str] = {}
        self._waiting: set[Subscription] = set()
        self.closed = False
        self.clients: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"<Hub {self.epoch}:{self.seq} ring={len(self._ring)} "
            f"clients={dict(self.clients)} closed={self.closed}>"
        )

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.seq)

    def reset(self, epoch: str, seq: int, doc: Doc, ts_ms: int) -> None:
        """Start from a recovered document (no deltas held yet)."""
        self.epoch, self.seq, self.doc, self.ts_ms = epoch, seq, doc, ts_ms
        self._ring.clear()
        self._merged.clear()
        self._latest = None
        self._snapshot = None

    def publish(self, change: Change) -> None:
        if change.epoch != self.epoch or change.seq != self.seq + 1:
            self._ring.clear()  # a jump: nothing before it can be merged across
        self.epoch, self.seq, self.doc, self.ts_ms = (
            change.epoch, change.seq, change.doc, change.ts_ms
        )
        self._ring.append(_Held(change.seq, change.patch, change.delta_message))
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
        if position.seq == self.seq:
            return True
        return bool(self._ring) and self._ring[0].seq <= position.seq + 1

    def catch_up(self, position: Position | None) -> Message | None:
        """The message that brings a client at ``position`` to now; None if it is current."""
        if position is None or not self.holds(position):
            return self.snapshot()
        if position.seq == self.seq:
            return None
        if position.seq == self.seq - 1:
            return Message(self._ring[-1].text, "delta", self.position)
        text = self._merged.get(position.seq)
        if text is None:
            text = delta_message(
                self.epoch, self.seq, position.seq, self.ts_ms, self._merge(position.seq)
            )
            self._merged[position.seq] = text
        return Message(text, "delta", self.position)

    def _merge(self, after: int) -> Doc:
        patch: Doc = {}
        start = after + 1 - self._ring[0].seq
        for index in range(start, len(self._ring)):
            patch = compose(patch, self._ring[index].patch)
        return patch

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

    def resume(self, position: Position | None) -> None:
        """Move the client to ``position``; a waiting ``next_message`` answers at once."""
        self.position = position
        self.poke()

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
