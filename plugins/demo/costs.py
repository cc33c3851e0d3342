"""AI and infrastructure spend: one growing ``Cost`` per (day, model, agent).

Amounts accrue in integer units of $0.0000001 (the precision of Anthropic's
cost report). Today's records are estimates (``estimated=True``) whose
amount grows under the same id; when the day closes each is replaced, still
under its id, by the "reported" figure (within ±3% of the estimate), final.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from northstard.core.records import Cost

__all__ = ["INFRA", "MODELS", "Spend", "Usage"]

UNIT = Decimal(10) ** 7  # units per dollar


@dataclass(frozen=True)
class Usage:
    """How one agent spends on one line: busy one second in ``odds``, ``low``..``high`` units."""

    name: str
    odds: int
    low: int
    high: int

    def mean(self, seconds: int, weight: int) -> int:
        """Expected units over ``seconds`` for an agent working at ``weight`` percent."""
        return (self.low + self.high) * seconds * weight // (2 * self.odds * 100)


MODELS = (
    Usage("claude-opus-4", 3, 30_000, 136_000),  # about $10 an hour per agent
    Usage("claude-sonnet-4", 2, 10_000, 56_000),  # about $6
    Usage("claude-haiku-4", 1, 1_000, 4_500),  # about $1
)
INFRA = Usage("infrastructure", 1, 900, 1_300)  # about $0.40

Key = tuple[Usage, str]


class Spend:
    """Today's accrued spend per (line, agent), and the closing of a day."""

    def __init__(self, rng: random.Random, agents: tuple[str, ...]) -> None:
        self.rng = rng
        self.agents = agents
        self.weights = {agent: rng.randint(60, 140) for agent in agents}
        self.day: date | None = None
        self.units: dict[Key, int] = {}

    def __repr__(self) -> str:
        return f"<Spend day={self.day} today={sum(self.units.values()) / UNIT}>"

    def roll(self, day: date) -> list[Cost]:
        """Make ``day`` current; returns the closed day's final records (if a day closed)."""
        if day == self.day:
            return []
        closed = [self._record(key, self._reported(units), False) for key, units in self.units.items()]
        self.day = day
        self.units = {}
        return closed

    def second(self) -> None:
        """One second of work by every agent."""
        rng = self.rng
        for agent in self.agents:
            weight = self.weights[agent]
            for usage in (*MODELS, INFRA):
                if rng.randrange(usage.odds) == 0:
                    self._add((usage, agent), rng.randint(usage.low, usage.high) * weight // 100)

    def lump(self, seconds: int) -> None:
        """``seconds`` of work at once (the history before the first reading)."""
        for agent in self.agents:
            for usage in (*MODELS, INFRA):
                spread = self.rng.randint(85, 115)
                self._add((usage, agent), usage.mean(seconds, self.weights[agent]) * spread // 100)

    def records(self) -> list[Cost]:
        """Today's estimates."""
        return [self._record(key, units, True) for key, units in self.units.items()]

    def _add(self, key: Key, units: int) -> None:
        if units > 0:
            self.units[key] = self.units.get(key, 0) + units

    def _reported(self, units: int) -> int:
        return units * self.rng.randint(970, 1030) // 1000

    def _record(self, key: Key, units: int, estimated: bool) -> Cost:
        usage, agent = key
        assert self.day is not None
        ts = datetime.combine(self.day, time(), tzinfo=UTC)
        amount = Decimal(units) / UNIT
        if usage is INFRA:
            return Cost(
                id=f"infra:{self.day}:{agent}", agent=agent, amount=amount,
                category="infrastructure", cost_type="compute", ts=ts, estimated=estimated,
            )
        return Cost(
            id=f"ai:{self.day}:{usage.name}:{agent}", agent=agent, amount=amount, category="ai",
            model=usage.name, cost_type="tokens", ts=ts, estimated=estimated,
        )
