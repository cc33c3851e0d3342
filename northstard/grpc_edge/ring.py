"""The gRPC side's copy of the stream: current document, recent patches, encoded events.

It lives on the gRPC server's asyncio loop (one thread) and is fed what the
hub published. Like the hub, a stream is only a position: ``catch_up(position)``
gives the newest delta (encoded once for every stream), one merged delta over
what the stream missed (encoded once per starting point), or a snapshot
(encoded once per change) — so a slow stream holds O(1) memory and still lands
on the exact state. An entry may itself cover several changes (``prev`` to
``seq``) when the feeder was handed a merged delta; a client anywhere inside
that range applies it (merge patches are idempotent).

Events are encoded lazily: with no stream, nothing is serialized.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass

from ..hub import Position
from ..mergepatch import Doc, compose
from .convert import delta_event, snapshot_event

__all__ = ["Event", "EventRing", "Published"]


@dataclass(frozen=True)
class Published:
    """One message the hub published, as the feeder hands it over (read-only)."""

    kind: str  # "snapshot" or "delta"
    epoch: str
    seq: int
    prev: int
    ts_ms: int
    doc: Doc  # the document at ``seq``
    patch: Doc  # deltas: the merge patch from ``prev`` to ``seq``


@dataclass(frozen=True)
class Event:
    """What a stream is sent next: encoded PnlEvent bytes and the position they move it to."""

    data: bytes
    kind: str
    position: Position


class _Held:
    """A held delta: its patch, and its encoded event once a stream asked for it."""

    __slots__ = ("data", "item")

    def __init__(self, item: Published) -> None:
        self.item = item
        self.data: bytes | None = None

    @property
    def prev(self) -> int:
        return self.item.prev

    @property
    def seq(self) -> int:
        return self.item.seq


class EventRing:
    def __init__(self, size: int) -> None:
        self.size = size
        self.epoch = ""
        self.seq = 0
        self.ts_ms = 0
        self.doc: Doc = {}
        self.encoded = 0
        self._ring: deque[_Held] = deque(maxlen=size)
        self._snapshot: bytes | None = None
        self._merged: dict[int, bytes] = {}

    def __repr__(self) -> str:
        first = self._ring[0].prev if self._ring else self.seq
        return f"<EventRing {self.epoch}:{self.seq} holds {first}..{self.seq} ready={self.ready}>"

    @property
    def ready(self) -> bool:
        """Whether there is a snapshot to send (an empty store has none until the first change)."""
        return bool(self.doc)

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.seq)

    def publish(self, item: Published) -> None:
        if item.kind != "delta" or item.epoch != self.epoch or item.prev != self.seq:
            self._ring.clear()  # a snapshot or a jump: nothing before it can be merged across
        if item.kind == "delta":
            self._ring.append(_Held(item))
        self.epoch, self.seq, self.ts_ms, self.doc = item.epoch, item.seq, item.ts_ms, item.doc
        self._snapshot = None
        self._merged.clear()

    def snapshot(self) -> Event:
        if self._snapshot is None:
            self._snapshot = snapshot_event(self.epoch, self.seq, self.ts_ms, self.doc)
            self.encoded += 1
        return Event(self._snapshot, "snapshot", self.position)

    def holds(self, position: Position) -> bool:
        """Whether every change after ``position`` is held."""
        if position.epoch != self.epoch or position.seq > self.seq:
            return False
        return position.seq == self.seq or (bool(self._ring) and self._ring[0].prev <= position.seq)

    def catch_up(self, position: Position | None) -> Event | None:
        """The event that brings a stream at ``position`` to now; None if current or not ready."""
        if not self.ready:
            return None
        if position is None or not self.holds(position):
            return self.snapshot()
        if position.seq == self.seq:
            return None
        last = self._ring[-1]
        if last.prev <= position.seq:
            return Event(self._encoded(last), "delta", self.position)
        start = bisect_right(self._ring, position.seq, key=lambda held: held.seq)
        first = self._ring[start]
        data = self._merged.get(first.seq)
        if data is None:
            data = delta_event(self.epoch, self.seq, first.prev, self.ts_ms, self._merge(start))
            self._merged[first.seq] = data
            self.encoded += 1
        return Event(data, "delta", self.position)

    def _encoded(self, held: _Held) -> bytes:
        if held.data is None:
            item = held.item
            held.data = delta_event(item.epoch, item.seq, item.prev, item.ts_ms, item.patch)
            self.encoded += 1
        return held.data

    def _merge(self, start: int) -> Doc:
        patch: Doc = {}
        for index in range(start, len(self._ring)):
            patch = compose(patch, self._ring[index].item.patch)
        return patch
