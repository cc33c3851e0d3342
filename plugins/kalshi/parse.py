"""Kalshi REST rows and WebSocket messages to northstard records. Pure: no I/O.

Each function takes one decoded row (see ``fields.loads``) and a ``where``
label for error messages, and returns one record or raises
``SchemaDriftError`` naming the field.

Field names are checked against Kalshi's published specifications, vendored
in tests/contract/specs/: the OpenAPI document 3.30.0 (schemas
``GetBalanceResponse``, ``MarketPosition``, ``Fill``, ``Settlement``,
``Market``, ``GetUserDataTimestampResponse``) for REST rows, and the
AsyncAPI document (channels ``fill``, ``market_positions``, ``ticker``) for
WebSocket messages, which do NOT all mirror REST: a ``market_position``
message carries its cost basis as ``position_cost_dollars`` (REST:
``market_exposure_dollars``), and a ``fill`` message carries only
``yes_price_dollars`` (a NO fill's price is 1 - that) and a legacy
``action`` that may be ``sell_partial``, ``sell_to_close`` or "".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from northstard.core.records import Balance, Fill, Position, Price, Settlement

from .fields import cents, drift, moment, money, money_or_none, text, unix, unix_ms
from .settings import Mark

__all__ = [
    "REST_COST",
    "WS_COST",
    "as_of",
    "balance",
    "each",
    "fill",
    "position",
    "price",
    "settlement",
    "ticker_of",
]

R = TypeVar("R")

REST_COST = "market_exposure_dollars"  # OpenAPI 3.30.0 MarketPosition
WS_COST = "position_cost_dollars"  # AsyncAPI market_positions: "current cost basis of the position"
_ONE = Decimal(1)
_SELLS = frozenset({"sell", "sell_partial", "sell_to_close"})  # AsyncAPI fill.action enum


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
    row: Mapping[str, Any], where: str, mark: Mark, includes_fees: bool, agent: str | None,
    cost_field: str = REST_COST,
) -> Position:
    """A market position: count from ``position_fp`` (+YES/-NO), cost basis from ``cost_field``.

    Whether ``realized_pnl_dollars`` is net of fees neither specification says
    (both only name it "realized profit/loss"): ``includes_fees`` is the setting.
    """
    ticker = ticker_of(row, where)
    fees = money(row, "fees_paid_dollars", where)
    realized = money(row, "realized_pnl_dollars", where)
    return Position(
        id=ticker,
        agent=agent,
        ticker=ticker,
        count=money(row, "position_fp", where),
        cost_basis=money(row, cost_field, where),
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


def _yes_no(row: Mapping[str, Any], name: str, where: str) -> Literal["yes", "no"]:
    value = text(row, name, where)
    if value == "yes":
        return "yes"
    if value == "no":
        return "no"
    raise drift(where, f"{name}: expected yes or no, got {value[:20]!r}")


def _direction(row: Mapping[str, Any], where: str) -> tuple[Literal["yes", "no"], Literal["buy", "sell"]]:
    """(side, action) of a fill.

    OpenAPI 3.30.0 ``Fill.outcome_side``: "buy-yes and sell-no produce 'yes';
    buy-no and sell-yes produce 'no'" and it is the canonical direction, so a
    fill with ``outcome_side`` is a buy of that side (whatever the deprecated
    ``side``/``action`` say; ``book_side`` is the same fact again: bid = yes).
    Without it, the legacy pair: ``side`` and ``action`` (the stream's
    ``sell_partial``/``sell_to_close`` are sells).
    """
    if "outcome_side" in row:
        return _yes_no(row, "outcome_side", where), "buy"
    side = _yes_no(row, "side", where)
    action = text(row, "action", where)
    if action == "buy":
        return side, "buy"
    if action in _SELLS:
        return side, "sell"
    raise drift(where, f"action: expected buy or a sell, got {action[:20]!r}")


def _price(row: Mapping[str, Any], side: Literal["yes", "no"], where: str) -> Decimal:
    """The price paid for ``side``: a NO price, when not sent (stream fills), is 1 - the YES price."""
    if side == "yes":
        return money(row, "yes_price_dollars", where)
    if "no_price_dollars" in row:
        return money(row, "no_price_dollars", where)
    return _ONE - money(row, "yes_price_dollars", where)


def _fill_time(row: Mapping[str, Any], where: str) -> datetime:
    """REST ``created_time``; the stream's ``ts_ms`` (its ``ts`` in seconds is deprecated); else ``ts``."""
    if "created_time" in row:
        return moment(row, "created_time", where)
    if "ts_ms" in row:
        return unix_ms(row, "ts_ms", where)
    return unix(row, "ts", where)


def fill(row: Mapping[str, Any], where: str, agent: str | None) -> Fill:
    """One execution; ``fill_id`` (REST; the stream sends only ``trade_id``, the same id) is its id."""
    fill_id = text(row, "fill_id" if "fill_id" in row else "trade_id", where)
    side, action = _direction(row, where)
    ts = _fill_time(row, where)
    return Fill(
        id=fill_id,
        agent=agent,
        ticker=ticker_of(row, where),
        side=side,
        action=action,
        count=money(row, "count_fp", where),
        price=_price(row, side, where),
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
