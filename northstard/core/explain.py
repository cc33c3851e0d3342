"""Explain a change of the P&L between two positions: the records behind it. Pure: no I/O.

Input: every key whose record changed between the positions (its version at
each end, None when absent) and the prices of the markets involved at each
end. Each changed record becomes an item whose contribution is its
contribution at the end minus at the start (``contributions``); a position's
change is split in two, so a price move is an item of its own:

    position item: c(position_end, price_start) - c(position_start, price_start)
    price item:    sum over the market's positions of c(position_end, price_end)
                   - c(position_end, price_start)

The two parts add up to c(position_end, price_end) - c(position_start, price_start),
so the items sum exactly to the difference of every figure, as the documents
at the two positions show it (the caller checks, and the tests prove it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from northstard.core.contributions import (
    Figures,
    add_into,
    figure_contributions,
    formatted,
    subtract,
)
from northstard.core.money import ZERO, format_money
from northstard.core.pnl import (
    UNATTRIBUTED,
    ChangeFacts,
    Market,
    RevenueBasis,
    contribution_in_context,
    exact,
)
from northstard.core.records import Cost, KeyChange, Position, Price, Record

__all__ = [
    "GROUPS", "GroupKey", "Item", "KeyChange", "by_group", "change_groups", "explain_items",
    "group_item", "group_key", "grouped", "limited", "rendered",
]

GROUPS = ("source", "kind", "agent", "model", "ticker")
GroupKey = tuple[str, str, str, str, str]  # (source, kind, agent, model, ticker); "" for none


@dataclass
class Item:
    source: str
    kind: str
    id: str
    label: str
    contributions: Figures
    agent: str | None = None
    model: str | None = None
    ticker: str | None = None

    def net(self) -> Decimal:
        return self.contributions.get("net_pnl", ZERO)


def _signed(amount: Decimal) -> str:
    text = format_money(amount)
    return text if text.startswith("-") else "+" + text


def _describe(change: KeyChange, net: Decimal) -> str:
    record = change.after or change.before
    assert record is not None
    verb = "retracted" if change.after is None else ("new" if change.before is None else "changed")
    detail = ""
    if isinstance(record, Cost):
        detail = f" {record.model or record.category}"
    elif isinstance(record, Position):
        detail = f" {record.ticker}"
    who = f" ({record.agent})" if record.agent else ""
    return f"{change.kind}{detail}{who} {change.id} {verb}: net {_signed(net)}"


def _quote(price: Price | None) -> str:
    if price is None:
        return "none"
    value = price.yes_bid if price.yes_bid is not None else price.last
    return "none" if value is None else str(value)


def _price_label(ticker: str, before: Price | None, after: Price | None, figures: Figures) -> str:
    unrealized = figures.get("trading.unrealized", ZERO)
    return f"{ticker} bid {_quote(before)} → {_quote(after)}: unrealized {_signed(unrealized)}"


@exact
def explain_items(
    changes: Sequence[KeyChange],
    positions: Mapping[Market, Sequence[Position]],
    prices: Mapping[Market, tuple[Price | None, Price | None]],
    basis: RevenueBasis,
) -> list[Item]:
    """The items of a change. ``positions``: per market whose price changed, the positions
    in it at the end; ``prices``: per market involved, its price at the start and the end."""
    items: list[Item] = []
    for change in changes:
        if change.kind == "price" or (change.before is None and change.after is None):
            continue  # a price's effect is the price item of its market
        new = _contribution(change.after, _start_price(change.source, change.after, prices), basis)
        old = _contribution(change.before, _start_price(change.source, change.before, prices), basis)
        figures = subtract(new, old)
        record = change.after or change.before
        assert record is not None
        items.append(Item(change.source, change.kind, change.id,
                          _describe(change, figures.get("net_pnl", ZERO)), figures,
                          agent=record.agent or UNATTRIBUTED, model=getattr(record, "model", None),
                          ticker=getattr(record, "ticker", None)))
    for (source, ticker), held in sorted(positions.items()):
        before, after = prices.get((source, ticker), (None, None))
        moved: Figures = {}
        for position in held:
            add_into(moved, figure_contributions(position, after, basis))
            add_into(moved, figure_contributions(position, before, basis), -1)
        moved = {path: amount for path, amount in moved.items() if amount}
        items.append(Item(source, "price", ticker, _price_label(ticker, before, after, moved),
                          moved, ticker=ticker))
    return items


def _start_price(source: str, record: Record | None,
                 prices: Mapping[Market, tuple[Price | None, Price | None]]) -> Price | None:
    """The start price of a position's own market (a position may move to another ticker)."""
    if not isinstance(record, Position):
        return None
    return prices.get((source, record.ticker), (None, None))[0]


def _contribution(record: Record | None, price: Price | None, basis: RevenueBasis) -> Figures:
    return {} if record is None else figure_contributions(record, price, basis)


def _order(item: Item) -> tuple[Decimal, str, str, str]:
    return -abs(item.net()), item.source, item.kind, item.id


@exact
def grouped(items: Sequence[Item]) -> dict[str, dict[str, Figures]]:
    """Per group (source, kind, agent, model, ticker), per value, the sum of contributions."""
    groups: dict[str, dict[str, Figures]] = {name: {} for name in GROUPS}
    for item in items:
        for name in GROUPS:
            value = getattr(item, name)
            if value is not None:
                add_into(groups[name].setdefault(value, {}), item.contributions)
    return groups


@exact
def limited(items: Sequence[Item], limit: int) -> list[Item]:
    """The ``limit`` largest items by |net contribution|, then one "other" item for the rest."""
    ordered = sorted(items, key=_order)
    kept, rest = ordered[:limit], ordered[limit:]
    if rest:
        other: Figures = {}
        for item in rest:
            add_into(other, item.contributions)
        kept.append(Item("", "other", "", f"{len(rest)} more", other))
    return kept


def group_key(item: Item) -> GroupKey:
    return (item.source, item.kind, item.agent or "", item.model or "", item.ticker or "")


@exact
def by_group(items: Sequence[Item]) -> dict[GroupKey, Figures]:
    """The items' contributions summed per group key (groups summing to zero left out)."""
    sums: dict[GroupKey, Figures] = {}
    for item in items:
        add_into(sums.setdefault(group_key(item), {}), item.contributions)
    cleaned = {key: {p: a for p, a in figures.items() if a} for key, figures in sums.items()}
    return {key: figures for key, figures in cleaned.items() if figures}


Internal = dict[tuple[str, ...], Decimal]  # amounts per internal path (``pnl.contribution``)


def _add_internal(into: Internal, record: Record | None, price: Price | None, sign: int) -> None:
    if record is not None:
        add_into(into, contribution_in_context(record, price), sign)


def _key_amounts(change: KeyChange, facts: ChangeFacts) -> Mapping[tuple[str, ...], Decimal]:
    """What one key's change moved, as its per-record item counts it (internal paths)."""
    if change.kind != "position":  # no price in it: what the Book moved, summed already
        return facts.moved.get((change.source, change.kind, change.id), {})
    into: Internal = {}
    _add_internal(into, change.after, _start_price(change.source, change.after, facts.prices), 1)
    _add_internal(into, change.before, _start_price(change.source, change.before, facts.prices), -1)
    return into


def _group_of(change: KeyChange, record: Record) -> GroupKey:
    return (change.source, change.kind, record.agent or UNATTRIBUTED,
            getattr(record, "model", None) or "", getattr(record, "ticker", None) or "")


@exact
def change_groups(facts: ChangeFacts) -> dict[GroupKey, Internal]:
    """``by_group(explain_items(...))`` of one change, from what the engine knows of it
    (``Book.take_change``), without the items, as internal amounts: what the rollup adds per
    change once ``internal_figures`` has turned each group's sum into figures (in the
    writer's process: ``store/batch.run``). ``internal_figures`` is linear, so the answer is
    the same, exactly (tests/test_explain_rollup.py). Zero amounts, and groups of none, are
    left out."""
    sums: dict[GroupKey, Internal] = {}
    for change in facts.keys:
        record = change.after or change.before
        if change.kind != "price" and record is not None:  # a price moves its market's item
            add_into(sums.setdefault(_group_of(change, record), {}), _key_amounts(change, facts))
    for (source, ticker), held in facts.positions.items():
        before, after = facts.prices.get((source, ticker), (None, None))
        into = sums.setdefault((source, "price", "", "", ticker), {})
        for position in held:
            _add_internal(into, position, after, 1)
            _add_internal(into, position, before, -1)
    amounts = {key: {path: amount for path, amount in into.items() if amount}
               for key, into in sums.items()}
    return {key: into for key, into in amounts.items() if into}


def group_item(key: GroupKey, contributions: Figures) -> Item:
    """One item for every record of a group key: what a long range is answered with."""
    source, kind, agent, model, ticker = key
    detail = "".join(f" {part}" for part in (model, ticker) if part)
    who = f" ({agent})" if agent else ""
    net = contributions.get("net_pnl", ZERO)
    label = f"{kind}{detail}{who} from {source}, all records: net {_signed(net)}"
    return Item(source, kind, "", label, contributions, agent=agent or None, model=model or None,
                ticker=ticker or None)


def rendered(item: Item) -> dict[str, object]:
    body: dict[str, object] = {"source": item.source, "kind": item.kind, "id": item.id,
                            "label": item.label, "agent": item.agent, "model": item.model,
                            "ticker": item.ticker, "contributions": formatted(item.contributions)}
    return body
