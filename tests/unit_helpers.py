"""Shared helpers of the unit tests: hypothesis strategies for records, document walkers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from northstard.core.records import (
    Balance,
    Cost,
    Fill,
    Invoice,
    Position,
    Price,
    Refund,
    Retract,
    RevenueTotal,
    Settlement,
)

T0 = datetime(2026, 11, 21, 19, 25, 2, 437000, tzinfo=UTC)

MONEY = st.decimals(
    allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9
)
QUOTE = st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=0, max_value=1)
COUNT = st.integers(-500, 500).map(Decimal)

WIDE_TEXT = st.text(min_size=1, max_size=12)
WIDE_AGENTS = st.none() | WIDE_TEXT
WIDE_TIMES = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]),
)


def record_strategies(
    *,
    ids: st.SearchStrategy[str] = WIDE_TEXT,
    tickers: st.SearchStrategy[str] = WIDE_TEXT,
    agents: st.SearchStrategy[str | None] = WIDE_AGENTS,
    names: st.SearchStrategy[str] = WIDE_TEXT,
    models: st.SearchStrategy[str | None] | None = None,
    money: st.SearchStrategy[Decimal] = MONEY,
    quotes: st.SearchStrategy[Decimal] = QUOTE,
    counts: st.SearchStrategy[Decimal] = COUNT,
    times: st.SearchStrategy[datetime] = WIDE_TIMES,
    target_kinds: tuple[str, ...] = (
        "position", "price", "fill", "settlement", "balance", "invoice", "refund",
        "revenue_total", "cost",
    ),
) -> dict[str, st.SearchStrategy[Any]]:
    """A strategy per record kind; narrow ``ids``/``tickers`` make upserts and retracts collide.

    A position may move to another ticker under the same id; a retract names an id or a
    ticker (so prices get retracted too).
    """
    opt_quote = st.none() | quotes
    models = st.none() | names if models is None else models

    def position(ticker: str, id: st.SearchStrategy[str]) -> st.SearchStrategy[Position]:
        return st.builds(Position, id=id, agent=agents, ticker=st.just(ticker), count=counts,
                         cost_basis=money, realized_pnl=money, fees=money,
                         mark=st.sampled_from(["bid", "mid", "last"]))

    positions = tickers.flatmap(lambda t: position(t, ids))
    retract_ids = ids | tickers
    kinds = [
        positions,
        st.builds(Price, id=tickers, agent=agents, yes_bid=opt_quote, yes_ask=opt_quote,
                  no_bid=opt_quote, no_ask=opt_quote, last=opt_quote),
        st.builds(Fill, id=ids, agent=agents, ticker=tickers, side=st.sampled_from(["yes", "no"]),
                  action=st.sampled_from(["buy", "sell"]), count=counts, price=quotes, fee=money,
                  ts=times),
        st.builds(Settlement, id=ids, agent=agents, ticker=tickers, revenue=money, cost=money,
                  fee=money, result=st.sampled_from(["yes", "no"]), ts=times),
        st.builds(Balance, id=ids, agent=agents, cash=money, ts=times),
        st.builds(Invoice, id=ids, agent=agents, total=money, paid=money,
                  status=st.sampled_from(["draft", "open", "paid", "uncollectible", "void"]),
                  ts=times),
        st.builds(Refund, id=ids, agent=agents, amount=money, ts=times),
        st.builds(RevenueTotal, id=ids, agent=agents, invoiced=money, collected=money, ts=times),
        st.builds(Cost, id=ids, agent=agents, amount=money, category=names, ts=times,
                  model=models, cost_type=st.none() | names, estimated=st.booleans()),
    ]
    kinds.append(st.builds(Retract, id=retract_ids, agent=agents,
                           target_kind=st.sampled_from(target_kinds)))
    classes = (Position, Price, Fill, Settlement, Balance, Invoice, Refund, RevenueTotal, Cost, Retract)
    return {cls.kind: strategy for cls, strategy in zip(classes, kinds, strict=True)}


def record_strategy(*, retracts: bool = True, **options: Any) -> st.SearchStrategy[Any]:
    """Any record kind (``options`` as for ``record_strategies``)."""
    by_kind = record_strategies(**options)
    if not retracts:
        del by_kind["retract"]
    return st.one_of(list(by_kind.values()))


def leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, leaf) of a JSON-like document."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from leaves(sub, (*path, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from leaves(sub, (*path, str(index)))
    else:
        yield path, value


def without(doc: dict[str, Any], *paths: tuple[str, ...]) -> dict[str, Any]:
    """A deep copy of ``doc`` without the given paths."""
    import copy

    out = copy.deepcopy(doc)
    for path in paths:
        target = out
        for key in path[:-1]:
            target = target[key]
        target.pop(path[-1], None)
    return out
