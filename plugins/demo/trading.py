"""The trading desk: a fixed number of market slots, each run by one agent.

Every second each market's quotes move, and about once a minute its owner
decides: it holds one view per market (right ``skill_pct`` percent of the
time), buys that side while it is cheap enough, takes profits and cuts
losses. A market that reaches its close settles and a fresh one takes its
slot with an opening trade. Cash never goes below zero.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime

from northstard.core.records import Balance, Fill, Position, Price, Record

from .market import BP, SPREAD_BP, Market, Side, Trade, dollars, fee_bp

__all__ = ["Desk"]

TOPICS = ("FED", "CPI", "GDP", "NFP", "BTC", "ETH", "SPX", "HIGHNY", "RAIN", "OIL", "TSA", "GAS")
LIFE_S = (300, 1800)
TRADE_ODDS = 60  # a trading decision per market every minute on average
MAX_BUY_BP = 9_000
TAKE_PROFIT_BP = 1_500
CUT_LOSS_BP = 2_000
NO_TRADE_LAST_S = 60
MAX_HOLD = 120
Clock = Callable[[int], datetime]


class Desk:
    """Markets, cash and the owners' trading decisions."""

    def __init__(
        self, rng: random.Random, agents: tuple[str, ...], slots: int, cash: int,
        skill_pct: int, at: Clock,
    ) -> None:
        self.rng = rng
        self.agents = agents
        self.skill_pct = skill_pct
        self.at = at
        self.cash = cash * BP
        self.tickers: dict[str, set[str]] = {}
        self.markets = [self._open(slot, 0, age=True) for slot in range(slots)]

    def __repr__(self) -> str:
        return f"<Desk markets={len(self.markets)} cash={dollars(self.cash)}>"

    # -- markets ---------------------------------------------------------

    def _ticker(self, closes: int) -> str:
        """A ticker not used before in this run (only the last few days' are remembered)."""
        day = self.at(closes).strftime("%y%b%d").upper()
        used = self.tickers.setdefault(day, set())
        while len(self.tickers) > 3:
            del self.tickers[next(iter(self.tickers))]
        while True:
            ticker = f"KXDEMO-{self.rng.choice(TOPICS)}-{day}-T{self.rng.randint(10, 9999)}"
            if ticker not in used:
                used.add(ticker)
                return ticker

    def _open(self, slot: int, tick: int, age: bool = False) -> Market:
        """A new market in ``slot`` at ``tick`` (``age``: already part-way through its life).

        Slots are dealt to the agents in turn, so every agent has a book to run.
        """
        life = self.rng.randint(*LIFE_S)
        opens = tick - self.rng.randint(0, life - 2 * NO_TRADE_LAST_S) if age else tick
        mid = self.rng.randint(1500, 8500)
        return Market(
            ticker=self._ticker(opens + life), agent=self.agents[slot % len(self.agents)],
            result_yes=self.rng.randrange(BP) < mid, opens=opens, closes=opens + life,
            mid=mid, spread=self.rng.randint(*SPREAD_BP),
        )

    # -- one second --------------------------------------------------------

    def tick(self, tick: int) -> list[Record]:
        """Move every market one second; returns the events (fills, settlements, ...)."""
        events: list[Record] = []
        for slot, market in enumerate(self.markets):
            market.walk(self.rng, tick)
            if tick >= market.closes:
                events += self._settle(market, tick)
                market = self.markets[slot] = self._open(slot, tick)
                events += self._trade(market, tick, self._opening(market))
            elif self.rng.randrange(TRADE_ODDS) == 0:
                events += self._trade(market, tick, self._decide(market, tick))
        return events

    def open_positions(self, tick: int) -> list[Record]:
        """The opening trade of every market (at the start of the simulation)."""
        events: list[Record] = []
        for market in self.markets:
            events += self._trade(market, tick, self._opening(market))
        return events

    def _settle(self, market: Market, tick: int) -> list[Record]:
        """The settlement (if anything was held) and the position's last version."""
        traded = market.holding.active
        settlement, payout = market.settle(self.at(tick))
        self.cash += payout
        final: list[Record] = [market.position()] if traded else []
        return final if settlement is None else [settlement, *final]

    def _trade(self, market: Market, tick: int, trade: Trade | None) -> list[Fill]:
        if trade is None:
            return []
        fill_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        fill, cash = market.execute(trade, fill_id, self.at(tick))
        self.cash += cash
        return [fill]

    # -- decisions -------------------------------------------------------

    def _view(self, market: Market) -> Side:
        right = self.rng.randrange(100) < self.skill_pct
        return "yes" if market.result_yes == right else "no"

    def _opening(self, market: Market) -> Trade | None:
        market.view = self._view(market)
        return self._buy(market, self.rng.randint(5, 30))

    def _decide(self, market: Market, tick: int) -> Trade | None:
        """Add to the view while it is cheap; take profits; cut losses."""
        if market.closes - tick <= NO_TRADE_LAST_S:
            return None
        held = market.holding.held(market.view)
        if held:
            average = market.holding.cost // held
            bid = market.side_quotes(market.view)[0]
            if bid >= average + TAKE_PROFIT_BP or bid <= average - CUT_LOSS_BP:
                count = held if self.rng.randrange(4) == 0 else self.rng.randint(1, held)
                return Trade(market.view, "sell", count, maker=self._maker())
        return self._buy(market, self.rng.randint(2, 15))

    def _maker(self) -> bool:
        return self.rng.randrange(10) < 3

    def _buy(self, market: Market, count: int) -> Trade | None:
        trade = Trade(market.view, "buy", count, maker=self._maker())
        price = market.fill_price(trade)
        spend = count * price + fee_bp(count, price, trade.maker)
        room = market.holding.held(market.view) + count <= MAX_HOLD
        return trade if price <= MAX_BUY_BP and room and spend <= self.cash else None

    # -- live state ------------------------------------------------------

    def prices(self) -> list[Price]:
        return [market.price() for market in self.markets]

    def positions(self) -> list[Position]:
        return [m.position() for m in self.markets if m.holding.active]

    def balance(self, tick: int) -> Balance:
        return Balance(id="trading-cash", cash=dollars(self.cash), ts=self.at(tick))
