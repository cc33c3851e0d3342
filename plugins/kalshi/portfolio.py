"""What the kalshi source knows between polls, and the records each page yields. Pure.

A poll parses every page first (drift raises before anything changes) and
then applies the records at once, so a failed poll leaves the portfolio as
it was and the stream, which applies one message at a time, never sees half
a poll. The engine keeps every record a source ever sent until it is
retracted, so the portfolio remembers what it reported: a position that no longer comes
back from ``/portfolio/positions`` is retracted (with its price), fills and
settlements are fetched only since the last one seen (deduplicated by id),
and a WebSocket ``ticker`` message that carries only some quotes is merged
into the last known ones.

Settled markets: a ``Settlement`` carries the market's realized P&L
(revenue - cost - fee). Should the positions endpoint still list a market we
hold a settlement for, its position row is not counted (retracted, logged
once per market) so that the same money is never counted twice. Whether
Kalshi lists settled markets there is *unverified*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from northstard.core.records import Fill, Position, Price, Record, Retract, Settlement

from . import parse
from .fields import money_or_none
from .settings import Mark

__all__ = ["Portfolio"]

log = structlog.get_logger("northstard_plugins.kalshi")

_ONE = Decimal(1)
_TICKER_FIELDS = (
    ("yes_bid", "yes_bid_dollars"),
    ("yes_ask", "yes_ask_dollars"),
    ("no_bid", "no_bid_dollars"),
    ("no_ask", "no_ask_dollars"),
    ("last", "last_price_dollars"),
    ("last", "price_dollars"),
)


@dataclass
class Portfolio:
    """Positions, prices and cursors of one kalshi source instance."""

    mark: Mark = "bid"
    includes_fees: bool = True
    agent: str | None = None
    positions: dict[str, Position] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    settled: set[str] = field(default_factory=set)
    fills_since: int | None = None
    settlements_since: int | None = None
    _fill_ids: dict[str, int] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)

    def __repr__(self) -> str:
        return (
            f"<Portfolio positions={len(self.positions)} held={len(self.held())} "
            f"prices={len(self.prices)} settled={len(self.settled)} fills_since={self.fills_since}>"
        )

    def held(self) -> list[str]:
        """Tickers with a non-zero position: the markets whose prices matter."""
        return sorted(t for t, p in self.positions.items() if p.count != 0)

    def would_hold(self, positions: Iterable[Position], settlements: Iterable[Settlement]) -> list[str]:
        """The markets held once ``positions`` and ``settlements`` are applied."""
        settled = self.settled | {s.ticker for s in settlements}
        return sorted({p.ticker for p in positions if p.count != 0 and p.ticker not in settled})

    # -- a poll's records (parsed before: applying them cannot fail) ----------

    def apply_settlements(self, settlements: Iterable[Settlement]) -> list[Record]:
        """New settlements (and retracts of their markets' positions and prices)."""
        out: list[Record] = []
        for record in settlements:
            stamp = int(record.ts.timestamp())
            self.settlements_since = max(self.settlements_since or stamp, stamp)
            if record.ticker in self.settled:
                continue
            self.settled.add(record.ticker)
            out.append(record)
            out.extend(self._forget(record.ticker))
        return out

    def apply_positions(self, positions: Iterable[Position]) -> list[Record]:
        """Every position listed now, and retracts of those no longer listed."""
        fresh: dict[str, Position] = {}
        for record in positions:
            if record.ticker in self.settled:
                self._warn_once(record.ticker)
                continue
            fresh[record.ticker] = record
        out: list[Record] = []
        for ticker in [t for t in self.positions if t not in fresh]:
            out.extend(self._forget(ticker))
        self.positions.update(fresh)
        out.extend(fresh.values())
        return out

    def apply_prices(self, prices: Iterable[Price]) -> list[Record]:
        """Prices of the markets held."""
        out: list[Record] = []
        for record in prices:
            if record.id in self.positions:
                self.prices[record.id] = record
                out.append(record)
        return out

    def apply_fills(self, fills: Iterable[Fill]) -> list[Record]:
        """Fills not seen before; the next fetch starts at the newest one's second."""
        out: list[Record] = []
        for record in fills:
            if record.id in self._fill_ids:
                continue
            stamp = int(record.ts.timestamp())
            self._fill_ids[record.id] = stamp
            self.fills_since = max(self.fills_since or stamp, stamp)
            out.append(record)
        self._fill_ids = {k: v for k, v in self._fill_ids.items() if v >= (self.fills_since or 0)}
        return out

    # -- WebSocket messages (shapes of Kalshi's AsyncAPI, see stream.py) ----

    def on_ws_position(self, msg: Mapping[str, Any]) -> list[Record]:
        where = "stream market_position"
        record = parse.position(msg, where, self.mark, self.includes_fees, self.agent,
                                cost_field=parse.WS_COST)
        if record.ticker in self.settled:
            return []
        self.positions[record.ticker] = record
        return [record]

    def on_ws_ticker(self, msg: Mapping[str, Any]) -> list[Record]:
        """Merge the quotes a ticker message carries into the last known ones."""
        where = "stream ticker"
        ticker = parse.ticker_of(msg, where)
        if ticker not in self.positions:
            return []  # a market no longer held: its price does not matter
        old = self.prices.get(ticker) or Price(id=ticker, agent=self.agent)
        quotes: dict[str, Decimal | None] = {}
        for name, key in _TICKER_FIELDS:
            if key in msg:
                quotes[name] = money_or_none(msg, key, where)
        # a binary market's NO bid is 1 - its YES ask (and vice versa) when not sent
        for no_side, yes_side in (("no_bid", "yes_ask"), ("no_ask", "yes_bid")):
            quote = quotes.get(yes_side)
            if no_side not in quotes and quote is not None:
                quotes[no_side] = _ONE - quote
        new = Price(
            id=ticker,
            agent=self.agent,
            yes_bid=quotes.get("yes_bid", old.yes_bid),
            yes_ask=quotes.get("yes_ask", old.yes_ask),
            no_bid=quotes.get("no_bid", old.no_bid),
            no_ask=quotes.get("no_ask", old.no_ask),
            last=quotes.get("last", old.last),
        )
        if new == old:
            return []
        self.prices[ticker] = new
        return [new]

    def on_ws_fill(self, msg: Mapping[str, Any]) -> list[Record]:
        record: Fill = parse.fill(msg, "stream fill", self.agent)
        if record.id in self._fill_ids:
            return []
        self._fill_ids[record.id] = int(record.ts.timestamp())
        return [record]

    # -- helpers ---------------------------------------------------------

    def _forget(self, ticker: str) -> list[Record]:
        out: list[Record] = []
        if self.positions.pop(ticker, None) is not None:
            out.append(Retract(id=ticker, agent=self.agent, target_kind=Position.kind))
        if self.prices.pop(ticker, None) is not None:
            out.append(Retract(id=ticker, agent=self.agent, target_kind=Price.kind))
        return out

    def _warn_once(self, ticker: str) -> None:
        if ticker not in self._warned:
            self._warned.add(ticker)
            log.warning("kalshi: position of a settled market not counted (its settlement is)",
                        ticker=ticker)

