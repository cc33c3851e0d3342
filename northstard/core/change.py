"""A published change, and the wire messages built from it (once, for every client).

Wire messages (JSON text, amounts as decimal strings, ``ts`` integer ms UTC):

    {"type":"snapshot","epoch":E,"seq":N,"ts":MS,"data":DOC}
    {"type":"delta","epoch":E,"seq":N,"prev":P,"ts":MS,"patch":MERGE_PATCH}

A client at ``seq = S`` applies a delta when ``prev <= S < seq``; merge
patches are idempotent, so a merged delta over a range the client partly has
still lands on the exact state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

from northstard.core.mergepatch import Doc
from northstard.core.records import KeyChange, Record

__all__ = ["Change", "delta_message", "dumps", "snapshot_message"]


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def snapshot_message(epoch: str, seq: int, ts_ms: int, doc: Doc) -> str:
    return dumps({"type": "snapshot", "epoch": epoch, "seq": seq, "ts": ts_ms, "data": doc})


def delta_message(epoch: str, seq: int, prev: int, ts_ms: int, patch: Doc) -> str:
    return dumps(
        {"type": "delta", "epoch": epoch, "seq": seq, "prev": prev, "ts": ts_ms, "patch": patch}
    )


@dataclass(frozen=True, eq=False)
class Change:
    """One accepted change: the new document, its patch, the records behind it, the cold
    aggregates they changed (absolute values per path, persisted with the records) and what
    the record log and the explain rollup keep of it."""

    epoch: str
    seq: int
    ts_ms: int
    doc: Doc
    patch: Doc
    records: tuple[tuple[str, Record], ...] = ()
    totals: tuple[tuple[tuple[str, ...], Decimal], ...] = ()
    # what the record log and the explain rollup store: each key the change changed, with its
    # versions before and after, and the change's contributions summed per explain group key
    # (internal amounts: ``explain.change_groups``)
    keys: tuple[KeyChange, ...] = ()
    groups: Mapping[tuple[str, str, str, str, str], Mapping[tuple[str, ...], Decimal]] = field(
        default_factory=dict)

    @property
    def prev(self) -> int:
        return self.seq - 1

    def __repr__(self) -> str:
        return f"<Change {self.epoch}:{self.seq} records={len(self.records)}>"

    @cached_property
    def snapshot_message(self) -> str:
        return snapshot_message(self.epoch, self.seq, self.ts_ms, self.doc)

    @cached_property
    def patch_json(self) -> str:
        return dumps(self.patch)

    @cached_property
    def doc_json(self) -> str:
        return dumps(self.doc)
