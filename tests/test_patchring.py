"""The replay ring (patchring.py): merged patches from any held position, bounds in bytes and entries."""

from __future__ import annotations

import json
import math
import random
import sys
from datetime import timedelta
from decimal import Decimal
from functools import reduce
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_mergepatch import stable_docs

from northstard._proto.northstar.v1 import pnl_pb2 as pb
from northstard.actors.hub import Hub, Position
from northstard.core.change import Change, dumps
from northstard.core.mergepatch import Doc, apply_patch, compose, diff
from northstard.core.patchring import BLOCK_OVERHEAD, ENTRY_OVERHEAD, MergedCache, PatchRing
from northstard.core.pnl import Book
from northstard.core.records import Cost
from northstard.edges.grpc.convert import patch_from_struct
from northstard.edges.grpc.ring import EventRing, Published

from unit_helpers import T0


def filled(docs: list[Doc], max_entries: int = 1000, max_bytes: int = 1 << 30) -> PatchRing:
    ring = PatchRing(max_entries, max_bytes)
    for seq, (old, new) in enumerate(pairwise(docs), start=1):
        ring.append(seq - 1, seq, dumps(diff(old, new)))
    return ring


@settings(deadline=None, max_examples=80)
@given(stable_docs(min_docs=2, max_docs=40), st.integers(1, 40),
       st.one_of(st.just(1 << 30), st.integers(200, 20000)))
def test_merged_patch_from_every_held_position_lands_on_the_current_document(
    docs: list[dict[str, Any]], max_entries: int, max_bytes: int
) -> None:
    ring = filled(docs, max_entries=max_entries, max_bytes=max_bytes)
    patches = [diff(a, b) for a, b in pairwise(docs)]
    last = len(docs) - 1
    assert len(ring) <= min(max_entries, last) and ring.nbytes <= max_bytes
    if max_bytes == 1 << 30:
        assert len(ring) == min(max_entries, last)
    oldest = ring.first_prev
    for after in range(last):
        if not ring.holds(after):
            assert oldest is None or after < oldest  # only what fell out of the ring is refused
            continue
        prev, patch = ring.merged(after)
        assert prev == after
        assert apply_patch(docs[after], patch) == docs[-1]
        assert patch == reduce(compose, patches[after:], {})


def test_a_merge_takes_at_most_two_pieces_per_level() -> None:
    rng = random.Random(7)
    docs = [{"n": str(i), "m": {f"k{rng.randrange(50)}": str(i)}} for i in range(1500)]
    ring = filled(docs, max_entries=1000)
    bound = 2 * math.ceil(math.log2(1000)) + 1
    counts = [len(ring.pieces(after)[1]) for after in range(499, 1499)]
    assert max(counts) <= bound
    assert counts[-1] == 1  # the newest change alone


def accounted(ring: PatchRing) -> int:
    """The bytes the ring should account, recomputed from what it holds."""
    entries = ring._levels[0].texts
    blocks = [text for level in ring._levels[1:] for text in level.texts]
    return (sum(sys.getsizeof(t) + ENTRY_OVERHEAD for t in entries)
            + sum(sys.getsizeof(t) + BLOCK_OVERHEAD for t in blocks))


def test_ring_stays_within_its_bytes_and_drops_the_oldest_first() -> None:
    rng = random.Random(3)
    max_bytes = 64 * 1024
    ring = PatchRing(100000, max_bytes)
    firsts = []
    for seq in range(1, 3001):
        patch = {"net": str(seq), "by": {f"s{rng.randrange(40)}": "x" * rng.randrange(1, 200)}}
        ring.append(seq - 1, seq, dumps(patch))
        assert ring.nbytes <= max_bytes
        assert ring.nbytes == accounted(ring)
        firsts.append(ring.first_prev)
    assert firsts == sorted(firsts) and firsts[-1] is not None and firsts[-1] > 0
    assert ring.dropped == firsts[-1]  # entries left from the oldest on, one by one
    assert ring.holds(2999) and not ring.holds(firsts[-1] - 1)


def test_an_entry_larger_than_the_bound_empties_the_ring() -> None:
    ring = PatchRing(100, 2048)
    ring.append(0, 1, dumps({"a": "1"}))
    ring.append(1, 2, dumps({"a": "x" * 4096}))
    assert len(ring) == 0 and ring.nbytes == 0 and not ring.holds(1)
    ring.append(2, 3, dumps({"a": "3"}))  # and it goes on from there
    assert ring.holds(2) and ring.merged(2) == (2, {"a": "3"})


def test_entries_must_follow_each_other() -> None:
    ring = PatchRing(10, 4096)
    ring.append(0, 3, "{}")
    with pytest.raises(ValueError, match="does not follow"):
        ring.append(4, 5, "{}")
    with pytest.raises(ValueError, match="not held"):
        ring.pieces(3)


def test_entries_covering_several_changes_merge_from_inside_them() -> None:
    ring = PatchRing(10, 4096)
    ring.append(0, 3, dumps({"a": "3"}))
    ring.append(3, 4, dumps({"b": "4"}))
    ring.append(4, 9, dumps({"a": "9"}))
    assert ring.merged(1) == (0, {"a": "9", "b": "4"})
    assert ring.merged(5) == (4, {"a": "9"})
    assert not ring.holds(9)


def test_merged_cache_keeps_its_bounds_oldest_first() -> None:
    cache: MergedCache[str] = MergedCache(3, 100)
    for start in range(5):
        cache.put(start, "x" * 10)
    assert len(cache) == 3 and cache.get(0) is None and cache.get(4) == "x" * 10
    cache.put(9, "y" * 90)
    assert cache.nbytes <= 100 and cache.get(9) == "y" * 90 and cache.get(2) is None
    cache.put(10, "z" * 101)  # larger than the bound: not kept
    assert cache.get(10) is None and cache.nbytes <= 100
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


# -- the hub and the gRPC copy on top of it -------------------------------------------


def document(seq: int) -> Doc:
    return {"net_pnl": f"{seq}.00",
            "sources": {f"s{j}": {"amount": f"{seq * j}.00"} for j in range(seq % 7)}}


def test_a_full_hub_ring_stays_under_its_bytes_and_an_old_client_gets_a_snapshot() -> None:
    max_bytes = 32 * 1024
    hub = Hub(ring_size=100000, ring_max_bytes=max_bytes)
    hub.reset("e1", 0, document(0), 0)
    for seq in range(1, 2001):
        hub.publish(Change("e1", seq, seq, document(seq), diff(document(seq - 1), document(seq))))
        assert hub.ring.nbytes <= max_bytes
    first = hub.ring.first_prev
    assert first is not None and 1000 < first < 2000
    gone = hub.catch_up(Position("e1", first - 1))
    assert gone is not None and gone.kind == "snapshot"  # never a silent gap
    held = hub.catch_up(Position("e1", first))
    assert held is not None and held.kind == "delta"
    body = json.loads(held.text)
    assert body["prev"] == first and body["seq"] == 2000
    assert apply_patch(document(first), body["patch"]) == document(2000)


def book_documents(count: int) -> list[Doc]:
    """Real snapshot documents (the engine's Book), one cost more at each step."""
    book, docs = Book(), []
    for seq in range(count):
        if seq:
            book.ingest("shop", [Cost(id=f"c{seq}", amount=Decimal(seq), category="ai", ts=T0)])
        docs.append(book.document(T0 + timedelta(seconds=seq)))
    return docs


def test_the_grpc_copy_stays_under_its_bytes_and_merges_from_the_oldest_held() -> None:
    docs = book_documents(600)
    max_bytes = 16 * 1024
    ring = EventRing(100000, max_bytes)
    ring.publish(Published("snapshot", "e1", 0, 0, 0, docs[0], {}))
    for seq in range(1, 600):
        ring.publish(Published("delta", "e1", seq, seq - 1, seq, docs[seq],
                               diff(docs[seq - 1], docs[seq])))
        assert ring.ring.nbytes <= max_bytes
    first = ring.ring.first_prev
    assert first is not None and 0 < first < 590
    gone = ring.catch_up(Position("e1", first - 1))
    assert gone is not None and gone.kind == "snapshot"
    caught = ring.catch_up(Position("e1", first))
    assert caught is not None and caught.kind == "delta" and caught.position == Position("e1", 599)
    message = pb.PnlEvent.FromString(caught.data)
    assert (message.prev_seq, message.seq) == (first, 599)
    assert apply_patch(docs[first], patch_from_struct(message.delta.patch)) == docs[599]
