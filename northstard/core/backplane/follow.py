"""What an edge does with each stream entry (pure: no I/O).

The edge keeps the real position and document it follows. An entry is:

* a delta of its epoch it already has (``seq`` <= its own): skipped (a
  republish after a Redis restart may repeat a few);
* the next delta (same epoch, ``prev`` == its seq): applied, a ``Change``;
* a snapshot at another position: a ``Reset`` (every client gets a snapshot,
  or a merged delta, as on any epoch change);
* anything else (a hole: Redis lost entries, another epoch): ``None`` with
  ``gap`` set, and the edge reloads ``current``.

While the core is unreachable the edge serves ``marked()``: the same document
and seq under the epoch ``<epoch>~core-unreachable`` with the source
``core`` marked ``unreachable`` (so the dashboard's badge shows it, and no
client can resume across it: it gets a snapshot back on the real epoch).
Every edge builds the same marked document, so positions stay global.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from northstard.core.backplane.wire import Entry, Head
from northstard.core.change import Change
from northstard.core.mergepatch import Doc, apply_patch

__all__ = ["MARK", "Followed", "Reset", "marked"]

MARK = "~core-unreachable"


@dataclass(frozen=True)
class Reset:
    """Jump to this document (a snapshot for every client not already there)."""

    epoch: str
    seq: int
    ts_ms: int
    doc: Doc

    def as_change(self) -> Change:
        """For the cache, which keeps only the document and its position."""
        return Change(self.epoch, self.seq, self.ts_ms, self.doc, {})


def marked(reset: Reset) -> Reset:
    sources = dict(reset.doc.get("sources") or {})
    sources["core"] = {  # the dashboard shows it as a failing source and tags every figure stale
        "plugin": "backplane", "status": "unreachable", "stale": True,
        "last_error": "the core daemon is unreachable: the last state it published",
        **({"as_of": reset.doc["as_of"]} if "as_of" in reset.doc else {}),
    }
    return Reset(reset.epoch + MARK, reset.seq, reset.ts_ms, {**reset.doc, "sources": sources})


@dataclass
class Followed:
    epoch: str
    seq: int
    ts_ms: int
    doc: Doc
    gap: bool = False

    @classmethod
    def of(cls, head: Head) -> Followed:
        return cls(head.epoch, head.seq, head.ts_ms, json.loads(head.doc_json))

    def reset(self) -> Reset:
        return Reset(self.epoch, self.seq, self.ts_ms, self.doc)

    def take(self, entry: Entry) -> Change | Reset | None:
        """The entry's effect; None when it changes nothing (or is a hole: ``gap``)."""
        same = entry.epoch == self.epoch
        if entry.kind == "snapshot":
            if same and entry.seq == self.seq:
                return None
            self.epoch, self.seq, self.ts_ms = entry.epoch, entry.seq, entry.ts_ms
            self.doc = json.loads(entry.body)
            return self.reset()
        if same and entry.seq <= self.seq:
            return None
        if not same or entry.prev != self.seq:
            self.gap = True
            return None
        patch = json.loads(entry.body)
        self.doc = apply_patch(self.doc, patch)
        self.seq, self.ts_ms = entry.seq, entry.ts_ms
        return Change(self.epoch, self.seq, self.ts_ms, self.doc, patch)
