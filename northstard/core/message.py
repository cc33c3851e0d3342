"""One message of the stream, structured, with its encodings built once per transport, lazily.

The hub makes one ``Message`` per thing it sends (the newest delta, a merged
delta from one starting position, the snapshot) and hands that same object to
every edge. The JSON text (WebSocket, SSE, long-polling) is ``text``; any other
encoding (gRPC: protobuf bytes) is ``encoded(transport, encode)``. Each is
built the first time a client of that transport needs it and then shared: with
no gRPC stream no protobuf is built, and a message is never parsed back from
its own text. Two threads asking at once may both build an encoding (the gRPC
edge runs on its own thread); they build the same value and one of them is
kept, so the cost stays at most two builds and nothing is wrong.

A message refers to the document and patch it was made from (no copy); it
holds at most one encoding per transport (two today: JSON text, protobuf).
"""

from __future__ import annotations

from collections.abc import Callable

from northstard.core.change import delta_message, snapshot_message
from northstard.core.mergepatch import Doc
from northstard.core.position import Position

__all__ = ["DELTA", "SNAPSHOT", "Message"]

SNAPSHOT = "snapshot"
DELTA = "delta"


class Message:
    """A snapshot (``doc`` at ``position``) or a delta (``patch`` from ``prev`` to ``position``)."""

    __slots__ = ("_encodings", "_text", "doc", "kind", "patch", "position", "prev", "ts_ms")

    def __init__(self, kind: str, position: Position, prev: int, ts_ms: int, doc: Doc, patch: Doc,
                 text: str | None = None) -> None:
        self.kind = kind
        self.position = position
        self.prev = prev  # deltas: a client at prev <= seq < position.seq applies it
        self.ts_ms = ts_ms
        self.doc = doc  # the document at position.seq
        self.patch = patch  # deltas: the merge patch; snapshots: {}
        self._text = text
        self._encodings: dict[str, bytes] = {}

    @classmethod
    def snapshot(cls, position: Position, ts_ms: int, doc: Doc, text: str | None = None) -> Message:
        return cls(SNAPSHOT, position, position.seq, ts_ms, doc, {}, text)

    @classmethod
    def delta(cls, position: Position, prev: int, ts_ms: int, doc: Doc, patch: Doc) -> Message:
        return cls(DELTA, position, prev, ts_ms, doc, patch)

    def __repr__(self) -> str:
        held = sorted(self._encodings) + (["text"] if self._text is not None else [])
        return f"<Message {self.kind} {self.prev}..{self.position} encoded={held}>"

    def __len__(self) -> int:
        """The JSON text's length: what a cache of messages accounts."""
        return len(self.text)

    @property
    def text(self) -> str:
        """The JSON wire message (``change.py``), built on first use."""
        if self._text is None:
            epoch, seq = self.position.epoch, self.position.seq
            self._text = (snapshot_message(epoch, seq, self.ts_ms, self.doc) if self.kind == SNAPSHOT
                          else delta_message(epoch, seq, self.prev, self.ts_ms, self.patch))
        return self._text

    def encoded(self, transport: str, encode: Callable[[Message], bytes]) -> bytes:
        """This message as ``transport`` sends it: ``encode(self)`` the first time, then kept."""
        data = self._encodings.get(transport)
        if data is None:
            data = self._encodings[transport] = encode(self)
        return data
