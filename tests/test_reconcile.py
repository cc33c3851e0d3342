"""A full poll withdraws what the source no longer has (closed positions, say)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from northstard.core.pnl import Book
from northstard.core.records import Cost, Position, Retract

TS = datetime(2026, 11, 21, 12, tzinfo=UTC)


def position(ticker: str, count: str) -> Position:
    return Position(id=ticker, ticker=ticker, count=Decimal(count), cost_basis=Decimal("1.00"),
                    realized_pnl=Decimal("0.50"))


def test_complete_kinds_withdraw_missing_records_of_those_kinds_only() -> None:
    book = Book()
    cost = Cost(id="c", amount=Decimal("2.00"), category="ai", ts=TS)
    book.ingest("k", [position("A", "1"), position("B", "2"), cost])
    assert book.total("trading", "realized") == Decimal("1.00")
    changed = book.ingest("k", [position("A", "1")], complete_kinds=("position",))
    assert changed == [Retract(id="B", target_kind="position")]
    assert book.total("trading", "realized") == Decimal("0.50")
    assert book.total("costs", "total") == Decimal("2.00")  # another kind: untouched
    assert book.ingest("k", [], complete_kinds=("position",)) == [
        Retract(id="A", target_kind="position")
    ]
    assert book.total("trading", "realized") == Decimal(0)


def test_complete_kinds_touch_only_their_own_source() -> None:
    book = Book()
    book.ingest("one", [position("A", "1")])
    book.ingest("two", [position("A", "1")])
    book.ingest("two", [], complete_kinds=("position",))
    assert book.total("trading", "realized") == Decimal("0.50")
    assert ("one", "position", "A") in book.records
