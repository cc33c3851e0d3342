"""The gRPC edge's pure parts: document <-> messages, the feed over the hub, the pump, auth, codegen."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.actors.hub import Hub
from northstard.config import default_settings, load_config
from northstard.core.change import Change
from northstard.core.mergepatch import Doc, apply_patch, diff
from northstard.core.message import Message
from northstard.core.pnl import Book
from northstard.core.position import Position
from northstard.core.records import Cost, Record, RevenueTotal
from northstard.edges.grpc import gen
from northstard.edges.grpc.auth import BearerAuth, digest
from northstard.edges.grpc.convert import (
    doc_from_snapshot,
    patch_from_struct,
    snapshot_from_doc,
    struct_from_patch,
)
from northstard.edges.grpc.service import Feed, _interval, pump
from northstard.errors import ConfigError

from unit_helpers import T0, record_strategy

SOURCES = ("kalshi", "shop")
RECORDS = st.tuples(
    st.sampled_from(SOURCES),
    record_strategy(
        ids=st.sampled_from(["a", "b", "c"]), tickers=st.sampled_from(["T1", "T2"]),
        agents=st.sampled_from([None, "atlas", "hermes"]),
        names=st.sampled_from(["ai", "infra", "claude-sonnet-4"]),
        money=st.decimals(allow_nan=False, allow_infinity=False, places=4,
                          min_value=-(10**6), max_value=10**6),
        times=st.just(T0),
    ),
)
BATCHES = st.lists(
    st.tuples(st.lists(RECORDS, max_size=5), st.sampled_from(["ok", "fail", "none"])),
    min_size=1, max_size=6,
)


def documents(batches: list[tuple[list[tuple[str, Record]], str]]) -> list[Doc]:
    """Successive documents of a book fed ``batches`` (a source succeeding or failing in each)."""
    book = Book()
    for source in SOURCES:
        book.add_source(source, source, 45.0)
    docs = [book.document(T0)]
    book.published(docs[0])
    for index, (records, event) in enumerate(batches, start=1):
        now = T0 + timedelta(seconds=index, milliseconds=index * 7)
        for source, record in records:
            book.ingest(source, [record])
        if event == "ok":
            book.source_ok("shop", now - timedelta(milliseconds=300), now)
        elif event == "fail":
            book.source_failed("kalshi", f"kalshi failed {index}")
        docs.append(book.document(now))
        book.published(docs[-1])
    return docs


def json_form(snapshot: pb.Snapshot) -> dict[str, Any]:
    """The proto3 JSON form a non-Python client applies merge patches to."""
    return json_format.MessageToDict(snapshot, preserving_proto_field_name=True)


# -- document <-> messages -----------------------------------------------------


@settings(deadline=None, max_examples=60)
@given(BATCHES)
def test_documents_round_trip_and_patches_travel_as_structs(
    batches: list[tuple[list[tuple[str, Record]], str]],
) -> None:
    docs = documents(batches)
    for old, new in itertools.pairwise(docs):
        assert doc_from_snapshot(snapshot_from_doc(new)) == new
        patch = diff(old, new)
        struct = struct_from_patch(patch)  # raises on a number: a document never has one
        assert patch_from_struct(struct) == patch
        # a client in another language: JSON form of the typed snapshot, merge patch, parse back
        patched = apply_patch(json_form(snapshot_from_doc(old)), json_format.MessageToDict(struct))
        assert json_format.ParseDict(patched, pb.Snapshot()) == snapshot_from_doc(new)


def test_optional_fields_come_and_go() -> None:
    book = Book()
    book.add_source("shop", "shop", 30.0)
    first = book.document(T0)
    book.ingest("shop", [RevenueTotal(id="t", invoiced=Decimal("100"), collected=Decimal("0"), ts=T0)])
    book.source_ok("shop", T0, T0)
    second = book.document(T0 + timedelta(seconds=1))
    assert "gross_margin_pct" not in first and "gross_margin_pct" in second
    assert "as_of" not in first["sources"]["shop"] and "as_of" in second["sources"]["shop"]
    for doc in (first, second):
        snapshot = snapshot_from_doc(doc)
        assert snapshot.HasField("gross_margin_pct") == ("gross_margin_pct" in doc)
        assert doc_from_snapshot(snapshot) == doc
    removal = diff(second, first)
    assert removal["gross_margin_pct"] is None
    struct = struct_from_patch(removal)
    assert struct.fields["gross_margin_pct"].WhichOneof("kind") == "null_value"
    patched = apply_patch(json_form(snapshot_from_doc(second)), json_format.MessageToDict(struct))
    assert not json_format.ParseDict(patched, pb.Snapshot()).HasField("gross_margin_pct")


def test_timestamps_are_exact_milliseconds() -> None:
    doc = Book().document(datetime(2026, 11, 21, 19, 25, 2, 437000, tzinfo=UTC))
    snapshot = snapshot_from_doc(doc)
    assert (snapshot.as_of.seconds, snapshot.as_of.nanos) == (1795289102, 437_000_000)
    assert doc_from_snapshot(snapshot)["as_of"] == "2026-11-21T19:25:02.437Z"
    assert json_form(snapshot)["as_of"] == "2026-11-21T19:25:02.437Z"


@pytest.mark.parametrize("bad", [{"n": 1}, {"a": {"b": 1.5}}, {"l": ["x"]}, {"d": Decimal("1")}])
def test_a_number_never_travels_as_a_double(bad: Doc) -> None:
    with pytest.raises(TypeError, match="only objects, strings, booleans and null"):
        struct_from_patch(bad)


def test_a_struct_with_any_value_reads_back() -> None:
    struct = struct_pb2.Struct()
    struct.update({"a": {"b": None, "c": True}, "s": "x", "l": ["y"]})
    assert patch_from_struct(struct) == {"a": {"b": None, "c": True}, "s": "x", "l": ["y"]}


# -- the feed: the hub's messages, no ring of its own -----------------------------------


def doc_at(seq: int) -> Doc:
    book = Book()
    book.ingest("shop", [Cost(id=f"c{i}", amount=Decimal(i), category="ai", ts=T0)
                         for i in range(1, seq + 1)])
    return book.document(T0 + timedelta(seconds=seq))


def change(seq: int, docs: list[Doc], epoch: str = "e") -> Change:
    return Change(epoch, seq, 1000 + seq, docs[seq], diff(docs[seq - 1], docs[seq]))


LOOPS: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(autouse=True)
def close_loops() -> Iterator[None]:
    yield
    while LOOPS:
        LOOPS.pop().close()


class HubFeed:
    """A real Hub and a Feed fed from it as the gRPC actor does (same thread here)."""

    def __init__(self, ring_size: int = 100) -> None:
        self.hub = Hub(ring_size)
        self.asked: list[Position | None] = []
        self.feed = Feed(self.catch_up)
        self.loop = asyncio.new_event_loop()  # one loop per feed: it keeps the hub's answers
        LOOPS.append(self.loop)

    def next_for(self, position: Position | None) -> Message | None:
        return self.loop.run_until_complete(self.feed.next_for(position))

    async def catch_up(self, position: Position | None) -> Message | None:
        self.asked.append(position)
        return self.hub.catch_up(position)

    def start(self, doc: Doc, epoch: str = "e") -> None:
        self.hub.reset(epoch, 0, doc, 1000)
        self.deliver()

    def publish(self, item: Change) -> None:
        self.hub.publish(item)
        self.deliver()

    def deliver(self) -> None:
        """What the feeder does: the hub's message for the feeder's position, and the snapshot."""
        message = self.hub.catch_up(self.feed.latest.position if self.feed.latest else None)
        if message is not None:
            self.feed.publish(message, self.hub.snapshot())


def fed(last: int, ring_size: int = 100) -> tuple[HubFeed, list[Doc]]:
    docs = [doc_at(seq) for seq in range(last + 1)]
    both = HubFeed(ring_size)
    both.start(docs[0])
    for seq in range(1, last + 1):
        both.publish(change(seq, docs))
    return both, docs


def event(data: bytes) -> pb.PnlEvent:
    return pb.PnlEvent.FromString(data)




def test_feed_catches_up_from_every_position() -> None:
    both, docs = fed(6)
    feed = both.feed
    assert both.next_for(Position("e", 6)) is None
    beyond = both.next_for(Position("e", 7))  # a position that never was: the hub says snapshot
    assert beyond is not None and beyond.kind == "snapshot" and both.asked == [Position("e", 7)]
    both.asked.clear()
    latest = both.next_for(Position("e", 5))
    assert latest is not None and latest.kind == "delta" and latest.position == Position("e", 6)
    assert (event(feed.encode(latest)).prev_seq, event(feed.encode(latest)).seq) == (5, 6)
    assert both.asked == []  # the newest delta and the snapshot are the feed's own
    for start in range(0, 5):
        caught = both.next_for(Position("e", start))
        assert caught is not None and caught.kind == "delta"
        message = event(feed.encode(caught))
        assert (message.prev_seq, message.seq) == (start, 6)
        assert apply_patch(docs[start], patch_from_struct(message.delta.patch)) == docs[6]
    assert both.asked == [Position("e", s) for s in range(5)]  # behind: the hub's one ring
    for position in (None, Position("other", 3)):
        caught = both.next_for(position)
        assert caught is not None and caught.kind == "snapshot"
        assert doc_from_snapshot(event(feed.encode(caught)).snapshot) == docs[6]


def test_one_message_serves_every_transport_and_is_encoded_once_per_transport() -> None:
    both, _ = fed(4)
    feed = both.feed
    for _ in range(50):  # fifty streams at 3, fifty at 0, fifty new
        for position in (Position("e", 3), Position("e", 0), None):
            message = both.next_for(position)
            assert message is not None
            feed.encode(message)
    assert feed.encoded == 3  # the newest delta, one merged delta, one snapshot
    merged = both.next_for(Position("e", 0))
    assert merged is both.hub.catch_up(Position("e", 0))  # the WebSocket edge gets the same object
    assert merged is not None and '"prev":0' in merged.text  # its JSON text, from the same message
    assert feed.encoded == 3


def test_late_streams_at_one_position_share_one_hop_to_the_hub() -> None:
    both, _ = fed(6)

    async def fifty_late_streams() -> list[Message | None]:
        return await asyncio.gather(*(both.feed.next_for(Position("e", 2)) for _ in range(50)))

    answers = both.loop.run_until_complete(fifty_late_streams())
    assert both.asked == [Position("e", 2)]
    assert all(a is answers[0] and a is not None and a.prev == 2 for a in answers)
    both.publish(change(7, [doc_at(seq) for seq in range(8)]))  # a publish: ask afresh
    again = both.next_for(Position("e", 2))
    assert again is not None and again.position == Position("e", 7) and len(both.asked) == 2


def test_a_position_the_hub_no_longer_holds_gets_a_snapshot() -> None:
    both, docs = fed(8, ring_size=3)
    old = both.next_for(Position("e", 4))
    assert old is not None and old.kind == "snapshot"
    assert doc_from_snapshot(event(both.feed.encode(old)).snapshot) == docs[8]


def test_a_feeder_handed_a_merged_delta_serves_every_client_inside_it() -> None:
    both, docs = fed(2)
    docs = [doc_at(seq) for seq in range(5)]
    both.hub.publish(change(3, docs))
    both.hub.publish(change(4, docs))
    both.deliver()  # the feeder lagged: the hub hands it one delta from 2 to 4
    assert both.feed.latest is not None and both.feed.latest.prev == 2
    for start in (2, 3):  # a client inside the merged range applies it too
        caught = both.next_for(Position("e", start))
        assert caught is not None and event(both.feed.encode(caught)).prev_seq == 2
        patch = patch_from_struct(event(both.feed.encode(caught)).delta.patch)
        assert apply_patch(docs[start], patch) == docs[4]
    assert both.asked == []


def test_an_empty_store_has_nothing_to_send() -> None:
    both = HubFeed(10)
    both.start({})
    assert not both.feed.ready and both.next_for(None) is None
    both.publish(Change("e", 1, 5, doc_at(1), diff({}, doc_at(1))))
    caught = both.next_for(None)
    assert both.feed.ready and caught is not None and caught.kind == "snapshot"


# -- the pump: a slow stream gets one merged delta ------------------------------------


def test_a_stalled_stream_gets_one_merged_delta() -> None:
    async def scenario() -> tuple[list[pb.PnlEvent], list[Position | None]]:
        docs = [doc_at(seq) for seq in range(7)]
        both = HubFeed(100)
        both.start(docs[0])
        both.publish(change(1, docs))
        feed = both.feed
        written: list[pb.PnlEvent] = []
        blocked, unblock, caught_up = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def write(data: bytes) -> None:
            written.append(event(data))
            if len(written) == 1:
                blocked.set()
                await unblock.wait()  # the client's window is full
            if written[-1].seq == 6:
                caught_up.set()

        task = asyncio.create_task(pump(feed, None, write))
        await blocked.wait()
        for seq in range(2, 7):
            both.publish(change(seq, docs))
        unblock.set()
        await caught_up.wait()
        feed.close()
        await task
        assert apply_patch(doc_from_snapshot(written[0].snapshot),
                           patch_from_struct(written[1].delta.patch)) == docs[6]
        return written, both.asked

    written, asked = asyncio.run(scenario())
    assert [(w.WhichOneof("body"), w.prev_seq, w.seq) for w in written] == [
        ("snapshot", 0, 1), ("delta", 1, 6)
    ]
    assert asked == [Position("e", 1)]  # the merge came from the hub's ring


def test_rate_limits() -> None:
    assert _interval(0, 0) == 0
    assert _interval(4, 0) == 0.25
    assert _interval(0, 2) == 0.5
    assert _interval(10, 2) == 0.5 and _interval(1, 2) == 1.0


# -- auth and config -------------------------------------------------------------------


def test_bearer_tokens_compare_digests() -> None:
    auth = BearerAuth([digest("s3cret").upper(), digest("other")])
    assert auth.accepts([("authorization", "Bearer s3cret")])
    assert auth.accepts([("x", "y"), ("Authorization", "bearer other")])
    for metadata in ([], None, [("authorization", "Bearer wrong")], [("authorization", "s3cret")],
                     [("authorization", "Basic s3cret")], [("authorization", "Bearer ")]):
        assert not auth.accepts(metadata), metadata
    assert "s3cret" not in repr(auth)


def test_grpc_config_section(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[sources]\n[grpc]\nport = 0\ntokens = ["{digest("t")}"]\n')
    config = load_config(path, {}, environ={})
    assert config.sections["grpc"]["tokens"] == [digest("t")]
    assert config.sections["grpc"]["enabled"] is True
    for bad in ('tokens = ["plain-token"]', "keepalive_time_s = 0", 'port = "x"'):
        path.write_text(f"[sources]\n[grpc]\n{bad}\n")
        with pytest.raises(ConfigError, match="grpc"):
            load_config(path, {}, environ={})


def test_tls_needs_both_files() -> None:
    from northstard.edges.grpc.server import GrpcSettings

    section = replace(default_settings().grpc, host="::1", port=0, tls_cert=Path("c.pem"), tls_key=None)
    with pytest.raises(ConfigError, match="go together"):
        GrpcSettings.from_config(section)
    settings = GrpcSettings.from_config(replace(section, tls_cert=None))
    assert settings.bind == "[::1]:0"


# -- code generation ---------------------------------------------------------------------


def test_the_committed_generated_code_is_fresh() -> None:
    assert gen.stale_files() == []


def test_a_stale_proto_is_detected(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    (protos / "northstar" / "v1").mkdir(parents=True)
    source = (gen.PROTOS / "northstar" / "v1" / "pnl.proto").read_text()
    changed = source.replace("message GetCurrentRequest {}", "message GetCurrentRequest { bool x = 1; }")
    (protos / "northstar" / "v1" / "pnl.proto").write_text(changed)
    problems = gen.stale_files(gen.OUT, protos)
    assert problems and any("pnl_pb2" in p for p in problems)
