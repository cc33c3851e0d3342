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

from dataclasses import dataclass

from northstard.actors.hub import MERGED_MAX_BYTES, MERGED_MAX_ENTRIES, RING_MAX_BYTES, Position
from northstard.core.change import dumps
from northstard.core.mergepatch import Doc
from northstard.core.patchring import MergedCache, PatchRing
from northstard.edges.grpc.convert import delta_event, snapshot_event

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


class EventRing:
    """The stream's position, its newest delta and a ``PatchRing`` of the patches before it.

    Only the newest message keeps its document and parsed patch; older ones are
    held as patch text in the ring (bounded by ``size`` entries and ``max_bytes``).
    """

    def __init__(self, size: int, max_bytes: int = RING_MAX_BYTES) -> None:
        self.size = size
        self.epoch = ""
        self.seq = 0
        self.ts_ms = 0
        self.doc: Doc = {}
        self.encoded = 0
        self.ring = PatchRing(size, max_bytes)
        self._last: Published | None = None  # the newest delta, while the ring holds it
        self._last_data: bytes | None = None
        self._snapshot: bytes | None = None
        self._merged: MergedCache[bytes] = MergedCache(MERGED_MAX_ENTRIES, MERGED_MAX_BYTES)

    def __repr__(self) -> str:
        first = self.ring.first_prev
        held = f"{first}..{self.seq}" if first is not None else "nothing"
        return f"<EventRing {self.epoch}:{self.seq} holds {held} ready={self.ready}>"

    @property
    def ready(self) -> bool:
        """Whether there is a snapshot to send (an empty store has none until the first change)."""
        return bool(self.doc)

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.seq)

    def publish(self, item: Published) -> None:
        if item.kind != "delta" or item.epoch != self.epoch or item.prev != self.seq:
            self.ring.clear()  # a snapshot or a jump: nothing before it can be merged across
        self._last = self._last_data = None
        if item.kind == "delta":
            self.ring.append(item.prev, item.seq, dumps(item.patch), item.patch)
            self._last = item
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
        return position.seq == self.seq or self.ring.holds(position.seq)

    def catch_up(self, position: Position | None) -> Event | None:
        """The event that brings a stream at ``position`` to now; None if current or not ready."""
        if not self.ready:
            return None
        if position is None or not self.holds(position):
            return self.snapshot()
        if position.seq == self.seq:
            return None
        last = self._last
        if last is not None and last.prev <= position.seq:
            return Event(self._encoded_last(last), "delta", self.position)
        prev = self.ring.start_of(position.seq)
        data = self._merged.get(prev)
        if data is None:
            prev, patch = self.ring.merged(position.seq)
            data = delta_event(self.epoch, self.seq, prev, self.ts_ms, patch)
            self._merged.put(prev, data)
            self.encoded += 1
        return Event(data, "delta", self.position)

    def _encoded_last(self, item: Published) -> bytes:
        if self._last_data is None:
            self._last_data = delta_event(item.epoch, item.seq, item.prev, item.ts_ms, item.patch)
            self.encoded += 1
        return self._last_data
