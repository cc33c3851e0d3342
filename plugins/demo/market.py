"""One simulated Kalshi-like market and its owner's position, in integer units.

Prices and money are integers of 1/10000 dollar ("bp"): a YES price of
``5600`` is $0.56, so every amount becomes an exact Decimal. The quoted YES
price random-walks and drifts towards the (hidden) result as the close
nears. Fees follow Kalshi's formula, rounded up to $0.0001:
``0.07 × count × P × (1 − P)`` for a taker, a quarter of that for a maker.

The position keeps ``realized`` net of every fee paid, so the engine's
realized + unrealized is the market's true P&L. At settlement the fees of
the contracts still held move from the position to the ``Settlement``
(whose P&L is revenue − cost − fee, as Kalshi reports it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from northstard.core.records import Fill, Position, Price, Settlement

__all__ = ["BP", "SPREAD_BP", "Holding", "Market", "Side", "Trade", "dollars", "fee_bp"]

BP = 10_000  # units per dollar
FLOOR, CEILING = 100, 9_900  # $0.01 and $0.99
NOISE_BP = 60
SPREAD_BP = (100, 400)
Side = Literal["yes", "no"]
Action = Literal["buy", "sell"]


def dollars(units: int) -> Decimal:
    """An exact Decimal of ``units`` bp."""
    return Decimal(units) / BP


def fee_bp(count: int, price: int, maker: bool = False) -> int:
    """Kalshi's trading fee for ``count`` contracts at ``price`` bp, rounded up."""
    numerator = 7 * count * price * (BP - price)
    denominator = 1_000_000 * (4 if maker else 1)
    return -(-numerator // denominator)


@dataclass(frozen=True)
class Trade:
    """One decision of the owner: what to do, how many, taker or maker."""

    side: Side
    action: Action
    count: int
    maker: bool = False


@dataclass
class Holding:
    """The owner's position: + YES, − NO contracts; every figure in bp."""

    count: int = 0
    cost: int = 0
    realized: int = 0
    fees: int = 0
    open_fees: int = 0

    @property
    def active(self) -> bool:
        """Whether the owner ever traded (a position record exists)."""
        return bool(self.count or self.cost or self.realized or self.fees)

    def held(self, side: Side) -> int:
        return max(self.count, 0) if side == "yes" else max(-self.count, 0)

    def buy(self, side: Side, count: int, price: int, fee: int) -> int:
        """Apply a buy; returns the cash it took."""
        self.count += count if side == "yes" else -count
        self.cost += count * price
        self.fees += fee
        self.open_fees += fee
        self.realized -= fee
        return count * price + fee

    def sell(self, side: Side, count: int, price: int, fee: int) -> int:
        """Apply a sale of held contracts (average cost); returns the cash it brought."""
        held = self.held(side)
        sold_cost = self.cost * count // held
        self.open_fees -= self.open_fees * count // held
        self.cost -= sold_cost
        self.count -= count if side == "yes" else -count
        self.fees += fee
        self.realized += count * price - sold_cost - fee
        return count * price - fee


@dataclass
class Market:
    """A market's quotes, schedule, hidden result, the owner's view and holding (ticks = s)."""

    ticker: str
    agent: str
    result_yes: bool
    opens: int
    closes: int
    mid: int
    spread: int
    view: Side = "yes"
    last: int | None = None
    holding: Holding = field(default_factory=Holding)

    def quotes(self) -> tuple[int, int]:
        """(yes_bid, yes_ask) in bp."""
        bid = self.mid - self.spread // 2
        return bid, bid + self.spread

    def side_quotes(self, side: Side) -> tuple[int, int]:
        """(bid, ask) of one side; NO quotes mirror YES quotes."""
        bid, ask = self.quotes()
        return (bid, ask) if side == "yes" else (BP - ask, BP - bid)

    def walk(self, rng: random.Random, tick: int) -> None:
        """One second of quotes: noise plus a drift that reaches the result at the close."""
        if rng.randrange(120) == 0:
            self.spread = rng.randint(*SPREAD_BP)
        target = CEILING if self.result_yes else FLOOR
        remaining = max(self.closes - tick, 1)
        gap = target - self.mid
        drift = gap // remaining if gap >= 0 else -(-gap // remaining)
        half = self.spread // 2
        low, high = FLOOR + half, CEILING - self.spread + half
        self.mid = min(max(self.mid + drift + rng.randint(-NOISE_BP, NOISE_BP), low), high)

    def fill_price(self, trade: Trade) -> int:
        bid, ask = self.side_quotes(trade.side)
        taking = (trade.action == "buy") != trade.maker
        return ask if taking else bid

    def execute(self, trade: Trade, fill_id: str, ts: datetime) -> tuple[Fill, int]:
        """Apply ``trade``; returns its fill and the change of cash in bp."""
        price = self.fill_price(trade)
        fee = fee_bp(trade.count, price, trade.maker)
        if trade.action == "buy":
            cash = -self.holding.buy(trade.side, trade.count, price, fee)
        else:
            cash = self.holding.sell(trade.side, trade.count, price, fee)
        self.last = price if trade.side == "yes" else BP - price
        fill = Fill(
            id=fill_id, agent=self.agent, ticker=self.ticker, side=trade.side,
            action=trade.action, count=Decimal(trade.count), price=dollars(price),
            fee=dollars(fee), ts=ts,
        )
        return fill, cash

    def settle(self, ts: datetime) -> tuple[Settlement | None, int]:
        """Close the market: its settlement (if anything was held) and the payout in bp."""
        holding = self.holding
        won = holding.held("yes" if self.result_yes else "no")
        if holding.count == 0:
            return None, 0
        settlement = Settlement(
            id=self.ticker, agent=self.agent, ticker=self.ticker, revenue=Decimal(won),
            cost=dollars(holding.cost), fee=dollars(holding.open_fees),
            result="yes" if self.result_yes else "no", ts=ts,
        )
        holding.realized += holding.open_fees
        holding.fees -= holding.open_fees
        holding.count = holding.cost = holding.open_fees = 0
        return settlement, won * BP

    def price(self) -> Price:
        bid, ask = self.quotes()
        last = None if self.last is None else dollars(self.last)
        return Price(
            id=self.ticker, yes_bid=dollars(bid), yes_ask=dollars(ask),
            no_bid=dollars(BP - ask), no_ask=dollars(BP - bid), last=last,
        )

    def position(self) -> Position:
        h = self.holding
        return Position(
            id=self.ticker, agent=self.agent, ticker=self.ticker, count=Decimal(h.count),
            cost_basis=dollars(h.cost), realized_pnl=dollars(h.realized), fees=dollars(h.fees),
        )
