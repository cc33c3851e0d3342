"""Explain over long ranges, from the rollup (store migration 5): exact, and the same as the
per-record answers of the changes in the range summed by group key. Real engine steps and
writer transactions on a real SQLite file (``Desk`` from test_recovery)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_drilldown import moved, played, same, summed
from test_recovery import READING, STEP, Desk, cost

from northstard.actors.hub import Position as At
from northstard.core.contributions import Figures, add_into
from northstard.core.records import Position, Price
from northstard.edges.grpc.queries import explain_response
from northstard.store.change_items import OPEN_POSITIONS
from northstard.store.explain_read import database_epoch, explain
from northstard.store.rollup import SUMS
from northstard.store.sqlite import open_reader

D = Decimal
ALL = 10**6  # a limit no answer here reaches: every item, no "other"
GROUPS = -1  # record_items_max below any count: the answer comes from the rollup
Key = tuple[Any, ...]


def key_of(item: dict[str, Any]) -> Key:
    return tuple(item[name] or "" for name in ("source", "kind", "agent", "model", "ticker"))


def by_key(items: list[dict[str, Any]]) -> dict[Key, Figures]:
    out: dict[Key, Figures] = {}
    for item in items:
        add_into(out.setdefault(key_of(item), {}), {p: D(a) for p, a in item["contributions"].items()})
    return {k: {p: a for p, a in v.items() if a} for k, v in out.items() if any(v.values())}


def per_change_by_key(conn: sqlite3.Connection, epoch: str, start: int, end: int) -> dict[Key, Figures]:
    """The per-record answers of each change in (start, end], summed by group key."""
    total: dict[Key, Figures] = {}
    for seq in range(start + 1, end + 1):
        answer = explain(conn, At(epoch, seq - 1), At(epoch, seq), limit=ALL, record_items_max=ALL)
        assert answer["items_by"] == "record"
        for key, sums in by_key(answer["items"]).items():
            add_into(total.setdefault(key, {}), sums)
    return {k: {p: a for p, a in v.items() if a} for k, v in total.items() if any(v.values())}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=20), write_every=st.sampled_from([1, 3]),
       data=st.data())
def test_the_rollup_answer_is_exact_and_equals_the_per_record_answers_summed_by_group(
    tmp_path_factory: Any, steps: list[Any], write_every: int, data: st.DataObject
) -> None:
    with played(tmp_path_factory, steps, write_every) as (docs, conn, epoch):
        for _ in range(4):
            start = data.draw(st.sampled_from(sorted(docs)))
            end = data.draw(st.sampled_from([s for s in sorted(docs) if s >= start]))
            answer = explain(conn, At(epoch, start), At(epoch, end), limit=ALL, record_items_max=GROUPS)
            assert answer["items_by"] == "group"
            expected = moved(docs, start, end)
            assert summed([answer["difference"]]) == expected
            assert same(summed([i["contributions"] for i in answer["items"]]), expected)
            assert "unexplained" not in {i["kind"] for i in answer["items"]}
            for name in ("source", "kind"):
                assert same(summed(list(answer["groups"][name].values())), expected)
            assert by_key(answer["items"]) == per_change_by_key(conn, epoch, start, end)
            short = explain(conn, At(epoch, start), At(epoch, end), limit=2, record_items_max=GROUPS)
            assert len(short["items"]) <= 3  # the limit, plus one "other"
            assert same(summed([i["contributions"] for i in short["items"]]), expected)


CHANGE = st.lists(READING, min_size=1, max_size=3) | st.just("restart")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(CHANGE, min_size=1, max_size=12), write_every=st.sampled_from([1, 3]))
def test_each_changes_group_sums_equal_its_per_record_items_when_readings_share_a_change(
    tmp_path_factory: Any, steps: list[Any], write_every: int
) -> None:
    """The engine merges the readings waiting for it into one change: the group sums it hands
    the writer (``explain.change_groups``) take each market's price and each key's version at
    the change's start, as the per-record answer read from the log does, whatever the order
    of prices and positions inside the change."""
    with played(tmp_path_factory, steps, write_every) as (docs, conn, epoch):
        for seq in sorted(docs)[1:]:
            answer = explain(conn, At(epoch, seq - 1), At(epoch, seq), limit=ALL,
                             record_items_max=GROUPS)
            assert by_key(answer["items"]) == per_change_by_key(conn, epoch, seq - 1, seq)
            assert same(summed([i["contributions"] for i in answer["items"]]), moved(docs, seq - 1, seq))


def test_a_price_moved_before_a_position_of_its_market_in_the_same_change_splits_at_the_start_price(
    tmp_path: Path,
) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("kalshi", [Price(id="T", yes_bid=D("0.50")),
                                Position(id="a", ticker="T", count=D(4), cost_basis=D("1.00"))])
        desk.change([("kalshi", [Price(id="T", yes_bid=D("0.75"))], ()),
                     ("kalshi", [Position(id="a", ticker="T", count=D(6), cost_basis=D("2.00"))], ())])
        with closing(open_reader(desk.db)) as conn:
            epoch = database_epoch(conn)
            grouped = explain(conn, At(epoch, 1), At(epoch, 2), limit=ALL, record_items_max=GROUPS)
            per_record = per_change_by_key(conn, epoch, 1, 2)
    finally:
        desk.close()
    assert by_key(grouped["items"]) == per_record
    # the position item at the start price 0.50: 6 x 0.50 - 2.00 - (4 x 0.50 - 1.00) = 0.00;
    # the price item: 6 x (0.75 - 0.50) = 1.50
    assert per_record[("kalshi", "price", "", "", "T")]["trading.unrealized"] == D("1.50")
    assert ("kalshi", "position", "unattributed", "", "T") not in per_record


def test_a_batch_that_does_not_commit_leaves_the_running_totals_as_the_database_has_them(
    tmp_path: Path,
) -> None:
    """The writer holds each group's running total between batches; a batch SQLite refuses
    (a real failure inside the transaction, after the rollup rows were queued) rolls back,
    and the retry adds to what the database has, not to what the failed batch had added."""
    desk = Desk(tmp_path / "n.db", write_every=2)
    try:
        desk.reading("stripe", [cost(1, "1.00", agent="atlas")])
        desk.reading("stripe", [cost(2, "2.00", agent="atlas")])  # written: running total 3.00
        desk.conn.execute("CREATE TEMP TRIGGER refuse BEFORE INSERT ON deltas"
                          " BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
        desk.reading("stripe", [cost(3, "4.00", agent="atlas")])
        with pytest.raises(sqlite3.IntegrityError, match="disk I/O error"):
            desk.reading("stripe", [cost(4, "8.00", agent="atlas")])
        assert desk.writer.rollup.held == {}  # forgotten: read again from the database
        desk.conn.execute("DROP TRIGGER refuse")
        desk.flush()  # the same two changes again
        with closing(open_reader(desk.db)) as conn:
            epoch = database_epoch(conn)
            answer = explain(conn, At(epoch, 0), None, limit=ALL, record_items_max=GROUPS)
            totals = [row[0] for row in conn.execute("SELECT total FROM rollup ORDER BY seq")]
    finally:
        desk.close()
    assert answer["difference"]["costs.total"] == "15.00"
    assert by_key(answer["items"]) == {
        ("stripe", "cost", "atlas", "claude-haiku-4", ""): {
            "agents.atlas.costs": D("15.00"), "agents.atlas.net": D("-15.00"),
            "costs.by_category.ai": D("15.00"), "costs.by_model.claude-haiku-4": D("15.00"),
            "costs.total": D("15.00"), "net_pnl": D("-15.00")}}
    assert [json.loads(t)["costs.total"] for t in totals] == ["1.00", "3.00", "7.00", "15.00"]


def test_a_long_range_is_answered_by_group_not_refused(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("kalshi", [Price(id="KXA-1", yes_bid=D("0.52")),
                                Position(id="p1", ticker="KXA-1", count=D(10), cost_basis=D("4.00"))])
        for i in range(6):
            desk.reading("stripe", [cost(i, "2.00", agent="atlas")])
        desk.reading("kalshi", [Price(id="KXA-1", yes_bid=D("0.60"))])
        with closing(open_reader(desk.db)) as conn:
            epoch = database_epoch(conn)
            answer = explain(conn, At(epoch, 1), None, limit=10, record_items_max=3)
            records = explain(conn, At(epoch, 1), None, limit=10)
    finally:
        desk.close()
    assert answer["items_by"] == "group" and records["items_by"] == "record"
    assert [(i["kind"], i["id"], i["contributions"]["net_pnl"]) for i in answer["items"]] == [
        ("cost", "", "-12.00"), ("price", "", "0.80")]
    assert answer["items"][0]["label"] == (
        "cost claude-haiku-4 (atlas) from stripe, all records: net -12.00")
    assert answer["difference"] == records["difference"]
    assert answer["groups"] == records["groups"]
    assert len(records["items"]) == 7  # six costs and the price move, one item each
    grouped, per_record = explain_response(answer), explain_response(records)  # what gRPC sends
    assert (grouped.items_by, per_record.items_by) == ("group", "record")
    assert [(i.kind, i.id) for i in grouped.items] == [("cost", ""), ("price", "")]


def test_an_existing_database_gets_its_rollup_at_migration(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    desk = Desk(db)
    try:
        desk.reading("kalshi", [Price(id="T", yes_bid=D("0.50")),
                                Position(id="a", ticker="T", count=D(4), cost_basis=D("1.00"))])
        desk.reading("stripe", [cost(1, agent="atlas"), cost(2)])
        desk.reading("kalshi", [Price(id="T", yes_bid=D("0.75"))])
        desk.flush()
    finally:
        desk.close()
    with closing(open_reader(db)) as conn:
        before = explain(conn, At(database_epoch(conn), 0), None, limit=ALL, record_items_max=GROUPS)
    with closing(sqlite3.connect(db)) as conn:  # as the previous northstard left it: schema 4
        conn.execute("DROP TABLE rollup")
        conn.execute("DROP TABLE rollup_group")
        conn.execute("DROP INDEX rec_log_open_position")
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
    desk = Desk(db)  # opening the writer migrates
    try:
        desk.reading("stripe", [cost(3, "0.50", agent="atlas")])
        desk.flush()
        with closing(open_reader(db)) as conn:
            epoch = database_epoch(conn)
            same_range = explain(conn, At(epoch, 0), At(epoch, 3), limit=ALL, record_items_max=GROUPS)
            later = explain(conn, At(epoch, 0), None, limit=ALL, record_items_max=GROUPS)
            assert by_key(later["items"]) == per_change_by_key(conn, epoch, 0, 4)
    finally:
        desk.close()
    assert same_range["items"] == before["items"]
    assert later["difference"]["net_pnl"] == "-1.00"  # T: 2.00 unrealized; costs: 3.00


async def test_the_daemons_writer_keeps_the_rollup_across_a_restart(tmp_path: Path) -> None:
    """A real daemon (scripted source, loopback): what its writer stored answers a range by
    group, equal to the per-record answer /api/pnl/explain gives, after a restart too."""
    from test_drilldown_daemon import daemon_on, opus, push_and_wait

    async with daemon_on(tmp_path) as daemon, httpx.AsyncClient(base_url=daemon.url) as http:
        start = await push_and_wait(http, [opus(1, "1.25")], "1.25")
        await push_and_wait(http, [opus(2, "3.00"), opus(1, "2.00")], "5.00")
    async with daemon_on(tmp_path) as daemon, httpx.AsyncClient(base_url=daemon.url) as http:
        await push_and_wait(http, [opus(3, "0.50")], "5.50")
        rest = (await http.get("/api/pnl/explain", params={"from": start})).json()
    with closing(open_reader(tmp_path / "northstard.db")) as conn:
        epoch, seq = start.split(":")
        answer = explain(conn, At(epoch, int(seq)), None, limit=ALL, record_items_max=GROUPS)
    assert rest["items_by"] == "record" and answer["items_by"] == "group"
    assert answer["difference"] == rest["difference"] == {
        "agents.atlas.costs": "4.25", "agents.atlas.net": "-4.25", "costs.by_category.ai": "4.25",
        "costs.by_model.claude-opus-4": "4.25", "costs.total": "4.25", "net_pnl": "-4.25"}
    assert answer["groups"] == rest["groups"]
    assert by_key(answer["items"]) == by_key(rest["items"])
    assert [i["label"] for i in answer["items"]] == [
        "cost claude-opus-4 (atlas) from ledger, all records: net -4.25"]


def test_the_rollup_read_and_the_writers_market_read_are_index_ranges(tmp_path: Path) -> None:
    """The bounds in rollup's docstring: no read scans a table (SQLite's own query plans)."""
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("kalshi", [Price(id="T", yes_bid=D("0.50")),
                                Position(id="a", ticker="T", count=D(4), cost_basis=D("1.00"))])
        desk.flush()
        with closing(open_reader(desk.db)) as conn:
            sums = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + SUMS,
                                                   {"start": 0, "end": 1})]
            market = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + OPEN_POSITIONS,
                                                     ("T", "kalshi"))]
    finally:
        desk.close()
    assert sums[0] == "SEARCH g USING INDEX rollup_group_last (last_seq>?)"
    assert [s for s in sums if s.startswith("SEARCH r")] == [
        "SEARCH r USING PRIMARY KEY (group_id=? AND seq<?)"] * 2
    assert not [s for s in sums + market if s.startswith("SCAN")]
    assert market == ["SEARCH rec_log USING INDEX rec_log_open_position (ticker=? AND source=?)"]
