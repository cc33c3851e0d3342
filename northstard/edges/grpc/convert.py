"""The snapshot document and merge patches <-> the ``northstar.v1`` messages. Pure, no I/O.

Amounts stay decimal strings; ISO 8601 times become ``Timestamp`` and back
(milliseconds, ``...Z``), so ``doc_from_snapshot(snapshot_from_doc(doc)) ==
doc`` for every document the engine renders. A merge patch travels as a
``google.protobuf.Struct``: the snapshot document never holds a number, and
``struct_from_patch`` refuses one rather than let a double carry an amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.core.mergepatch import Doc
from northstard.core.times import iso_from_ms, ms_from_iso

__all__ = [
    "delta_event",
    "doc_from_snapshot",
    "iso_from_timestamp",
    "ms_from_timestamp",
    "patch_from_struct",
    "snapshot_event",
    "snapshot_from_doc",
    "struct_from_patch",
    "timestamp_from_iso",
    "timestamp_from_ms",
]

_FLAT_SECTIONS = {
    "trading": ("realized", "unrealized", "fees", "total", "balance"),
    "revenue": ("invoiced", "collected", "basis"),
    "change": ("day", "since_midnight", "since_previous"),
}
_AGENT = ("trading", "revenue", "costs", "net")


def timestamp_from_ms(ms: int) -> timestamp_pb2.Timestamp:
    seconds, millis = divmod(ms, 1000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=millis * 1_000_000)


def ms_from_timestamp(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def timestamp_from_iso(text: str) -> timestamp_pb2.Timestamp:
    return timestamp_from_ms(ms_from_iso(text))


def iso_from_timestamp(ts: timestamp_pb2.Timestamp) -> str:
    return iso_from_ms(ms_from_timestamp(ts))


# -- the snapshot ---------------------------------------------------------


def _source_state(entry: Mapping[str, Any]) -> pb.SourceState:
    state = pb.SourceState(plugin=entry["plugin"], status=entry["status"], stale=entry["stale"])
    if "as_of" in entry:
        state.as_of.CopyFrom(timestamp_from_iso(entry["as_of"]))
    if "last_error" in entry:
        state.last_error = entry["last_error"]
    return state


def snapshot_from_doc(doc: Doc) -> pb.Snapshot:
    """The typed snapshot of a snapshot document (docs/protocol.md, "The snapshot document")."""
    costs = doc["costs"]
    snapshot = pb.Snapshot(
        as_of=timestamp_from_iso(doc["as_of"]),
        currency=doc["currency"],
        net_pnl=doc["net_pnl"],
        trading=pb.Trading(**doc["trading"]),
        revenue=pb.Revenue(**doc["revenue"]),
        costs=pb.Costs(total=costs["total"], estimated=costs["estimated"],
                       by_category=costs["by_category"], by_model=costs["by_model"]),
        change=pb.DayChange(**doc["change"]),
    )
    if "gross_margin_pct" in doc:
        snapshot.gross_margin_pct = doc["gross_margin_pct"]
    for name, agent in doc["agents"].items():
        snapshot.agents[name].CopyFrom(pb.Agent(**agent))
    for name, entry in doc["sources"].items():
        snapshot.sources[name].CopyFrom(_source_state(entry))
    return snapshot


def _source_doc(state: pb.SourceState) -> Doc:
    entry: Doc = {"plugin": state.plugin, "status": state.status, "stale": state.stale}
    if state.HasField("as_of"):
        entry["as_of"] = iso_from_timestamp(state.as_of)
    if state.HasField("last_error"):
        entry["last_error"] = state.last_error
    return entry


def doc_from_snapshot(snapshot: pb.Snapshot) -> Doc:
    """The snapshot document of a typed snapshot (the inverse of ``snapshot_from_doc``)."""
    doc: Doc = {"as_of": iso_from_timestamp(snapshot.as_of), "currency": snapshot.currency,
                "net_pnl": snapshot.net_pnl}
    for section, keys in _FLAT_SECTIONS.items():
        message = getattr(snapshot, section)
        doc[section] = {key: getattr(message, key) for key in keys}
    doc["costs"] = {"total": snapshot.costs.total, "estimated": snapshot.costs.estimated,
                    "by_category": dict(snapshot.costs.by_category),
                    "by_model": dict(snapshot.costs.by_model)}
    if snapshot.HasField("gross_margin_pct"):
        doc["gross_margin_pct"] = snapshot.gross_margin_pct
    doc["agents"] = {name: {k: getattr(a, k) for k in _AGENT} for name, a in snapshot.agents.items()}
    doc["sources"] = {name: _source_doc(s) for name, s in snapshot.sources.items()}
    return doc


# -- merge patches -----------------------------------------------------------


def _set_value(value: struct_pb2.Value, item: object, path: str) -> None:
    if isinstance(item, str):
        value.string_value = item
    elif isinstance(item, bool):
        value.bool_value = item
    elif item is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(item, dict):
        _fill(value.struct_value, item, path)
    else:
        raise TypeError(f"merge patch holds a {type(item).__name__} at {path or '/'}; "
                        "only objects, strings, booleans and null travel as a Struct")


def _fill(struct: struct_pb2.Struct, patch: Mapping[str, object], path: str) -> None:
    for key, item in patch.items():
        _set_value(struct.fields[key], item, f"{path}/{key}")


def struct_from_patch(patch: Doc) -> struct_pb2.Struct:
    """The merge patch as a Struct; TypeError on a number or a list (never in a document)."""
    struct = struct_pb2.Struct()
    _fill(struct, patch, "")
    return struct


def _plain(value: struct_pb2.Value) -> object:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return patch_from_struct(value.struct_value)
    if kind == "null_value" or kind is None:
        return None
    if kind == "list_value":
        return [_plain(v) for v in value.list_value.values]
    return getattr(value, kind)


def patch_from_struct(struct: struct_pb2.Struct) -> Doc:
    """The merge patch a Struct carries (JSON null -> None)."""
    return {key: _plain(value) for key, value in struct.fields.items()}


# -- events, serialized once for every stream ----------------------------------


def snapshot_event(epoch: str, seq: int, ts_ms: int, doc: Doc) -> bytes:
    event = pb.PnlEvent(epoch=epoch, seq=seq, ts=timestamp_from_ms(ts_ms),
                        snapshot=snapshot_from_doc(doc))
    return event.SerializeToString()


def delta_event(epoch: str, seq: int, prev: int, ts_ms: int, patch: Doc) -> bytes:
    event = pb.PnlEvent(epoch=epoch, seq=seq, prev_seq=prev, ts=timestamp_from_ms(ts_ms),
                        delta=pb.Delta(patch=struct_from_patch(patch)))
    return event.SerializeToString()
