"""A per-source circuit breaker. Pure: the caller passes the time in.

closed ──N consecutive failures──▶ open ──cool-down──▶ half_open
  ▲                                  ▲                    │
  └────────── probe succeeds ────────┼────────────────────┤
                                     └── probe fails ─────┘
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["Breaker"]

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class Breaker:
    threshold: int = 3
    cooldown: float = 30.0
    state: State = "closed"
    failures: int = 0
    opened_at: float = 0.0

    def wait(self, now: float) -> float:
        """Seconds before a call is allowed (0 when it is allowed now)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.opened_at + self.cooldown - now)

    def before_call(self, now: float) -> Breaker:
        """The breaker as a call starts: an open one whose cool-down is over goes half-open."""
        if self.state == "open" and self.wait(now) == 0.0:
            return replace(self, state="half_open")
        return self

    def success(self) -> Breaker:
        return replace(self, state="closed", failures=0)

    def failure(self, now: float) -> Breaker:
        failures = self.failures + 1
        if self.state == "half_open" or failures >= self.threshold:
            return replace(self, state="open", failures=failures, opened_at=now)
        return replace(self, failures=failures)
