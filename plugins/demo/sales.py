"""Sales: invoices issued (open), paid in full later, now and then partly refunded.

Event driven, so any stretch of time costs only its events: ``until(tick)``
runs every event due by then, in time order, and returns the records each
one produced (an invoice's new version, a refund). Amounts are integer cents.
"""

from __future__ import annotations

import heapq
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

from northstard.core.records import Invoice, Record, Refund

__all__ = ["Sales"]

ISSUE_GAP_S = (15 * 60, 65 * 60)
PAY_DELAY_S = (5 * 60, 3 * 3600)
REFUND_DELAY_S = (10 * 60, 4 * 3600)
REFUND_ODDS = 12  # one paid invoice in 12
ALPHABET = string.ascii_letters + string.digits

Kind = Literal["issue", "pay", "refund"]
Event = tuple[int, int, Kind, str]


def _cents(amount: int) -> Decimal:
    return Decimal(amount) / 100


@dataclass(frozen=True)
class _Sale:
    invoice: Invoice
    cents: int


class Sales:
    """The invoices still to be paid or refunded, and the queue of what happens next."""

    def __init__(self, rng: random.Random, agents: tuple[str, ...], start: int,
                 at: Callable[[int], datetime]) -> None:
        self.rng = rng
        self.agents = agents
        self.at = at
        self.pending: dict[str, _Sale] = {}
        self.queue: list[Event] = []
        self.serial = 0
        self._push(start + rng.randint(0, ISSUE_GAP_S[1]), "issue", "")

    def __repr__(self) -> str:
        return f"<Sales pending={len(self.pending)} queued={len(self.queue)}>"

    def until(self, tick: int) -> list[tuple[int, Record]]:
        """Run every event due by ``tick``; returns (tick, record) of what changed."""
        out: list[tuple[int, Record]] = []
        while self.queue and self.queue[0][0] <= tick:
            when, _, kind, ref = heapq.heappop(self.queue)
            out.append((when, self._run(when, kind, ref)))
        return out

    def _run(self, when: int, kind: Kind, ref: str) -> Record:
        match kind:
            case "issue":
                return self._issue(when)
            case "pay":
                return self._pay(when, ref)
            case "refund":
                return self._refund(when, ref)

    def _push(self, when: int, kind: Kind, ref: str) -> None:
        self.serial += 1
        heapq.heappush(self.queue, (when, self.serial, kind, ref))

    def _id(self, prefix: str) -> str:
        return prefix + "".join(self.rng.choice(ALPHABET) for _ in range(14))

    def _amount(self) -> int:
        if self.rng.randrange(100) < 10:
            return self.rng.randint(30_000, 120_000)  # an enterprise deal
        return self.rng.randint(2_500, 19_000)

    def _issue(self, when: int) -> Invoice:
        cents = self._amount()
        invoice = Invoice(
            id=self._id("in_"), agent=self.rng.choice(self.agents), total=_cents(cents),
            paid=Decimal(0), status="open", ts=self.at(when),
        )
        self.pending[invoice.id] = _Sale(invoice, cents)
        self._push(when + self.rng.randint(*PAY_DELAY_S), "pay", invoice.id)
        self._push(when + self.rng.randint(*ISSUE_GAP_S), "issue", "")
        return invoice

    def _pay(self, when: int, ref: str) -> Invoice:
        sale = self.pending.pop(ref)
        invoice = replace(sale.invoice, paid=sale.invoice.total, status="paid")
        if self.rng.randrange(REFUND_ODDS) == 0:
            self.pending[ref] = replace(sale, invoice=invoice)
            self._push(when + self.rng.randint(*REFUND_DELAY_S), "refund", ref)
        return invoice

    def _refund(self, when: int, ref: str) -> Refund:
        sale = self.pending.pop(ref)
        cents = max(sale.cents * self.rng.randint(10, 100) // 100, 1)
        return Refund(id=self._id("re_"), agent=sale.invoice.agent, amount=_cents(cents),
                      ts=self.at(when))
