"""The demo ``Source``: each poll advances the simulation by the time since the last one.

Elapsed time comes from ``trio.current_time()`` (so a test's ``MockClock``
drives it) times ``speed``. Every reading is the simulation's current state
plus its recent changes (``Simulator.collect``), marked complete; the quotes
and the cash are declared complete kinds, so the engine drops the quotes of
settled markets. The first reading of a run carries everything the new
business has and declares every kind complete: the records of a previous run
(a restart begins a new simulated business) are withdrawn, not added to it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import trio

from northstard.core.records import KINDS, Reading

from .settings import Settings
from .sim import COMPLETE_KINDS, Simulator

__all__ = ["DemoSource"]

EVERY_KIND = tuple(kind for kind in KINDS if kind != "retract")


class DemoSource:
    """One ``[sources.NAME]`` instance of the demo plugin."""

    def __init__(self, name: str, settings: Settings, *, start: datetime | None = None) -> None:
        self.name = name
        self.settings = settings.resolved()
        self.sim = Simulator(self.settings, start or datetime.now(UTC))
        self.polls = 0
        self._last: float | None = None

    def __repr__(self) -> str:
        return f"<DemoSource {self.name!r} polls={self.polls} {self.sim!r}>"

    async def poll(self) -> Reading:
        """Advance by the elapsed time (none at the first poll) and read the state."""
        await trio.lowlevel.checkpoint()
        now = trio.current_time()
        if self._last is not None:  # the first poll reads the business as it starts
            self.sim.step((now - self._last) * self.settings.speed)
        first = self._last is None
        self._last = now
        self.polls += 1
        notes = {"seed": str(self.settings.seed), "business_time": self.sim.now.isoformat()}
        return Reading(
            self.name, self.sim.collect(), datetime.now(UTC), complete=True, notes=notes,
            complete_kinds=EVERY_KIND if first else COMPLETE_KINDS,
        )

    async def aclose(self) -> None:
        """Nothing to release."""
        await trio.lowlevel.checkpoint()
