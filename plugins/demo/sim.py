"""The simulated business, one business second at a time. Pure and seeded.

A desk of prediction markets (``trading``), AI and infrastructure spend
(``costs``) and sales (``sales``) share one ``random.Random(seed)``: the same
settings and start, stepped by the same amounts, give the same records. No
I/O, no clock: ``step(seconds)`` advances business time (whole seconds; a
fraction carries over to the next step) and ``collect()`` returns what a
reading should carry.

Before the first reading the business has already run for ``history_s``
seconds (its spend and sales in bulk), and every market opens with a trade,
so the very first reading shows revenue, costs and positions.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, time, timedelta

from northstard.core.records import Record, utc

from .changelog import ChangeLog
from .costs import Spend
from .sales import Sales
from .settings import Settings
from .trading import Desk

__all__ = ["COMPLETE_KINDS", "MAX_STEP_S", "Simulator"]

MAX_STEP_S = 900  # business seconds one step catches up at most
# what every collect() holds in full: quotes of the open markets, the cash.
# Not positions: a settled market's last position (its realized P&L) must stay.
COMPLETE_KINDS = ("price", "balance")


class Simulator:
    """The business at business time ``now`` (``start`` + ``tick`` seconds)."""

    def __init__(self, settings: Settings, start: datetime) -> None:
        if settings.seed == 0:
            raise ValueError("seed 0 means 'random': resolve it first (Settings.resolved)")
        self.settings = settings
        self.start = utc(start).replace(microsecond=0)
        self.tick = 0
        self._carry_ms = 0
        self._collected: tuple[int, tuple[Record, ...]] | None = None
        rng = random.Random(settings.seed)
        history = int(settings.history_s)
        self.log = ChangeLog(int(settings.recent_s))
        self.spend = Spend(rng, settings.agents)
        self.sales = Sales(rng, settings.agents, -history, self.at)
        self.desk = Desk(rng, settings.agents, settings.markets, settings.cash,
                         settings.skill_pct, self.at)
        self._warm_up(history)
        self._midnight = self._next_midnight(0)

    def __repr__(self) -> str:
        return (
            f"<Simulator seed={self.settings.seed} now={self.now.isoformat()} "
            f"{self.desk!r} {self.sales!r} {self.log!r}>"
        )

    def at(self, tick: int) -> datetime:
        """The business time of ``tick``."""
        return self.start + timedelta(seconds=tick)

    @property
    def now(self) -> datetime:
        return self.at(self.tick)

    def step(self, seconds: float) -> int:
        """Advance ``seconds`` of business time; returns the whole seconds run."""
        if not seconds >= 0:
            raise ValueError(f"cannot step by {seconds!r} seconds")
        self._carry_ms += round(seconds * 1000)
        ticks, self._carry_ms = divmod(self._carry_ms, 1000)
        ticks = min(ticks, MAX_STEP_S)
        for _ in range(ticks):
            self._second()
        return ticks

    def collect(self) -> tuple[Record, ...]:
        """Current state (quotes, positions, cash, today's spend) and the changes to send."""
        if self._collected is not None and self._collected[0] == self.tick:
            return self._collected[1]  # nothing ran since: the same records
        desk = self.desk
        live: list[Record] = [*desk.prices(), *desk.positions(), desk.balance(self.tick)]
        live += self.spend.records()
        records = (*live, *self.log.take(self.tick))
        self._collected = (self.tick, records)
        return records

    # -- internals -------------------------------------------------------

    def _warm_up(self, history: int) -> None:
        tick = -history
        while tick < 0:
            self._roll(tick)
            end = min(self._next_midnight(tick), 0)
            self.spend.lump(end - tick)
            tick = end
        self._roll(0)
        self._log(self.sales.until(0))
        for record in self.desk.open_positions(0):
            self.log.add(0, record)

    def _second(self) -> None:
        self.tick += 1
        tick = self.tick
        if tick >= self._midnight:
            self._roll(tick)
            self._midnight = self._next_midnight(tick)
        self.spend.second()
        self._log(self.sales.until(tick))
        for record in self.desk.tick(tick):
            self.log.add(tick, record)

    def _roll(self, tick: int) -> None:
        for record in self.spend.roll(self.at(tick).date()):
            self.log.add(tick, record)

    def _log(self, changes: list[tuple[int, Record]]) -> None:
        for tick, record in changes:
            self.log.add(tick, record)

    def _next_midnight(self, tick: int) -> int:
        moment = self.at(tick)
        midnight = datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=UTC)
        return tick + math.ceil((midnight - moment).total_seconds())
