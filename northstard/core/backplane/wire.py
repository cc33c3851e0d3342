"""What the backplane keeps in Redis, as flat string fields (pure: no I/O).

Stream entries (``<prefix>stream``), one per committed change, or a snapshot
when the publisher cannot give the changes in between (Redis lost them, the
epoch changed, or more than the stream holds are missing):

    {kind: delta,    epoch, seq, prev, ts, body: MERGE_PATCH_JSON, at}
    {kind: snapshot, epoch, seq, prev, ts, body: DOC_JSON,         at}

``at`` is the publisher's wall clock (ms) at XADD, for the edges' lag.
``<prefix>current`` is a hash {epoch, seq, ts, doc}, written in the same
MULTI as the entries, so it always agrees with the stream's last entry.
``<prefix>core`` is ``EPOCH:SEQ:AT_MS``, rewritten every heartbeat with an
expiry of three heartbeats: while it exists the core is alive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from northstard.core.change import Change

__all__ = ["Entry", "Head", "current_fields", "delta_fields", "parse_current", "parse_entry",
           "parse_heartbeat", "snapshot_fields", "text"]


@dataclass(frozen=True)
class Entry:
    kind: str  # "delta" or "snapshot"
    epoch: str
    seq: int
    prev: int
    ts_ms: int
    body: str  # the merge patch (delta) or the document (snapshot), JSON text
    at_ms: int = 0


@dataclass(frozen=True)
class Head:
    """A document at a position: what ``<prefix>current`` holds."""

    epoch: str
    seq: int
    ts_ms: int
    doc_json: str

    @classmethod
    def of(cls, change: Change) -> Head:
        return cls(change.epoch, change.seq, change.ts_ms, change.doc_json)


def delta_fields(epoch: str, seq: int, prev: int, ts_ms: int, patch_json: str, at_ms: int) -> dict[str, str]:
    return {"kind": "delta", "epoch": epoch, "seq": str(seq), "prev": str(prev), "ts": str(ts_ms),
            "body": patch_json, "at": str(at_ms)}


def snapshot_fields(head: Head, at_ms: int) -> dict[str, str]:
    return {"kind": "snapshot", "epoch": head.epoch, "seq": str(head.seq), "prev": str(head.seq),
            "ts": str(head.ts_ms), "body": head.doc_json, "at": str(at_ms)}


def current_fields(head: Head) -> dict[str, str]:
    return {"epoch": head.epoch, "seq": str(head.seq), "ts": str(head.ts_ms), "doc": head.doc_json}


def text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


def parse_entry(raw: Mapping[str | bytes, str | bytes]) -> Entry:
    """A stream entry; ValueError (or KeyError) when it is not one of ours."""
    fields = {text(k): text(v) for k, v in raw.items()}
    kind = fields["kind"]
    if kind not in ("delta", "snapshot"):
        raise ValueError(f"unknown entry kind {kind!r}")
    return Entry(kind, fields["epoch"], int(fields["seq"]), int(fields["prev"]), int(fields["ts"]),
                 fields["body"], int(fields.get("at", "0")))


def parse_current(fields: Mapping[str, str]) -> Head | None:
    """``<prefix>current``; None when absent (an empty hash) or not ours."""
    try:
        return Head(fields["epoch"], int(fields["seq"]), int(fields["ts"]), fields["doc"])
    except (KeyError, ValueError):
        return None


def parse_heartbeat(text: str | None) -> tuple[str, int, int] | None:
    """``EPOCH:SEQ:AT_MS`` to its parts; None when absent or malformed."""
    if not text:
        return None
    epoch, _, rest = text.rpartition(":")
    epoch, _, seq = epoch.rpartition(":")
    try:
        return epoch, int(seq), int(rest)
    except ValueError:
        return None
