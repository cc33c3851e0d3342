"""Records, contributions and explain on a real SQLite file, through the real engine steps
and writer transaction (``Desk`` from test_recovery), including retracts, re-marks and restarts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pnl import SOURCED, feed
from test_recovery import STEP, Desk, _schema_1_database, cost

from northstard.actors.hub import Position as At
from northstard.core.contributions import Figures, add_into, figure_contributions, figures
from northstard.core.pnl import Book
from northstard.core.records import Cost, Invoice, Position, Price, Record
from northstard.errors import RequestError
from northstard.store.explain_read import database_epoch, doc_at, explain
from northstard.store.record_log import LEADS, log_from
from northstard.store.record_pages import SCAN_BUDGET, RecordQuery, query_plan, read_page
from northstard.store.sqlite import open_reader

from unit_helpers import T0

D = Decimal


def same(left: Figures, right: Figures) -> bool:
    """Equal figure maps, a missing path counting as zero."""
    return all(left.get(p, D(0)) == right.get(p, D(0)) for p in {*left, *right})


def summed(parts: Sequence[dict[str, str]]) -> Figures:
    total: Figures = {}
    for part in parts:
        add_into(total, {path: D(amount) for path, amount in part.items()})
    return total


@settings(deadline=None, max_examples=100)
@given(st.lists(SOURCED, max_size=25), st.sampled_from(["invoiced", "collected"]))
def test_current_records_contributions_sum_to_the_documents_figures(
    batch: list[tuple[str, Record]], basis: str
) -> None:
    book = Book(basis=basis)  # type: ignore[arg-type]
    feed(book, batch)
    total: Figures = {}
    for (source, _, _), record in book.records.items():
        price = book.records.get((source, "price", getattr(record, "ticker", "")))
        add_into(total, figure_contributions(record, price if isinstance(price, Price) else None,
                                             book.basis))
    assert same(total, figures(book.document(T0)))


def all_pages(conn: Any, query: RecordQuery) -> Iterator[dict[str, Any]]:
    while True:
        page = read_page(conn, query)
        yield from page.records
        if page.next_cursor is None:
            return
        query = RecordQuery(**{**query.__dict__, "after": page.next_cursor})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=20), write_every=st.sampled_from([1, 3]),
       data=st.data())
def test_explain_items_sum_exactly_to_the_difference_of_the_documents(
    tmp_path_factory: Any, steps: list[Any], write_every: int, data: st.DataObject
) -> None:
    with played(tmp_path_factory, steps, write_every) as (docs, conn, epoch):
        for _ in range(4):
            start = data.draw(st.sampled_from(sorted(docs)))
            end = data.draw(st.sampled_from([s for s in sorted(docs) if s >= start]))
            answer = explain(conn, At(epoch, start), At(epoch, end), limit=3)
            assert doc_at(conn, end) == docs[end]
            expected = moved(docs, start, end)
            assert summed([answer["difference"]]) == expected
            assert same(summed([i["contributions"] for i in answer["items"]]), expected)
            assert "unexplained" not in {i["kind"] for i in answer["items"]}
            for name in ("source", "kind"):  # every item has both: each is a full cut
                assert same(summed(list(answer["groups"][name].values())), expected)
        current = list(all_pages(conn, RecordQuery(limit=2)))
        assert same(summed([r["contributions"] for r in current]), figures(docs[max(docs)]))


@contextmanager
def played(tmp_path_factory: Any, steps: Sequence[Any],
           write_every: int) -> Iterator[tuple[dict[int, dict[str, Any]], sqlite3.Connection, str]]:
    """A history played by a ``Desk`` and written: its documents by seq, a read-only
    connection to the database and its epoch."""
    desk = Desk(tmp_path_factory.mktemp("played") / "northstard.db", write_every=write_every)
    try:
        docs = desk.play(steps)
        with closing(open_reader(desk.db)) as conn:
            yield docs, conn, database_epoch(conn)
    finally:
        desk.close()


def moved(docs: dict[int, dict[str, Any]], start: int, end: int) -> Figures:
    """What every figure moved from the document at ``start`` to the one at ``end`` (non-zero)."""
    return {p: a for p, a in _diff(figures(docs[end]), figures(docs[start])).items() if a}


def _diff(new: Figures, old: Figures) -> Figures:
    out = dict(new)
    add_into(out, old, -1)
    return out


def test_a_price_move_is_an_item_of_its_own(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("kalshi", [Price(id="KXA-1", yes_bid=D("0.52")),
                                Position(id="p1", ticker="KXA-1", count=D(9), cost_basis=D("4.00"))])
        start = desk.state.seq
        desk.reading("kalshi", [Price(id="KXA-1", yes_bid=D("0.56"))])
        with closing(open_reader(desk.db)) as conn:
            answer = explain(conn, At(database_epoch(conn), start), None, limit=10)
    finally:
        desk.close()
    [item] = answer["items"]
    assert item["kind"] == "price" and item["ticker"] == "KXA-1"
    assert item["label"] == "KXA-1 bid 0.52 → 0.56: unrealized +0.36"
    assert item["contributions"] == {"net_pnl": "0.36", "trading.total": "0.36",
                                     "trading.unrealized": "0.36", "agents.unattributed.net": "0.36",
                                     "agents.unattributed.trading": "0.36"}
    assert answer["difference"]["net_pnl"] == "0.36"


def test_a_position_moving_to_another_market_is_counted_at_each_markets_price(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("kalshi", [Price(id="T1", yes_bid=D("0.50")), Price(id="T2", yes_bid=D("0.90")),
                                Position(id="a", ticker="T1", count=D(2), cost_basis=D("0.40"))])
        start = desk.state.seq
        before = desk.state.doc
        desk.reading("kalshi", [Position(id="a", ticker="T2", count=D(2), cost_basis=D("0.40"))])
        with closing(open_reader(desk.db)) as conn:
            answer = explain(conn, At(database_epoch(conn), start), None, limit=10)
        after = desk.state.doc
    finally:
        desk.close()
    assert before is not None and after is not None
    [item] = answer["items"]
    assert item["contributions"]["trading.unrealized"] == "0.80"  # 2 x 0.90 - 2 x 0.50
    assert same(summed([item["contributions"]]), _diff(figures(after), figures(before)))


def test_replaced_and_retracted_versions_stay_visible(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("stripe", [cost(1, "1.25", agent="atlas"), cost(2, "2.00")])
        desk.reading("stripe", [cost(1, "3.00", agent="atlas")])
        desk.reading("stripe", [cost(1, "3.00", agent="atlas")], complete=("cost",))  # retracts c-2
        with closing(open_reader(desk.db)) as conn:
            every = list(all_pages(conn, RecordQuery(status="all")))
            current = list(all_pages(conn, RecordQuery(agent="atlas")))
            nobody = list(all_pages(conn, RecordQuery(agent="unattributed", status="all")))
    finally:
        desk.close()
    by_status = {(r["id"], r["status"]): r for r in every}
    assert set(by_status) == {("c-1", "replaced"), ("c-1", "current"), ("c-2", "retracted")}
    assert by_status["c-1", "replaced"]["changes"][1]["action"] == "replaced"
    assert by_status["c-2", "retracted"]["contributions"] == {}
    assert [r["fields"]["amount"] for r in current] == ["3.00"]
    assert [r["id"] for r in nobody] == ["c-2"]  # the document's "unattributed" agent
    assert current[0]["contributions"]["costs.by_model.claude-haiku-4"] == "3.00"
    assert current[0]["contributions"]["agents.atlas.net"] == "-3.00"


@pytest.mark.parametrize("filters", [{}, {"source": "s1"}, {"kind": "cost"}, {"agent": "a1"},
                                     {"model": "m"}, {"ticker": "T"}, {"source": "s1", "agent": "a1"}])
def test_a_records_page_reads_an_index_range(tmp_path: Path, filters: dict[str, str]) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("stripe", [cost(1)])
        with closing(open_reader(desk.db)) as conn:
            plan = query_plan(conn, RecordQuery(**filters, from_ms=0, to_ms=10**13,
                                                after=(0, "a", "b", "c", 0)))
    finally:
        desk.close()
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # the order comes from the index, not a sort
    lead = next((name for name in LEADS if name in filters), "time")
    assert f"rec_log_{lead} " in plan, plan  # the ticker and model ones too: partial, still used


def modelled(i: int, model: str) -> Cost:
    return Cost(id=f"c-{i}", amount=D("1.25"), category="ai", model=model, ts=T0)


def test_a_schema_7_database_gets_partial_ticker_and_model_indexes(tmp_path: Path) -> None:
    """Migration 8 rebuilds the two indexes with only the rows that have a ticker or model;
    the pages filtered by them answer the same records before and after, and new ones."""
    db = tmp_path / "n.db"
    desk = Desk(db)
    try:
        desk.reading("kalshi", [Price(id="T", yes_bid=D("0.50")),
                                Position(id="a", ticker="T", count=D(4), cost_basis=D("1.00"))])
        desk.reading("stripe", [modelled(1, "m"), modelled(2, "n")])
        desk.flush()
    finally:
        desk.close()
    queries = [RecordQuery(ticker="T", status="all"), RecordQuery(model="m", status="all")]

    def ids() -> list[list[object]]:
        with closing(open_reader(db)) as conn:
            return [[r["id"] for r in read_page(conn, q).records] for q in queries]

    before = ids()
    with closing(sqlite3.connect(db)) as conn:  # as the previous northstard left it: schema 7
        for lead in ("ticker", "model"):
            conn.execute(f"DROP INDEX rec_log_{lead}")
            conn.execute(f"CREATE INDEX rec_log_{lead} ON rec_log ({lead}, time_ms, source, kind, id, seq)")
        conn.execute("PRAGMA user_version = 7")
        conn.commit()
    desk = Desk(db)  # opening the writer migrates
    try:
        with closing(open_reader(db)) as conn:
            sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE name IN"
                                    " ('rec_log_ticker', 'rec_log_model')").fetchall())
        assert sql["rec_log_ticker"].endswith("WHERE ticker IS NOT NULL")
        assert sql["rec_log_model"].endswith("WHERE model IS NOT NULL")
        assert ids() == before == [["a", "T"], ["c-1"]]  # page order: kind "position" < "price"
        desk.reading("stripe", [modelled(3, "m")])
        desk.flush()
        assert ids()[1] == ["c-1", "c-3"]
    finally:
        desk.close()


def test_a_page_visits_at_most_its_budget_and_the_cursor_goes_on(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("stripe", [cost(i, agent="b") for i in range(300)]
                     + [Invoice(id=f"x-{i}", total=D(1), paid=D(0), status="open", ts=T0, agent="b")
                        for i in range(5)])
        with closing(open_reader(desk.db)) as conn:
            query = RecordQuery(agent="b", kind="invoice")  # the lead filter matches, the rest not
            page = read_page(conn, query, budget=50)
            assert page.visited == 50 and page.records == [] and page.next_cursor is not None
            seen, pages = [], 0
            query = RecordQuery(agent="b", kind="invoice", limit=2)
            while True:
                page = read_page(conn, query, budget=40)
                assert page.visited <= 40
                seen += [r["id"] for r in page.records]
                pages += 1
                if page.next_cursor is None:
                    break
                query = RecordQuery(**{**query.__dict__, "after": page.next_cursor})
    finally:
        desk.close()
    assert sorted(seen) == [f"x-{i}" for i in range(5)] and pages >= 305 // 40
    assert SCAN_BUDGET <= 20_000


def test_a_position_before_the_log_or_another_epoch_is_gone(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "n.db")
    try:
        desk.reading("stripe", [cost(1)])
        with closing(open_reader(desk.db)) as conn:
            with pytest.raises(RequestError) as caught:
                explain(conn, At("other", 0), None, limit=10)
            assert caught.value.status == 410 and caught.value.error == "position_gone"
            with pytest.raises(RequestError) as ahead:
                explain(conn, At(database_epoch(conn), 0), At(database_epoch(conn), 99), limit=10)
            assert ahead.value.status == 400
    finally:
        desk.close()


def test_an_old_database_gets_its_records_into_the_log_and_explains_from_then_on(
    tmp_path: Path,
) -> None:
    records: list[tuple[str, Record]] = [
        ("stripe", cost(1, agent="a")),
        ("kalshi", Position(id="open", ticker="T", count=D(2), cost_basis=D("1.00"))),
        ("kalshi", Price(id="T", yes_bid=D("0.6"))),
    ]
    reference = Book()
    for source, record in records:
        reference.add_source(source, source, 60.0)
        reference.ingest(source, [record])
    db = tmp_path / "old.db"
    _schema_1_database(db, records, reference.document(T0))  # at position old:7
    desk = Desk(db)
    try:
        desk.reading("kalshi", [Price(id="T", yes_bid=D("0.7"))])
        with closing(open_reader(db)) as conn:
            copied = list(all_pages(conn, RecordQuery()))
            assert log_from(conn) == 7
            with pytest.raises(RequestError) as caught:
                explain(conn, At("old", 6), None, limit=10)
            answer = explain(conn, At("old", 7), None, limit=10)
    finally:
        desk.close()
    assert caught.value.status == 410 and "starts at position 7" in caught.value.detail
    assert sorted(r["id"] for r in copied) == ["T", "c-1", "open"]
    assert same(summed([r["contributions"] for r in copied]), figures(desk.state.doc or {}))
    assert [i["label"] for i in answer["items"]] == ["T bid 0.60 → 0.70: unrealized +0.20"]
