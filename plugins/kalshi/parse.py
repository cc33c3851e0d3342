"""Kalshi REST rows and WebSocket messages to northstard records. Pure: no I/O.

Each function takes one decoded row (see ``fields.loads``) and a ``where``
label for error messages, and returns one record or raises
``SchemaDriftError`` naming the field. Field names are those of
api-contracts.md ("Kalshi Trade API v2"); WebSocket messages are assumed to
mirror them (see ``stream.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from northstard.records import Balance, Fill, Position, Price, Settlement

from .fields import cents, drift, moment, money, money_or_none, text, text_or_none, unix
from .settings import Mark

__all__ = ["as_of", "balance", "each", "fill", "position", "price", "settlement", "ticker_of"]

R = TypeVar("R")


def each(
    rows: Iterable[Mapping[str, Any]], where: str, parse: Callable[[Mapping[str, Any], str], R]
) -> list[R]:
    """``parse`` applied to every row, each labelled ``where[i]`` for its errors."""
    return [parse(row, f"{where}[{i}]") for i, row in enumerate(rows)]


def as_of(body: Mapping[str, Any]) -> datetime:
    """The freshness of portfolio data, from ``/exchange/user_data_timestamp``."""
    return moment(body, "as_of_time", "GET /exchange/user_data_timestamp")


def balance(body: Mapping[str, Any], fallback_ts: datetime, record_id: str, agent: str | None) -> Balance:
    """Cash from ``/portfolio/balance``: ``balance_dollars``, else integer-cents ``balance``."""
    where = "GET /portfolio/balance"
    if "balance_dollars" in body:
        cash = money(body, "balance_dollars", where)
    else:
        cash = cents(body, "balance", where)
    ts = unix(body, "updated_ts", where) if body.get("updated_ts") is not None else fallback_ts
    return Balance(id=record_id, agent=agent, cash=cash, ts=ts)


def ticker_of(row: Mapping[str, Any], where: str) -> str:
    """A row's market: ``ticker`` (REST) or ``market_ticker`` (WebSocket)."""
    if "ticker" not in row and "market_ticker" in row:
        return text(row, "market_ticker", where)
    return text(row, "ticker", where)


def position(
    row: Mapping[str, Any], where: str, mark: Mark, includes_fees: bool, agent: str | None
) -> Position:
    """A market position: count from ``position_fp`` (+YES/-NO), cost basis = exposure."""
    ticker = ticker_of(row, where)
    fees = money(row, "fees_paid_dollars", where)
    realized = money(row, "realized_pnl_dollars", where)
    return Position(
        id=ticker,
        agent=agent,
        ticker=ticker,
        count=money(row, "position_fp", where),
        cost_basis=money(row, "market_exposure_dollars", where),
        realized_pnl=realized if includes_fees else realized - fees,
        fees=fees,
        mark=mark,
    )


def price(row: Mapping[str, Any], where: str, agent: str | None) -> Price:
    """The quotes of one market from ``/markets``; every quote key must be there (null allowed)."""
    ticker = ticker_of(row, where)
    return Price(
        id=ticker,
        agent=agent,
        yes_bid=money_or_none(row, "yes_bid_dollars", where),
        yes_ask=money_or_none(row, "yes_ask_dollars", where),
        no_bid=money_or_none(row, "no_bid_dollars", where),
        no_ask=money_or_none(row, "no_ask_dollars", where),
        last=money_or_none(row, "last_price_dollars", where),
    )


def _side(row: Mapping[str, Any], where: str) -> Literal["yes", "no"]:
    name = "outcome_side" if "outcome_side" in row else "side"
    value = text(row, name, where)
    if value == "yes":
        return "yes"
    if value == "no":
        return "no"
    raise drift(where, f"{name}: expected yes or no, got {value[:20]!r}")


def _action(row: Mapping[str, Any], where: str) -> Literal["buy", "sell"]:
    # ``action`` is deprecated but still sent; without it, a fill on the bid
    # side of the book is a buy (an assumption: api-contracts names book_side only)
    action = text_or_none(row, "action", where)
    if action is None:
        action = {"bid": "buy", "ask": "sell"}.get(text(row, "book_side", where), "")
    if action == "buy":
        return "buy"
    if action == "sell":
        return "sell"
    raise drift(where, "action/book_side: expected buy|sell or bid|ask")


def fill(row: Mapping[str, Any], where: str, agent: str | None) -> Fill:
    """One execution; ``fill_id`` (legacy ``trade_id``) is its id."""
    fill_id = text(row, "fill_id" if "fill_id" in row else "trade_id", where)
    side = _side(row, where)
    price_field = "yes_price_dollars" if side == "yes" else "no_price_dollars"
    ts = moment(row, "created_time", where) if "created_time" in row else unix(row, "ts", where)
    return Fill(
        id=fill_id,
        agent=agent,
        ticker=ticker_of(row, where),
        side=side,
        action=_action(row, where),
        count=money(row, "count_fp", where),
        price=money(row, price_field, where),
        fee=money(row, "fee_cost", where),
        ts=ts,
    )


def settlement(row: Mapping[str, Any], where: str, agent: str | None) -> Settlement:
    """A settled market: revenue (integer cents) / 100, cost = YES + NO total cost, fee."""
    ticker = text(row, "ticker", where)
    cost: Decimal = money(row, "yes_total_cost_dollars", where) + money(
        row, "no_total_cost_dollars", where
    )
    return Settlement(
        id=ticker,
        agent=agent,
        ticker=ticker,
        revenue=cents(row, "revenue", where),
        cost=cost,
        fee=money(row, "fee_cost", where),
        result=text(row, "market_result", where),
        ts=moment(row, "settled_time", where),
    )
