"""The hub in isolation: positions, merged catch-up, ring eviction, rate limits, close."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import trio
import trio.testing

from northstard.actors.hub import Hub, HubClosed, Position, parse_position
from northstard.core.change import Change
from northstard.core.mergepatch import Doc, diff

from clients import Follower


def docs(count: int) -> list[Doc]:
    return [{"net_pnl": f"{i}.00", "costs": {"by_model": {f"m{j}": "1.00" for j in range(i % 4)}},
             **({"gross_margin_pct": "50.00"} if i % 3 else {})} for i in range(count)]


def feed(hub: Hub, documents: list[Doc], epoch: str = "e1") -> None:
    hub.reset(epoch, 0, documents[0], 0)
    for seq, (old, new) in enumerate(itertools.pairwise(documents), start=1):
        hub.publish(Change(epoch, seq, seq * 1000, new, diff(old, new)))


def apply(follower: Follower, text: str | None) -> None:
    assert text is not None
    follower.apply(json.loads(text))


def test_catch_up_from_every_held_position_lands_on_the_exact_state() -> None:
    documents = docs(30)
    hub = Hub(ring_size=100)
    feed(hub, documents)
    for start in range(0, 30):
        follower = Follower(epoch="e1", seq=start, doc=documents[start])
        message = hub.catch_up(Position("e1", start))
        if start == 29:
            assert message is None
            continue
        assert message is not None and message.kind == "delta"
        apply(follower, message.text)
        assert follower.doc == documents[-1] and follower.seq == 29


def test_positions_outside_the_ring_or_epoch_get_a_snapshot() -> None:
    documents = docs(30)
    hub = Hub(ring_size=5)
    feed(hub, documents)
    for position in (Position("e1", 3), Position("other", 29), Position("e1", 99), None):
        message = hub.catch_up(position)
        assert message is not None and message.kind == "snapshot"
        body = json.loads(message.text)
        assert body["data"] == documents[-1] and body["seq"] == 29
    assert hub.catch_up(Position("e1", 24)) is not None
    assert hub.catch_up(Position("e1", 24)).kind == "delta"  # type: ignore[union-attr]


def test_a_merged_delta_is_encoded_once_per_starting_point() -> None:
    hub = Hub()
    feed(hub, docs(10))
    first = hub.catch_up(Position("e1", 2))
    again = hub.catch_up(Position("e1", 2))
    assert first is not None and again is not None and first.text is again.text


@pytest.mark.parametrize("text", ["", "nocolon", "e:", ":5", "e:-1", "e:1.5", "e:" + "9" * 30])
def test_parse_position_refuses_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_position(text)


def test_parse_position() -> None:
    assert parse_position('"abc:12"') == Position("abc", 12)
    assert parse_position("a:b:7") == Position("a:b", 7)


async def test_a_rate_limited_subscriber_gets_merged_changes(autojump_clock: Any) -> None:
    documents = docs(41)
    hub = Hub()
    hub.reset("e1", 0, documents[0], 0)
    follower = Follower()
    received: list[float] = []

    async def consume() -> None:
        with hub.subscribe("test", None, max_rate_hz=2.0) as sub:
            while True:
                message = await sub.next_message()
                received.append(trio.current_time())
                apply(follower, message.text)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        for seq in range(1, 41):  # 40 changes over 4 virtual seconds
            await trio.sleep(0.1)
            hub.publish(Change("e1", seq, seq, documents[seq], diff(documents[seq - 1], documents[seq])))
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert follower.doc == documents[-1] and follower.seq == 40
    gaps = [b - a for a, b in itertools.pairwise(received)]
    assert min(gaps) >= 0.5 - 1e-9
    assert len(received) <= 1 + 4 * 2 + 1


async def test_close_ends_every_waiting_subscriber() -> None:
    hub = Hub()
    feed(hub, docs(3))
    ended = []

    async def wait(sub_position: Position) -> None:
        with hub.subscribe("test", sub_position) as sub, pytest.raises(HubClosed):
            await sub.next_message()
        ended.append(sub_position)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(wait, hub.position)
        await trio.testing.wait_all_tasks_blocked()
        assert hub.clients["test"] == 3
        hub.close()
    assert len(ended) == 3 and hub.clients["test"] == 0
